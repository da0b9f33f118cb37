"""Watching a running bot from outside: ``/healthz`` and ``/metrics`` on a small HTTP server, and JSON logs.

Owns: the health verdict (``health.py``: the Discord gateway and the scheduler's heartbeat), the Prometheus
figures read at scrape time (``metrics.py``: one query on the store, plus the plain counters that the budget,
the xAI client, the scheduler's tracking and the posting chain keep), the aiohttp server and its bounds
(``server.py``: header time, head size, connections), a store that does not answer told in one line and logged
once (``trouble.py``), and ``LOG_FORMAT=json`` (``logformat.py``: through the same redactor as the text format).
Nothing else imports prometheus_client: the services keep ints and lists, and this package reads them.

May import: services.config, services.store, services.jobs.models, services.process (the redactor),
services.runtime and what it builds (services.scheduler, services.xai). Never discord: the gateway is watched
through listeners the bot adds.
"""
