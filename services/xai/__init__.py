"""xAI's video API: the HTTP client in the official wire format, the shared request budget, the poll cadence.

May import: services.jobs.models and services.config. Never discord, the store or the scheduler.
"""
