"""Getting on its feet: the store opened in plain words, a network that is not there yet waited out.

A bot started before the network is up (a laptop waking, a server booting, Discord having a bad minute)
should say so in one line and try again, not print a traceback and die; a SIGTERM or Ctrl-C while it
waits ends it at once. Nothing here knows Discord's library: bot.py decides what counts as unreachable.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sqlite3
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import asyncpg

from services.config import DISCORD_REFUSED_LOGIN, ConfigError, Secret, Settings, env_folders
from services.process import proxies
from services.store import postgres
from services.store.database import NewerSchemaError
from services.store.patience import is_busy
from services.store.store import Store

log = logging.getLogger(__name__)
T = TypeVar("T")


# -- the store ---------------------------------------------------------------------------------------------


async def open_store(
    path: Path,
    url: Secret | None = None,
    *,
    stop: StopSignal | None = None,
    backoff: Backoff | None = None,
    named: str = "DATABASE_URL",
) -> Store:
    """``Store.open`` with every way it can fail turned into one line (a ConfigError: exit status 78).

    With ``url`` (DATABASE_URL) the store is PostgreSQL's: a server that cannot be reached yet is waited out
    like the network at start (one line, then ``backoff``; a stop ends the wait) when ``stop`` is given, and is
    a ConfigError otherwise. ``path`` is then only where the bot's files are kept; ``named`` is where the person
    wrote the URL, for what the errors tell them to fix.
    """
    if url is not None:
        return await _open_postgres(path, url.reveal(), stop, backoff, named)
    _refuse_unwritable(path)
    try:
        return await Store.open(path)
    except (NewerSchemaError, sqlite3.DatabaseError, OSError) as error:
        raise ConfigError(_why_not_opened(path, error)) from None


async def _open_postgres(path: Path, url: str, stop: StopSignal | None, backoff: Backoff | None, named: str) -> Store:
    while True:
        try:
            if stop is None:
                return await _postgres_store(path, url, named)
            return await stop.unless_stopped(_postgres_store(path, url, named))
        except Unreachable as unreachable:
            if stop is None or backoff is None:
                raise ConfigError(f"{unreachable}; start PostgreSQL or fix {named}") from None
            delay = backoff.next_delay()
            log.warning("%s; trying again in %s", unreachable, seconds(delay))
            await stop.sleep(delay)


async def _postgres_store(path: Path, url: str, named: str) -> Store:
    """One try; Unreachable when the server is not there (yet), ConfigError when it will not have the bot."""
    try:
        return await Store.open(path, url=url)
    except Exception as error:
        raise postgres_failure(error, url, named) from None


def postgres_failure(error: Exception, url: str, named: str = "DATABASE_URL") -> Exception:
    """What a failure to reach or open PostgreSQL means, as Unreachable (worth another try) or ConfigError (one
    line saying what to fix, in ``named``: where the person wrote the URL; never the password). Anything else is
    passed back as it was."""
    where = postgres.where(url)
    if isinstance(error, OSError | TimeoutError | asyncpg.CannotConnectNowError | asyncpg.TooManyConnectionsError):
        return Unreachable(f"Could not reach PostgreSQL at {where} ({reason(error)})")
    if isinstance(error, asyncpg.InvalidPasswordError | asyncpg.InvalidAuthorizationSpecificationError):
        return ConfigError(
            f"PostgreSQL at {where} refused to let user {postgres.user(url)!r} in (wrong password, or no such "
            f"user): fix the user and password in {named}"
        )
    if isinstance(error, asyncpg.InvalidCatalogNameError):
        return ConfigError(f"PostgreSQL at {where} has no database of that name: create it (createdb) or fix {named}")
    if isinstance(error, NewerSchemaError):
        return ConfigError(str(error))
    if isinstance(error, asyncpg.PostgresError | asyncpg.InterfaceError | ValueError):
        text = str(error).replace(url, postgres.shown_url(url))
        return ConfigError(f"The store in PostgreSQL at {where} cannot be opened ({text}); check {named}")
    return error


def _why_not_opened(path: Path, error: NewerSchemaError | sqlite3.DatabaseError | OSError) -> str:
    """The one line for a store that would not open: what is wrong with DATABASE_PATH, and what to do."""
    if isinstance(error, NewerSchemaError):
        return str(error)
    if isinstance(error, sqlite3.OperationalError) and is_busy(error):
        return f"{path} is locked by another program (an sqlite3 shell, a backup?); close it and start again"
    if isinstance(error, sqlite3.OperationalError):
        return (
            f"DATABASE_PATH={path} cannot be opened for writing ({error}); "
            "point it at a file in a folder the bot may write"
        )
    if isinstance(error, sqlite3.DatabaseError):
        return (
            f"DATABASE_PATH={path} is not a database this bot can use ({error}); "
            "move the file away or fix DATABASE_PATH"
        )
    return f"DATABASE_PATH={path} cannot be created ({error.strerror or error}); point it at a folder the bot may write"


def _refuse_unwritable(path: Path) -> None:
    """SQLite opens a file it may not write read-only without a word, and fails at the first job: say it now."""
    if str(path) == ":memory:":
        return
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        if file.exists() and not os.access(file, os.W_OK):
            raise ConfigError(
                f"DATABASE_PATH={path} cannot be opened for writing ({file.name} is read-only); "
                "check the file's owner and permissions"
            )


# -- waiting for the network --------------------------------------------------------------------------------


class Unreachable(Exception):
    """A service could not be reached for now; ``str`` is the one line to log. Worth another try."""

    def __init__(self, text: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(text)
        self.retry_after_s = retry_after_s


class Stopped(Exception):
    """SIGTERM or SIGINT arrived while starting up: stop, cleanly, with status 0."""


@dataclass(slots=True)
class Backoff:
    """Delays that double from ``first_s`` up to ``max_s``: quick when the outage is a blip, calm when it is not."""

    first_s: float
    max_s: float
    _next_s: float | None = None

    def next_delay(self) -> float:
        delay = self.first_s if self._next_s is None else self._next_s
        self._next_s = min(delay * 2, self.max_s)
        return min(delay, self.max_s)


@dataclass(slots=True)
class StopSignal:
    """Set once by SIGTERM: wakes every wait, cancels start-up work in flight, and then runs ``on_stop``."""

    _event: asyncio.Event = field(default_factory=asyncio.Event)
    _on_stop: Callable[[], Awaitable[None]] | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def stopped(self) -> bool:
        return self._event.is_set()

    def stop(self) -> None:
        """The signal handler: safe to call more than once."""
        if self._event.is_set():
            return
        self._event.set()
        if self._on_stop is not None:
            task = asyncio.get_running_loop().create_task(self._close(self._on_stop))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _close(self, on_stop: Callable[[], Awaitable[None]]) -> None:
        await on_stop()

    def on_stop(self, callback: Callable[[], Awaitable[None]] | None) -> None:
        """From now on a stop runs ``callback`` (e.g. the bot's orderly close) instead of cancelling."""
        self._on_stop = callback

    async def drain(self) -> None:
        """Wait for whatever ``on_stop`` started to finish."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds``; raise Stopped as soon as a stop arrives."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), seconds)
        if self.stopped:
            raise Stopped

    async def unless_stopped(self, work: Coroutine[Any, Any, T]) -> T:
        """Run ``work``; if a stop arrives first, cancel it and raise Stopped."""
        if self.stopped:
            work.close()
            raise Stopped
        task = asyncio.ensure_future(work)
        waiter = asyncio.ensure_future(self._event.wait())
        try:
            await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:  # cancelled from outside (Ctrl-C): take the work down too, then pass it on
            waiter.cancel()
            await _cancelled(task)
            raise
        waiter.cancel()
        if task.done():
            return task.result()
        await _cancelled(task)
        raise Stopped


async def _cancelled(task: asyncio.Future[Any]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task


def reason(error: BaseException) -> str:
    """A network failure in a few words, for the one line (no traceback, no secret)."""
    if isinstance(error, aiohttp.ClientProxyConnectionError):
        return "cannot connect to the proxy set in HTTPS_PROXY / HTTP_PROXY"
    if isinstance(error, aiohttp.ClientConnectorDNSError):
        return f"cannot resolve {error.host}"
    if isinstance(error, aiohttp.ClientConnectorError):
        why = error.os_error.strerror or type(error.os_error).__name__
        return f"cannot connect to {error.host}:{error.port}: {why}"
    if isinstance(error, TimeoutError):
        return "no answer in time"
    if isinstance(error, aiohttp.ServerDisconnectedError):
        return "the server closed the connection"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    text = str(error).splitlines()[0] if str(error) else ""
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def seconds(value: float) -> str:
    return f"{value:.0f} s" if value >= 1 else f"{value:.1f} s"


async def ask_gateway(base: str, token: Secret) -> str:
    """The gateway address a Discord REST proxy (or the test emulator) gives at ``/gateway/bot``.

    Unreachable when it cannot be reached or answers 5xx / 429 (worth another try); ConfigError when it
    refuses the token or will not say (not worth one).
    """
    headers = {"Authorization": f"Bot {token.reveal()}"}
    timeout = aiohttp.ClientTimeout(total=30)
    try:
        async with (
            proxies.session(reaching=base, timeout=timeout) as session,
            session.get(f"{base}/gateway/bot", headers=headers) as response,
        ):
            if response.status == 401:
                raise ConfigError(DISCORD_REFUSED_LOGIN)
            if response.status == 429 or response.status >= 500:
                raise Unreachable(f"Discord at {base} answered HTTP {response.status} when asked for its gateway")
            status = response.status
            body = await response.read() if status == 200 else b""
    except (OSError, aiohttp.ClientError, TimeoutError) as error:
        raise Unreachable(f"Could not reach Discord at {base} ({reason(error)})") from None
    with contextlib.suppress(ValueError):
        data = json.loads(body)
        url = data.get("url") if isinstance(data, dict) else None
        if isinstance(url, str) and url.startswith(("ws://", "wss://")):
            return url
    raise ConfigError(
        f"DISCORD_API_BASE_URL={base} did not tell me its gateway (HTTP {status}); set DISCORD_GATEWAY_URL too"
    )


# -- the log ------------------------------------------------------------------------------------------------


# discord.py warns at every start that voice needs extra packages; this bot never speaks in voice channels.
_VOICE_WARNINGS = ("PyNaCl is not installed", "davey is not installed")


class _TidyDiscordLog(logging.Filter):
    """discord.py logs a whole traceback each time it cannot reach the gateway and tries again; one line says it.

    Its warnings about voice support, which this bot does not use, are dropped.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if str(record.msg).startswith(_VOICE_WARNINGS):
            return False
        if record.exc_info and str(record.msg).startswith("Attempting a reconnect"):
            why = reason(record.exc_info[1]) if record.exc_info[1] else "unknown"
            record.msg = f"Lost the connection to Discord's gateway ({why.replace('%', '%%')}); reconnecting in %.0f s"
            record.exc_info = None
            record.exc_text = None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def tidy_discord_log(logger: logging.Logger) -> None:
    """Install the filter on discord.py's client logger (once)."""
    if not any(isinstance(existing, _TidyDiscordLog) for existing in logger.filters):
        logger.addFilter(_TidyDiscordLog())


def log_sources(settings: Settings) -> None:
    """Start-up says which .env it read (or that it read none), and where the store is."""
    if settings.env_file is not None:
        log.info("Settings: read %s (the environment wins over it)", settings.env_file.resolve())
    elif os.environ.get("ENV_FILE", "").strip().lower() == "none":
        log.info("Settings: from the environment only (ENV_FILE=none)")
    else:
        folders = " and ".join(str(folder) for folder in env_folders())
        log.info("Settings: no .env file in %s; using the environment only", folders)
    if settings.database_url is not None:
        url = settings.database_url.reveal()
        log.info("Store: PostgreSQL at %s (DATABASE_URL)", postgres.shown_url(url))
    elif str(settings.database_path) != ":memory:":
        log.info("Store: %s", settings.database_path.resolve())
