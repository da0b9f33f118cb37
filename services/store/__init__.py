"""The single source of truth: one database behind ``Database`` (SQLite today), and repositories over it (``Store``).

May import: services.jobs.models and services.policy.guild_policy (plain data). Never discord or xAI.
"""
