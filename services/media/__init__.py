"""Files on the bot's disk: judged by content (probing, decoding), shrunk and fitted, downloaded safely, retained.

May import: services.config, services.jobs (models, listener), services.store, services.process.proxies. Never discord.
"""
