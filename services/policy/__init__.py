"""Each server's rules and what members used: the rules themselves, the limits they set, usage reports and charts.

May import: services.jobs.models, services.store, services.media.sizes (sizes in words), services.xai.catalog (the
models and prices, plain data). Never discord or xAI's client.
"""
