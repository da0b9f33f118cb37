"""Several bot processes on one PostgreSQL database: the elected scheduler, wake-ups between processes, shards.

May import: services.config, services.jobs, services.scheduler, services.store, asyncpg. Never discord.
"""
