"""Each server's rules and what members used: the rules themselves, the limits they set, usage reports and charts.

May import: services.jobs.models and services.store. Never discord or xAI.
"""
