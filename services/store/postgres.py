"""The store on PostgreSQL (asyncpg): the engine for several bot processes on one database.

``PostgresDatabase`` speaks the same ``Database`` Protocol as ``SqliteDatabase``, so the repositories do not
know which engine they run on: their ``?`` placeholders become ``$1..$n`` here (once per statement text, never
inside a quoted literal), ``insert`` returns the new id through ``RETURNING id``, ``execute`` the rowcount from
the command tag (so guarded transitions, "UPDATE ... WHERE id = ? AND status = ?", still tell who won).

Limits are decided atomically across processes as SQLite's ``BEGIN IMMEDIATE`` decides them in one: every
``transaction()`` first takes ``pg_advisory_xact_lock(TRANSACTION_LOCK)``, one lock for the whole store, held
until its COMMIT or ROLLBACK, so the transactions of every process touching the database run one after the
other and the limit check read inside the inserting transaction sees every job admitted before it. Lone
writes outside a transaction do not take it: each is one statement, its row locks keep a guarded transition
whole, and none of them can add a job to a count (only an insert does, and the store inserts jobs inside a
transaction), so a limit can never be passed by one. The lock's key is (``TRANSACTION_LOCK``, a hash of the
schema the store lives in): stores in two schemas of one database do not wait for each other.

A transaction belongs to the task that opened it (a context variable), on one connection of the pool for its
whole life; the statements of other tasks use other connections, so they see its writes only once it commits
(on SQLite's one connection they see them at once). Cancelled or failed, it is rolled back, and the pool takes
the connection back clean (or closes it), so the lock is never left held.

``path`` is DATABASE_PATH even here: not the database, but where the bot keeps its files (the videos folder
sits beside it), as it does on SQLite.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
from collections.abc import AsyncIterator, Sequence
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self
from urllib.parse import SplitResult, parse_qsl, urlsplit, urlunsplit

import asyncpg

from services.store.database import NewerSchemaError, Params, Row
from services.store.migrations_pg import MIGRATIONS_PG

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    Connection = PoolConnectionProxy[asyncpg.Record]

log = logging.getLogger(__name__)

URL_SCHEMES = ("postgresql://", "postgres://")
# The first half of the advisory lock every store transaction takes first ("gvb" and 1, as one int4).
TRANSACTION_LOCK = 0x6776_6201
POOL_SIZE = 10
CONNECT_TIMEOUT_S = 10.0
CLOSE_WAIT_S = 10.0  # how long closing waits for connections still in use before it drops them
# Asked of the server for every pooled session. A process cut off from the server (network, a frozen VM) in the
# middle of a transaction holds the store's one transaction lock until the server ends that session: TCP keepalives
# end it within about 11 s once its host stops answering (the kernel's default waits two hours), and a transaction
# left idle, whose process hangs, is ended after a minute (every store transaction is a few statements long).
KEEPALIVES = {"tcp_keepalives_idle": "5", "tcp_keepalives_interval": "2", "tcp_keepalives_count": "3"}
SESSION_SETTINGS = {**KEEPALIVES, "idle_in_transaction_session_timeout": "60000"}

_connection_of: ContextVar[tuple[object, Connection] | None] = ContextVar("pg_transaction", default=None)


def is_postgres_url(text: str) -> bool:
    return text.startswith(URL_SCHEMES)


def _split(url: str) -> SplitResult:
    """``urlsplit``, or, for a URL it refuses (an unclosed "[" of an IPv6 host), the same parts cut by hand: a
    typo in DATABASE_URL is then reported by the server's driver in one line, not as a traceback."""
    try:
        return urlsplit(url)
    except ValueError:
        scheme, _, rest = url.partition("://")
        rest, _, fragment = rest.partition("#")
        rest, _, query = rest.partition("?")
        netloc, slash, path = rest.partition("/")
        return SplitResult(scheme, netloc, slash + path, query, fragment)


def shown_url(url: str) -> str:
    """The URL with its passwords masked, for logs and messages (``postgresql://bot:***@db:5432/grok``): the one
    before the host, and a ``password=`` or ``sslpassword=`` among its parameters (libpq takes both)."""
    parts = _split(url)
    netloc = parts.netloc
    userinfo, at, hosts = netloc.rpartition("@")
    if at and ":" in userinfo:
        netloc = f"{userinfo.partition(':')[0]}:***@{hosts}"
    query = _QUERY_PASSWORD.sub(r"\1=***", parts.query)
    if (netloc, query) == (parts.netloc, parts.query):
        return url
    return urlunsplit(parts._replace(netloc=netloc, query=query))


_QUERY_PASSWORD = re.compile(r"(?<![^&])((?:ssl)?password)=[^&]*", re.IGNORECASE)


def where(url: str) -> str:
    """``host:port/dbname`` of a URL: enough to say which server, nothing secret."""
    parts = _split(url)
    hosts = parts.netloc.rpartition("@")[2] or "localhost"
    if ":" not in hosts and "," not in hosts:
        hosts += ":5432"
    return f"{hosts}/{parts.path.lstrip('/') or parts.username or ''}"


def user(url: str) -> str:
    return _split(url).username or ""


def url_password(url: str) -> str | None:
    """The password in the URL, before the host or else among its parameters (the redactor masks it wherever
    it would be logged)."""
    found = _split(url).password
    if found is None:
        found = next((value for key, value in parse_qsl(_split(url).query) if key.lower() == "password"), None)
    return found or None


@functools.lru_cache(maxsize=1024)
def numbered(sql: str) -> str:
    """``?`` placeholders as ``$1..$n``, leaving quoted literals and identifiers as they are."""
    out: list[str] = []
    number, quote = 0, ""
    for char in sql:
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "?":
            number += 1
            out.append(f"${number}")
            continue
        out.append(char)
    return "".join(out)


def _rowcount(status: str) -> int:
    """The rows a command changed, from its tag: ``UPDATE 1``, ``INSERT 0 1``, ``DELETE 3``."""
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0


class PostgresDatabase:
    """A pool of asyncpg connections to one PostgreSQL database, migrated on open."""

    def __init__(self, pool: asyncpg.Pool, url: str, path: Path, lock_key: int) -> None:
        self._pool = pool
        self._url = url
        self._path = path
        self._lock = (TRANSACTION_LOCK, lock_key)

    @classmethod
    async def open(cls, url: str, path: Path | str = Path("data/grok-video-bot.sqlite3"), **pool: Any) -> Self:
        """Connect (``pool`` overrides the pool's options, e.g. ``max_size``) and bring the schema up to date."""
        options: dict[str, Any] = {"min_size": 1, "max_size": POOL_SIZE, "server_settings": SESSION_SETTINGS, **pool}
        created = await asyncpg.create_pool(url, timeout=CONNECT_TIMEOUT_S, command_timeout=None, **options)
        assert created is not None
        try:
            schema_key = await created.fetchval("SELECT hashtext(COALESCE(current_schema(), ''))")
            database = cls(created, url, Path(path), int(schema_key))
            await database.migrate()
        except BaseException:
            await created.close()
            raise
        return database

    @property
    def path(self) -> Path:
        return self._path

    @property
    def shown(self) -> str:
        """Where the store is, fit to log (the password masked)."""
        return shown_url(self._url)

    async def close(self) -> None:
        """Close the pool; a connection still held after ``CLOSE_WAIT_S`` (a task stuck on a dead server) is
        dropped, so a shutdown never hangs on it."""
        try:
            await asyncio.wait_for(self._pool.close(), CLOSE_WAIT_S)
        except TimeoutError:
            log.warning("The database pool did not close within %.0f s; dropping its connections", CLOSE_WAIT_S)
            self._pool.terminate()

    # -- the schema ---------------------------------------------------------------------------------

    async def schema_version(self) -> int:
        async with self._pool.acquire() as connection:
            return await schema_version_of(connection)

    async def migrate(self) -> None:
        async with self._pool.acquire() as connection, connection.transaction():
            # Two processes starting at once: the second waits here, then finds the schema current.
            await connection.execute("SELECT pg_advisory_xact_lock($1, $2)", *self._lock)
            await connection.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            version = await schema_version_of(connection)
            if version > len(MIGRATIONS_PG):
                raise NewerSchemaError(
                    f"The PostgreSQL database {self.shown} was written by a newer version of the bot (schema "
                    f"{version}; this version knows up to {len(MIGRATIONS_PG)}). Upgrade the bot, or restore a "
                    "backup made before the upgrade."
                )
            for number, script in enumerate(MIGRATIONS_PG[version:], start=version + 1):
                log.info("Applying database migration %d (PostgreSQL)", number)
                await connection.execute(script)
            if version < len(MIGRATIONS_PG):
                await connection.execute("DELETE FROM schema_version")
                await connection.execute("INSERT INTO schema_version (version) VALUES ($1)", len(MIGRATIONS_PG))

    # -- statements ---------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[Connection]:
        """This task's transaction's connection, else one from the pool for one statement."""
        inside = _connection_of.get()
        if inside is not None and inside[0] is self:
            yield inside[1]
            return
        async with self._pool.acquire() as connection:
            yield connection

    async def fetch_all(self, sql: str, params: Params = ()) -> list[Row]:
        async with self._connection() as connection:
            return list(await connection.fetch(numbered(sql), *params))

    async def fetch_one(self, sql: str, params: Params = ()) -> Row | None:
        async with self._connection() as connection:
            row: Row | None = await connection.fetchrow(numbered(sql), *params)
            return row

    async def execute(self, sql: str, params: Params = ()) -> int:
        async with self._connection() as connection:
            return _rowcount(await connection.execute(numbered(sql), *params))

    async def execute_many(self, sql: str, rows: Sequence[Params]) -> None:
        """One statement over many rows, in one round of the wire (moving a store: services/store/transfer.py)."""
        async with self._connection() as connection:
            await connection.executemany(numbered(sql), rows)

    async def insert(self, sql: str, params: Params = ()) -> int:
        async with self._connection() as connection:
            new_id = await connection.fetchval(f"{numbered(sql).rstrip().rstrip(';')} RETURNING id", *params)
        return int(new_id)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        inside = _connection_of.get()
        if inside is not None and inside[0] is self:
            raise RuntimeError("a transaction is already open in this task")
        async with self._pool.acquire() as connection:
            transaction = connection.transaction()
            await transaction.start()
            token = _connection_of.set((self, connection))
            try:
                await connection.execute("SELECT pg_advisory_xact_lock($1, $2)", *self._lock)
                yield
                await transaction.commit()
            except BaseException:
                # A cancel in the middle of a statement leaves the connection busy: the pool's release then
                # closes it, and the server rolls back (and lets the lock go) with it.
                with contextlib.suppress(Exception):
                    await transaction.rollback()
                raise
            finally:
                _connection_of.reset(token)


async def schema_version_of(connection: Connection | asyncpg.Connection) -> int:
    """The store's schema version on this connection (0: no store here yet)."""
    exists = await connection.fetchval("SELECT to_regclass('schema_version') IS NOT NULL")
    if not exists:
        return 0
    version = await connection.fetchval("SELECT version FROM schema_version")
    return int(version or 0)
