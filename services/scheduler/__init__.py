"""The background loop that moves every accepted job through xAI: admission, polling, fetching, after-work.

May import: services.jobs, services.xai, services.store, services.media. Never discord.
"""
