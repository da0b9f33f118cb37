"""The single source of truth: one database behind ``Database`` (SQLite, or PostgreSQL), and repositories over it.

May import: services.jobs.models and services.policy.guild_policy (plain data). Never discord or xAI.
"""
