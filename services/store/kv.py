"""A small key-value table for the bot's own bookkeeping (what it must remember across restarts)."""

from __future__ import annotations

from services.store.database import Database


class KeyValueRepository:
    """The ``kv`` table: text values by text key."""

    def __init__(self, database: Database) -> None:
        self._db = database

    async def set(self, key: str, value: str) -> None:
        await self._db.execute(
            "INSERT INTO kv (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    async def set_if_absent(self, key: str, value: str) -> str:
        """``value`` stored under ``key`` unless one is there already; the value that is (so two processes that
        race to make the same setting end up with the first one's)."""
        await self._db.execute("INSERT INTO kv (key, value) VALUES (?, ?) ON CONFLICT(key) DO NOTHING", (key, value))
        stored = await self.get(key)
        assert stored is not None
        return stored

    async def get(self, key: str) -> str | None:
        row = await self._db.fetch_one("SELECT value FROM kv WHERE key = ?", (key,))
        return None if row is None else str(row[0])
