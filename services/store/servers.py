"""Each server's settings (only what its moderators changed) and the members it blocked from the bot."""

from __future__ import annotations

import time
from typing import Any

from services.policy.guild_policy import decode_overrides, encode_overrides
from services.store.database import Database


class ServerRepository:
    """The ``guild_settings`` and ``guild_bans`` tables."""

    def __init__(self, database: Database) -> None:
        self._db = database

    async def overrides(self, guild_id: int) -> dict[str, Any]:
        row = await self._db.fetch_one("SELECT overrides FROM guild_settings WHERE guild_id = ?", (guild_id,))
        return {} if row is None else decode_overrides(row[0])

    async def save_overrides(self, guild_id: int, overrides: dict[str, Any], by: int | None) -> None:
        await self._db.execute(
            """
            INSERT INTO guild_settings (guild_id, overrides, updated_at, updated_by) VALUES (?, ?, ?, ?)
            ON CONFLICT(guild_id) DO UPDATE SET
                overrides = excluded.overrides, updated_at = excluded.updated_at, updated_by = excluded.updated_by
            """,
            (guild_id, encode_overrides(overrides), time.time(), by),
        )

    async def is_banned(self, guild_id: int, user_id: int) -> bool:
        row = await self._db.fetch_one(
            "SELECT 1 FROM guild_bans WHERE guild_id = ? AND user_id = ?", (guild_id, user_id)
        )
        return row is not None

    async def ban(self, guild_id: int, user_id: int, *, by: int | None, reason: str | None) -> bool:
        """Block a member from the bot in one server; False when they already were."""
        changed = await self._db.execute(
            """
            INSERT INTO guild_bans (guild_id, user_id, banned_at, banned_by, reason) VALUES (?, ?, ?, ?, ?)
            ON CONFLICT(guild_id, user_id) DO NOTHING
            """,
            (guild_id, user_id, time.time(), by, reason),
        )
        return changed == 1

    async def unban(self, guild_id: int, user_id: int) -> bool:
        changed = await self._db.execute(
            "DELETE FROM guild_bans WHERE guild_id = ? AND user_id = ?", (guild_id, user_id)
        )
        return changed == 1

    async def banned_users(self, guild_id: int) -> list[int]:
        rows = await self._db.fetch_all(
            "SELECT user_id FROM guild_bans WHERE guild_id = ? ORDER BY banned_at", (guild_id,)
        )
        return [int(row[0]) for row in rows]
