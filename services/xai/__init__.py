"""xAI's video API: the client, the bodies it sends, how answers and errors are read, the submit gate, budget.

May import: services.jobs.models and services.config. Never discord, the store or the scheduler.
"""
