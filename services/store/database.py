"""One database, behind the few operations the repositories need, so a second engine is one more class.

The repositories (jobs, servers, usage, media, kv) speak only ``Database``: rows out, statements in, and a
transaction that makes a run of statements one. ``SqliteDatabase`` (here, over aiosqlite) is the default engine;
``PostgresDatabase`` (services/store/postgres.py, over an asyncpg pool) the one for several processes.

SQL placeholders are ``?`` (qmark), which sqlite3 takes natively; the PostgreSQL engine rewrites them to
``$1..$n`` before it sends a statement. The repositories' SQL keeps to what both engines accept: ``ON CONFLICT
... DO UPDATE / DO NOTHING`` (never ``INSERT OR ...``), no PRAGMA or date functions (times are epoch seconds),
an alias for every subquery in FROM, and sums cast or converted in Python (PostgreSQL's SUM of integers is a
``Decimal``). Each engine has its schema (services/store/migrations.py, migrations_pg.py: the same numbered list,
kept twins by a test), with the same columns, flags as integers (``charged = 1``).

A transaction belongs to the task that opened it: every statement that task runs while it is open, the reads of
a callback it awaits included (the limits read inside the inserting transaction), is part of it, and every write
of another task waits until it is over, so two coroutines never mix the statements of two transactions.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import AbstractAsyncContextManager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Protocol, Self

import aiosqlite

from services.store.migrations import MIGRATIONS

log = logging.getLogger(__name__)

Params = Sequence[Any]


class Row(Protocol):
    """A result row: its columns by position or by name, or unpacked in order."""

    def __getitem__(self, key: int | str, /) -> Any: ...

    def __iter__(self) -> Iterator[Any]: ...


class NewerSchemaError(Exception):
    """The database was written by a newer version of the bot; this one must not touch it."""


class Database(Protocol):
    """What the repositories need of a database engine."""

    @property
    def path(self) -> Path: ...

    async def fetch_all(self, sql: str, params: Params = ()) -> list[Row]: ...

    async def fetch_one(self, sql: str, params: Params = ()) -> Row | None: ...

    async def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement that writes; the number of rows it changed."""
        ...

    async def insert(self, sql: str, params: Params = ()) -> int:
        """Run one INSERT of one row; the new row's id."""
        ...

    def transaction(self) -> AbstractAsyncContextManager[None]:
        """The statements this task runs inside are one transaction, taken with the write lock first and
        rolled back if anything (an error, a cancel) cuts in."""
        ...

    async def schema_version(self) -> int: ...

    async def migrate(self) -> None:
        """Bring the schema up to this version's; ``NewerSchemaError`` when it is newer than this version knows."""
        ...

    async def close(self) -> None: ...


# The database whose transaction the running task is inside, if any (a context variable: each task has its own).
_inside: ContextVar[object | None] = ContextVar("inside_transaction_of", default=None)


class SqliteDatabase:
    """One aiosqlite connection to one SQLite file (WAL, foreign keys, a busy timeout), migrated on open.

    Reads never wait for the write lock, so a read by another task while a transaction is open sees its writes
    before they are committed (one connection: the store has always worked so).
    """

    def __init__(self, connection: aiosqlite.Connection, path: Path) -> None:
        self._connection = connection
        self._path = path
        # aiosqlite runs one call at a time, but two coroutines could interleave the statements of two
        # transactions on the one connection; this lock keeps each write, and each transaction, whole.
        self._write_lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: Path | str) -> Self:
        path = Path(path)
        if str(path) != ":memory:":
            path.parent.mkdir(parents=True, exist_ok=True)
        connection = await aiosqlite.connect(path, isolation_level=None)
        connection.row_factory = aiosqlite.Row
        database = cls(connection, path)
        try:
            await database._configure()
            await database.migrate()
        except BaseException:
            await connection.close()
            raise
        return database

    @property
    def path(self) -> Path:
        return self._path

    async def close(self) -> None:
        await self._connection.close()

    async def _configure(self) -> None:
        for pragma in ("journal_mode = WAL", "synchronous = NORMAL", "foreign_keys = ON", "busy_timeout = 5000"):
            await self._connection.execute_fetchall(f"PRAGMA {pragma}")

    async def schema_version(self) -> int:
        row = await self.fetch_one("PRAGMA user_version")
        return int(row[0]) if row else 0

    async def migrate(self) -> None:
        version = await self.schema_version()
        if version > len(MIGRATIONS):
            raise NewerSchemaError(
                f"{self._path} was written by a newer version of the bot (schema {version}; this version knows "
                f"up to {len(MIGRATIONS)}). Upgrade the bot, or restore a backup made before the upgrade."
            )
        async with self._write_lock:
            for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
                log.info("Applying database migration %d", number)
                await self._connection.executescript(
                    f"BEGIN IMMEDIATE;\n{script}\nPRAGMA user_version = {number};\nCOMMIT;"
                )

    async def fetch_all(self, sql: str, params: Params = ()) -> list[Row]:
        # Executed and read in one call on aiosqlite's thread: a statement left half-read between two calls would
        # hold a read snapshot, and a BEGIN IMMEDIATE queued in between would fail at once instead of waiting.
        return list(await self._connection.execute_fetchall(sql, params))

    async def fetch_one(self, sql: str, params: Params = ()) -> Row | None:
        rows = await self.fetch_all(sql, params)
        return rows[0] if rows else None

    async def execute(self, sql: str, params: Params = ()) -> int:
        async with self._writing():
            cursor = await self._connection.execute(sql, params)
            return cursor.rowcount

    async def insert(self, sql: str, params: Params = ()) -> int:
        async with self._writing():
            cursor = await self._connection.execute(sql, params)
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        if _inside.get() is self:
            raise RuntimeError("a transaction is already open in this task")
        async with self._write_lock:
            await self._connection.execute("BEGIN IMMEDIATE")
            token = _inside.set(self)
            try:
                yield
                await self._connection.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    await self._connection.execute("ROLLBACK")
                raise
            finally:
                _inside.reset(token)

    @contextlib.asynccontextmanager
    async def _writing(self) -> AsyncIterator[None]:
        """A lone write takes the lock; inside this task's own transaction it holds it already."""
        if _inside.get() is self:
            yield
            return
        async with self._write_lock:
            yield
