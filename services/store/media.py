"""What retention removes: the stored inputs and files of ended jobs, and the prompts of forgotten members.

The rows stay (their costs and counts with them); only media and forgotten prompts go. Never a job in flight,
nor one whose requester is still owed its ending (services/media/retention.py is the janitor that calls this).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from services.jobs.models import JobStatus
from services.store.database import Database
from services.store.rows import OWED_NOTICE, TERMINAL, marks

_MINE = "guild_id = ? AND user_id = ?"


class MediaRepository:
    """Which jobs' media may go, removing it, and forgetting a member."""

    def __init__(self, database: Database) -> None:
        self._db = database

    async def to_purge(
        self, ended_before: float | None, *, guild_id: int | None = None, user_id: int | None = None, limit: int = 100
    ) -> list[int]:
        """Ended jobs whose media is still kept and may go: ended before ``ended_before`` (None: none by age),
        or deleted, or forgotten. Never a job in flight, nor one whose requester is still owed its ending."""
        clauses = ["media_purged_at IS NULL", f"status IN ({marks(TERMINAL)})", f"NOT ({OWED_NOTICE})"]
        params: list[Any] = list(TERMINAL)
        reasons = "deleted_at IS NOT NULL OR forgotten_at IS NOT NULL"
        if ended_before is not None:
            reasons += " OR COALESCE(ended_at, updated_at) < ?"
            params.append(ended_before)
        clauses.append(f"({reasons})")
        if guild_id is not None:
            clauses.append(_MINE)
            params += [guild_id, user_id]
        rows = await self._db.fetch_all(
            f"SELECT id FROM jobs WHERE {' AND '.join(clauses)} ORDER BY id LIMIT ?", [*params, limit]
        )
        return [int(row[0]) for row in rows]

    async def purge(self, job_ids: Sequence[int], now: float) -> tuple[list[tuple[int, str | None]], int]:
        """Drop the stored inputs of ended jobs and mark their media removed (erasing forgotten prompts too).

        Returns each purged job's (id, output_path), for the caller to delete the files, and the bytes of
        input freed inside the database (SQLite reuses those pages for new inputs).
        """
        if not job_ids:
            return [], 0
        ids = list(job_ids)
        where = (
            f"j.id IN ({marks(ids)}) AND j.status IN ({marks(TERMINAL)}) AND j.media_purged_at IS NULL "
            f"AND NOT ({OWED_NOTICE})"
        )
        async with self._db.transaction():
            rows = await self._db.fetch_all(
                f"""SELECT j.id, j.output_path,
                           COALESCE((SELECT length(data) FROM job_inputs i WHERE i.job_id = j.id), 0)
                    FROM jobs j WHERE {where}""",
                [*ids, *TERMINAL],
            )
            purged = [int(row[0]) for row in rows]
            if purged:
                await self._db.execute(f"DELETE FROM job_inputs WHERE job_id IN ({marks(purged)})", purged)
                await self._db.execute(
                    f"""UPDATE jobs SET media_purged_at = ?, updated_at = ?,
                            prompt = CASE WHEN forgotten_at IS NULL THEN prompt ELSE '' END
                        WHERE id IN ({marks(purged)})""",
                    [now, now, *purged],
                )
        return [(int(row[0]), row[1]) for row in rows], sum(int(row[2]) for row in rows)

    async def forget_member(self, guild_id: int, user_id: int, now: float) -> tuple[int, int, int]:
        """Mark a member's jobs in a server forgotten and erase the prompts of those that are over.

        A job still in flight (or whose ending its requester is still owed) keeps its prompt until it is over:
        xAI may still need it, and the janitor erases it then. Returns (jobs in all, newly forgotten, waiting).
        """
        async with self._db.transaction():
            newly = await self._db.execute(
                f"UPDATE jobs SET forgotten_at = ?, updated_at = ? WHERE {_MINE} AND forgotten_at IS NULL",
                (now, now, guild_id, user_id),
            )
            await self._db.execute(
                f"""UPDATE jobs SET prompt = '' WHERE {_MINE} AND prompt != ''
                    AND status IN ({marks(TERMINAL)}) AND NOT ({OWED_NOTICE})""",
                (guild_id, user_id, *TERMINAL),
            )
            row = await self._db.fetch_one(
                f"""SELECT COUNT(*),
                           COALESCE(SUM(CASE WHEN status NOT IN ({marks(TERMINAL)}) OR ({OWED_NOTICE}) THEN 1 END), 0)
                    FROM jobs WHERE {_MINE}""",
                (*TERMINAL, guild_id, user_id),
            )
        total, waiting = (int(row[0]), int(row[1])) if row else (0, 0)
        return total, newly, waiting

    async def states(self, job_ids: Iterable[int]) -> dict[int, tuple[JobStatus, bool]]:
        """(status, media removed?) of the given jobs the store knows; an id it does not know is left out."""
        ids, states = sorted(set(job_ids)), {}
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            rows = await self._db.fetch_all(
                f"SELECT id, status, media_purged_at FROM jobs WHERE id IN ({marks(chunk)})", chunk
            )
            for row in rows:
                states[int(row[0])] = (JobStatus(row[1]), row[2] is not None)
        return states
