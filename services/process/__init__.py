"""Running as a process: start-up, one bot per database file, proxies for every HTTP client, secrets masked in logs.

May import: services.config and services.store. Never discord or the scheduler.
"""
