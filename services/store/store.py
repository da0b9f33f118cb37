"""The store: the one source of truth, as repositories over one database.

``await Store.open(path)`` opens (and migrates) the SQLite file, ``await Store.open(path, url=DATABASE_URL)`` the
PostgreSQL database instead (``path`` then only says where the bot's files go); ``store.jobs``, ``.servers``,
``.usage``, ``.media`` and ``.kv`` are the repositories, all over the same ``store.database``.
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import Self

from services.store.database import Database, SqliteDatabase
from services.store.jobs import JobRepository
from services.store.kv import KeyValueRepository
from services.store.media import MediaRepository
from services.store.postgres import PostgresDatabase, is_postgres_url
from services.store.servers import ServerRepository
from services.store.usage import UsageRepository


class Store:
    """Every repository over one database. Open with ``await Store.open(path)``; close when done."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self.jobs = JobRepository(database)
        self.servers = ServerRepository(database)
        self.usage = UsageRepository(database)
        self.media = MediaRepository(database)
        self.kv = KeyValueRepository(database)

    @classmethod
    async def open(cls, path: Path | str, *, url: str | None = None) -> Self:
        """The SQLite file at ``path``, or with ``url`` (``postgresql://...``) that PostgreSQL database."""
        if url is None:
            return cls(await SqliteDatabase.open(path))
        if not is_postgres_url(url):
            raise ValueError("a database URL starts with postgresql:// or postgres://")
        return cls(await PostgresDatabase.open(url, path))

    @property
    def engine(self) -> str:
        """``sqlite`` or ``postgresql``: what ``check`` and the start-up line name."""
        return "postgresql" if isinstance(self.database, PostgresDatabase) else "sqlite"

    @property
    def path(self) -> Path:
        return self.database.path

    async def schema_version(self) -> int:
        return await self.database.schema_version()

    async def close(self) -> None:
        await self.database.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
