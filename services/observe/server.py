"""The small HTTP server for ``/healthz`` and ``/metrics``, on ``HTTP_HOST:HTTP_PORT`` (localhost by default).

It runs on the bot's own event loop with aiohttp.web: both pages only read memory and one store query, so
serving them never holds the loop up. Requests are not logged (a health check every few seconds is noise).
"""

from __future__ import annotations

import contextlib
import errno
import logging
from collections.abc import AsyncIterator

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from prometheus_client import CONTENT_TYPE_LATEST

from services.config import ConfigError, ObserveSettings
from services.observe.health import Health
from services.observe.metrics import Readings, render

log = logging.getLogger(__name__)

# aiohttp logs a request it cannot parse (a huge header, a port scanner) as an ERROR with a traceback; this
# logger drops those, and keeps the errors of the pages themselves.
requests_log = logging.getLogger(f"{__name__}.requests")


class _NotClientMistakes(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not isinstance(error, HttpProcessingError)


requests_log.addFilter(_NotClientMistakes())

HEALTH_KEY = web.AppKey("health", Health)
READINGS_KEY = web.AppKey("readings", Readings)


async def healthz(request: web.Request) -> web.Response:
    problems = request.app[HEALTH_KEY].problems()
    if problems:
        return web.Response(status=503, text="not ready: " + "; ".join(problems) + "\n")
    return web.Response(text="ok\n")


async def metrics(request: web.Request) -> web.Response:
    body = await render(request.app[READINGS_KEY])
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def application(health: Health, readings: Readings) -> web.Application:
    app = web.Application()
    app[HEALTH_KEY] = health
    app[READINGS_KEY] = readings
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    return app


def _refusal(settings: ObserveSettings, error: OSError) -> str:
    if error.errno == errno.EADDRINUSE:
        return (
            f"HTTP_PORT={settings.http_port} is in use on {settings.http_host} (another program, or another bot "
            "process, listens there): set HTTP_PORT to a free port"
        )
    if error.errno == errno.EACCES:
        return (
            f"HTTP_PORT={settings.http_port} needs more rights than the bot has (ports below 1024 are root's): "
            "set HTTP_PORT to a port from 1024 up, such as 8080"
        )
    return (
        f"HTTP_HOST={settings.http_host!r} is not an address to listen on ({error.strerror or error}): it should "
        "be one of this machine's, such as 127.0.0.1 (the default) or 0.0.0.0 (every interface)"
    )


@contextlib.asynccontextmanager
async def serving(settings: ObserveSettings | None, health: Health, readings: Readings) -> AsyncIterator[int | None]:
    """Serve both pages while inside (nothing without ``HTTP_PORT``, or without settings); yields the port bound,
    or None.

    A port already taken, or a host that is not this machine's, is a ConfigError (exit 78 at start): running on
    without the pages would let a monitor read another process's /healthz on that port and call this one healthy.
    """
    if settings is None or settings.http_port is None:
        yield None
        return
    runner = web.AppRunner(application(health, readings), access_log=None, handle_signals=False, logger=requests_log)
    await runner.setup()
    try:
        site = web.TCPSite(runner, settings.http_host, settings.http_port, reuse_address=True)
        try:
            await site.start()
        except OSError as error:
            raise ConfigError(_refusal(settings, error)) from None
        port = int(runner.addresses[0][1])  # the one bound (the tests ask for port 0: any free one)
        log.info("Serving /healthz and /metrics on http://%s:%s", settings.http_host, port)
        yield port
    finally:
        await runner.cleanup()
