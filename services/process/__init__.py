"""Running as a process: start-up, one bot per database file, proxies for every HTTP client, secrets masked in logs,
and PostgreSQL's own commands (``migrate-store``, ``check``'s line: pgtools.py).

May import: services.config and services.store. Never discord or the scheduler.
"""
