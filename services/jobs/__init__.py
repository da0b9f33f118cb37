"""What a job is and how it enters: models, accepting, validation, the fair queue, endings, the words people read.

May import: services.xai, services.policy, services.store, services.media (to judge inputs). Never discord.
"""
