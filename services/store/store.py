"""The store: the one source of truth, as repositories over one database.

``await Store.open(path)`` opens (and migrates) the SQLite file; ``store.jobs``, ``.servers``, ``.usage``,
``.media`` and ``.kv`` are the repositories, all over the same ``store.database``.
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import Self

from services.store.database import Database, SqliteDatabase
from services.store.jobs import JobRepository
from services.store.kv import KeyValueRepository
from services.store.media import MediaRepository
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
    async def open(cls, path: Path | str) -> Self:
        return cls(await SqliteDatabase.open(path))

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
