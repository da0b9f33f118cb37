"""Files on the bot's disk: judging inputs by content, decoding, fitting to a destination, safe downloads, retention.

May import: services.jobs.models, services.store, services.process.proxies. Never discord.
"""
