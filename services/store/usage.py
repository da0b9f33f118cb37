"""The history the limits, ``/quota`` and ``/usage`` read: which jobs count, from when, and for how much.

The queries are in services/store/counting.py (which jobs count, rendered from ``models.COUNTED``); every
tick is priced by ``GuildPolicy.spend_ticks`` (by each job's model), the one price rule, here and in ``/usage`` alike.
"""

from __future__ import annotations

from typing import Any

from services.jobs.models import IN_THE_MAKING, Job, Mode, Use
from services.policy.guild_policy import GuildPolicy
from services.store import counting
from services.store.database import Database
from services.store.rows import fetch_jobs


class UsageRepository:
    """What members and servers used (implements ``services.policy.limits.RecentUse``)."""

    def __init__(self, database: Database) -> None:
        self._db = database

    async def _one(self, query: counting.Query) -> Any:
        row = await self._db.fetch_one(*query)
        return row[0] if row else None

    async def counted_count(self, guild_id: int, user_id: int | None, since: float) -> int:
        """How many jobs count against a limit in the window since ``since`` (in the making: whatever their age)."""
        return int(await self._one(counting.count_query(guild_id, user_id, since)) or 0)

    async def counted_uses(self, guild_id: int, user_id: int | None, since: float) -> list[Use]:
        """The jobs that count in the window, with when each was charged and whether it is still in the making."""
        rows = await self._db.fetch_all(*counting.uses_query(guild_id, user_id, since))
        return [Use(row[0], bool(row[1])) for row in rows]

    async def spend_total(self, guild_id: int, since: float, policy: GuildPolicy) -> int:
        """The ticks a server's counted jobs of the window count for: xAI's figure, else their model's estimate."""
        reported, *unpriced = await self._db.fetch_all(*counting.spend_query(guild_id, since))
        estimated = sum(
            jobs * policy.spend_ticks(None, True, model, Mode(mode), duration, resolution)
            for model, mode, duration, resolution, jobs, _ in unpriced
        )
        return int(reported[5]) + int(estimated)

    async def spend_uses(self, guild_id: int, since: float, policy: GuildPolicy) -> list[Use]:
        """``spend_total`` job by job (only needed to tell when enough spend leaves the window)."""
        rows = await self._db.fetch_all(*counting.spend_uses_query(guild_id, since))
        return [
            Use(charged_at, bool(in_flight), policy.spend_ticks(ticks, True, model, Mode(mode), duration, resolution))
            for model, mode, duration, resolution, ticks, charged_at, in_flight in rows
        ]

    async def active_count(self, guild_id: int, user_id: int) -> int:
        """A member's videos in the making, a cancelled one that xAI still generates included."""
        return int(await self._one(counting.in_making_query(guild_id, user_id)) or 0)

    async def in_guild(self, guild_id: int, *, since: float | None = None, user_id: int | None = None) -> list[Job]:
        """A server's jobs (of one member) that the limits' windows place since ``since``, oldest first: what
        ``/usage`` adds up. A finished job is placed when it was charged (else created), one in the making now
        (``Job.counts_at``), as the limits count them."""
        clauses: list[str] = ["j.guild_id = ?"]
        params: list[Any] = [guild_id]
        if since is not None:
            clauses.append(f"(COALESCE(j.charged_at, j.created_at) >= ? OR {IN_THE_MAKING.sql()})")
            params.append(since)
        if user_id is not None:
            clauses.append("j.user_id = ?")
            params.append(user_id)
        return await fetch_jobs(self._db, f"WHERE {' AND '.join(clauses)} ORDER BY j.created_at", params)
