"""The small HTTP server for ``/healthz`` and ``/metrics``, on ``HTTP_HOST:HTTP_PORT`` (localhost by default).

It runs on the bot's own event loop with aiohttp.web: both pages only read memory and one store query, so
serving them never holds the loop up. Requests are not logged (a health check every few seconds is noise).

Anyone who can reach the port shares the bot's process, so the server is bounded (``ServerLimits``): a request
head must arrive within ``header_timeout_s`` of connecting (or of the previous answer), the head's size is capped,
and past ``max_connections`` the oldest connection is let go to make room, so a slowloris client can neither use
up the process's file descriptors nor keep a monitor out. A store that does not answer makes both pages say so in
one line (``StoreTrouble``, services/observe/trouble.py), logged once; each page's store read is shared by the
requests that come while it runs (``StoreReads``), so many clients never queue many reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from prometheus_client import CONTENT_TYPE_LATEST

from services.config import ConfigError, ObserveSettings
from services.observe.health import Health
from services.observe.metrics import JobCount, Readings, job_counts, page
from services.observe.trouble import COUNTS_TIMEOUT_S, SharedRead, StoreTrouble, probe, probe_store

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
READINGS_KEY: web.AppKey[Readings | None] = web.AppKey("readings")  # None: no store here (the health's own tests)
TROUBLE_KEY = web.AppKey("trouble", StoreTrouble)


@dataclass(frozen=True, slots=True)
class StoreReads:
    """The two pages' reads of the store, each shared by the requests that come while it runs."""

    probe: SharedRead[object]
    counts: SharedRead[list[JobCount]]

    @classmethod
    def of(cls, readings: Readings) -> StoreReads:
        return cls(probe(readings.runtime.store.database), SharedRead(lambda: job_counts(readings), COUNTS_TIMEOUT_S))


READS_KEY: web.AppKey[StoreReads | None] = web.AppKey("reads")


@dataclass(frozen=True, slots=True)
class ServerLimits:
    """What one client may take of the server. A monitor's request head is a few hundred bytes sent at once, and
    a handful of monitors scrape; the defaults leave them ample room."""

    header_timeout_s: float = 10.0  # from connecting (or the last answer) to a whole request head
    max_connections: int = 64  # open at once; past it the oldest is closed
    max_head_line: int = 4096  # the request line, and each header line
    max_headers: int = 32


async def healthz(request: web.Request) -> web.Response:
    problems = request.app[HEALTH_KEY].problems()
    reads = request.app[READS_KEY]
    if reads is not None:
        store_problem = await probe_store(reads.probe, request.app[TROUBLE_KEY])
        if store_problem is not None:
            problems.append(store_problem)
    if problems:
        return web.Response(status=503, text="not ready: " + "; ".join(problems) + "\n")
    return web.Response(text="ok\n")


async def metrics(request: web.Request) -> web.Response:
    readings, reads, trouble = request.app[READINGS_KEY], request.app[READS_KEY], request.app[TROUBLE_KEY]
    if readings is None or reads is None:
        raise web.HTTPNotFound(text="no metrics are read here\n")
    try:
        jobs = await reads.counts()
    except Exception as error:  # the store's own errors are many (sqlite3, asyncpg, OSError): each is told alike
        return web.Response(status=503, text=f"metrics unavailable: {trouble.failed(error)}\n")
    trouble.answered()
    return web.Response(body=page(readings, jobs), headers={"Content-Type": CONTENT_TYPE_LATEST})


def application(health: Health, readings: Readings | None) -> web.Application:
    """Both pages; without ``readings`` only ``/healthz``, judged on the gateway and the scheduler alone."""
    app = web.Application()
    app[HEALTH_KEY] = health
    app[READINGS_KEY] = readings
    app[READS_KEY] = reads = StoreReads.of(readings) if readings is not None else None
    app[TROUBLE_KEY] = StoreTrouble()

    async def give_up_reads(_: web.Application) -> None:  # a read still waiting on the store is not waited for
        if reads is not None:
            reads.probe.cancel()
            reads.counts.cancel()

    app.on_cleanup.append(give_up_reads)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    return app


def capped(server: web.Server, most: int) -> Callable[[], asyncio.Protocol]:
    """``server``'s protocol factory, closing the oldest connections first so at most ``most`` stay open (the
    newest is most likely a monitor with its request on the way; the oldest, one trickling its headers)."""
    letting_go: set[object] = set()

    def protocol() -> asyncio.Protocol:
        open_now = server.connections
        letting_go.intersection_update(open_now)  # the closed ones have left the list
        live = [handler for handler in open_now if handler not in letting_go]
        for handler in live[: max(0, len(live) - most + 1)]:
            # At once: a graceful close() waits for a request to arrive first. An answer takes milliseconds, so
            # only a flood of newer connections within them could cut one short.
            handler.force_close()
            letting_go.add(handler)
        return server()

    return protocol


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
async def serving(
    settings: ObserveSettings | None,
    health: Health,
    readings: Readings | None,
    *,
    limits: ServerLimits = ServerLimits(),  # frozen, so one shared default is safe
) -> AsyncIterator[int | None]:
    """Serve both pages while inside (nothing without ``HTTP_PORT``, or without settings); yields the port bound,
    or None.

    A port already taken, or a host that is not this machine's, is a ConfigError (exit 78 at start): running on
    without the pages would let a monitor read another process's /healthz on that port and call this one healthy.
    """
    if settings is None or settings.http_port is None:
        yield None
        return
    runner = web.AppRunner(
        application(health, readings),
        access_log=None,
        handle_signals=False,
        logger=requests_log,
        keepalive_timeout=limits.header_timeout_s,  # aiohttp's one clock on a connection waiting for a request head
        max_line_size=limits.max_head_line,
        max_field_size=limits.max_head_line,
        max_headers=limits.max_headers,
    )
    await runner.setup()
    assert runner.server is not None  # set up just now
    listening: asyncio.Server | None = None
    try:
        factory = capped(runner.server, limits.max_connections)
        try:  # aiohttp's own sites listen the same way, with the server itself as the protocol factory
            listening = await asyncio.get_running_loop().create_server(
                factory, settings.http_host, settings.http_port, reuse_address=True
            )
        except OSError as error:
            raise ConfigError(_refusal(settings, error)) from None
        port = int(listening.sockets[0].getsockname()[1])  # the one bound (the tests ask for port 0: any free one)
        log.info("Serving /healthz and /metrics on http://%s:%s", settings.http_host, port)
        yield port
    finally:
        if listening is not None:
            listening.close()
        await runner.cleanup()  # closes the connections still open
        if listening is not None:
            await listening.wait_closed()
