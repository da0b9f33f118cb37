"""The single source of truth: one database, its migrations, and repositories for jobs, servers, usage and keys.

May import: services.jobs.models and services.policy.guild_policy (plain data). Never discord or xAI.
"""
