"""The job store: one SQLite file, the single source of truth for every job.

A job's row is written before anything else happens to it. Status only moves forward: every
transition is one UPDATE whose WHERE clause names the status the caller expects, so a restart or
a second worker can never take the same step twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

import aiosqlite

from services.jobs.models import (
    FORWARD,
    Job,
    JobRequest,
    JobStatus,
    MediaInput,
    Mode,
    Origin,
    Use,
    VideoOptions,
)
from services.policy.guild_policy import GuildPolicy, decode_overrides, encode_overrides
from services.store import counting
from services.store.migrations import MIGRATIONS

log = logging.getLogger(__name__)

R = TypeVar("R")

# Columns a caller may set besides ``status``; names never come from user input.
UPDATABLE_FIELDS = frozenset(
    {
        "status_message_id",
        "request_id",
        "progress",
        "submitted_at",
        "finished_at",
        "downloaded_at",
        "delivered_at",
        "error_code",
        "error_message",
        "cost_usd_ticks",
        "output_path",
        "output_bytes",
        "video_duration_s",
        "delivered_channel_id",
        "delivered_message_id",
        "delivery_method",
        "deleted_at",
        "deleted_by",
        "notified_at",
        "charged",
        "charged_at",
    }
)


class NewerSchemaError(Exception):
    """The database was written by a newer version of the bot; this one must not touch it."""


class TransitionError(Exception):
    """A caller asked for a move the state machine does not allow (a bug, not a race)."""


class JobStore:
    """Async access to the jobs table. Open with ``await JobStore.open(path)``; close when done."""

    def __init__(self, connection: aiosqlite.Connection, path: Path) -> None:
        self._db = connection
        self.path = path
        # aiosqlite runs one call at a time, but two coroutines could interleave the statements
        # of two transactions; this lock keeps each write transaction whole.
        self._write_lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: Path | str) -> Self:
        path = Path(path)
        if str(path) != ":memory:":
            path.parent.mkdir(parents=True, exist_ok=True)
        connection = await aiosqlite.connect(path, isolation_level=None)
        connection.row_factory = aiosqlite.Row
        store = cls(connection, path)
        try:
            await store._configure()
            await store._migrate()
        except BaseException:
            await connection.close()
            raise
        return store

    async def close(self) -> None:
        await self._db.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def _configure(self) -> None:
        await self._db.execute("PRAGMA journal_mode = WAL")
        await self._db.execute("PRAGMA synchronous = NORMAL")
        await self._db.execute("PRAGMA foreign_keys = ON")
        await self._db.execute("PRAGMA busy_timeout = 5000")

    async def _migrate(self) -> None:
        async with self._db.execute("PRAGMA user_version") as cursor:
            row = await cursor.fetchone()
        version = int(row[0]) if row else 0
        if version > len(MIGRATIONS):
            raise NewerSchemaError(
                f"{self.path} was written by a newer version of the bot (schema {version}; this version knows "
                f"up to {len(MIGRATIONS)}). Upgrade the bot, or restore a backup made before the upgrade."
            )
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            log.info("Applying database migration %d", number)
            await self._db.executescript(f"BEGIN IMMEDIATE;\n{script}\nPRAGMA user_version = {number};\nCOMMIT;")

    async def schema_version(self) -> int:
        async with self._db.execute("PRAGMA user_version") as cursor:
            row = await cursor.fetchone()
        return int(row[0]) if row else 0

    # -- writing -------------------------------------------------------------------------------

    async def create_job(self, request: JobRequest, *, status: JobStatus = JobStatus.QUEUED) -> Job:
        """Record a new job and its input media in one transaction, before anything else happens."""
        job = await self.create_job_unless(request, _always_admit, status=status)
        assert isinstance(job, Job)
        return job

    async def create_job_unless(
        self,
        request: JobRequest,
        refuse: Callable[[float], Awaitable[R | None]],
        *,
        status: JobStatus = JobStatus.QUEUED,
    ) -> Job | R:
        """Record a new job unless ``refuse(now)`` objects, deciding inside the inserting transaction.

        ``BEGIN IMMEDIATE`` takes SQLite's write lock before ``refuse`` reads the history, so two requests
        racing for the last slot (in this process or another one) are decided one after the other.
        """
        async with self._write_lock:
            return await self._insert_job(request, status, refuse)

    async def _insert_job(
        self, request: JobRequest, status: JobStatus, refuse: Callable[[float], Awaitable[R | None]]
    ) -> Job | R:
        now = time.time()
        origin, options = request.origin, request.options
        await self._db.execute("BEGIN IMMEDIATE")
        try:
            objection = await refuse(now)
            if objection is not None:
                await self._db.execute("ROLLBACK")
                return objection
            cursor = await self._db.execute(
                """
                INSERT INTO jobs (created_at, updated_at, origin, guild_id, channel_id, user_id, source_message_id,
                                  mode, prompt, duration, aspect_ratio, resolution, parent_job_id, status,
                                  status_message_id)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
                (
                    now,
                    now,
                    origin.kind,
                    origin.guild_id,
                    origin.channel_id,
                    origin.user_id,
                    origin.source_message_id,
                    request.mode.value,
                    request.prompt,
                    options.duration,
                    options.aspect_ratio,
                    options.resolution,
                    request.parent_job_id,
                    status.value,
                    request.status_message_id,
                ),
            )
            job_id = cursor.lastrowid
            assert job_id is not None
            if request.media is not None:
                await self._db.execute(
                    "INSERT INTO job_inputs (job_id, mime_type, filename, data) VALUES (?, ?, ?, ?)",
                    (job_id, request.media.mime_type, request.media.filename, request.media.data),
                )
            await self._db.execute("COMMIT")
        except BaseException:
            await self._db.execute("ROLLBACK")
            raise
        job = await self.get(job_id)
        assert job is not None
        return job

    async def transition(
        self, job_id: int, expected: JobStatus | Iterable[JobStatus], new: JobStatus, **fields: Any
    ) -> bool:
        """Move a job from ``expected`` to ``new`` and set ``fields``; False when it was not in ``expected``."""
        return await self._transition(job_id, expected, new, fields, ends=new.is_terminal)

    async def cancel_while_at_xai(self, job_id: int, expected: JobStatus | Iterable[JobStatus], **fields: Any) -> bool:
        """Cancel a job xAI goes on generating: over for its requester, but still in the making (no ``ended_at``)
        until ``settle`` records that xAI is done with it."""
        return await self._transition(job_id, expected, JobStatus.CANCELLED, fields, ends=False)

    async def _transition(
        self,
        job_id: int,
        expected: JobStatus | Iterable[JobStatus],
        new: JobStatus,
        fields: dict[str, Any],
        *,
        ends: bool,
    ) -> bool:
        expected_set = {expected} if isinstance(expected, JobStatus) else set(expected)
        for old in expected_set:
            if new not in FORWARD.get(old, frozenset()):
                raise TransitionError(f"job status cannot move from {old} to {new}")
        assignments, values = self._assignments(fields)
        now = time.time()
        if ends:  # the moment retention counts from (services/media/retention.py), and the job leaves those in the making
            assignments, values = f"{assignments}, ended_at = ?", [*values, now]
        placeholders = ", ".join("?" for _ in expected_set)
        sql = f"UPDATE jobs SET status = ?, updated_at = ?{assignments} WHERE id = ? AND status IN ({placeholders})"
        params = [new.value, now, *values, job_id, *(s.value for s in expected_set)]
        async with self._write_lock:
            cursor = await self._db.execute(sql, params)
            changed = cursor.rowcount == 1
        if not changed:
            log.debug("Job %d was not in %s; not moved to %s", job_id, sorted(expected_set), new)
        return changed

    async def update(self, job_id: int, **fields: Any) -> None:
        """Set non-status fields (progress, message ids, cost...)."""
        if not fields:
            return
        assignments, values = self._assignments(fields)
        async with self._write_lock:
            await self._db.execute(
                f"UPDATE jobs SET updated_at = ?{assignments} WHERE id = ?", [time.time(), *values, job_id]
            )

    async def settle(self, job_id: int, cost_usd_ticks: int | None) -> bool:
        """A cancelled job xAI kept generating is over at xAI now (done, failed, expired, or let go): it leaves the
        videos in the making, and counts from when it was charged, at xAI's reported cost when there is one."""
        now = time.time()
        async with self._write_lock:
            cursor = await self._db.execute(
                """UPDATE jobs SET ended_at = ?, updated_at = ?, cost_usd_ticks = COALESCE(?, cost_usd_ticks)
                   WHERE id = ? AND status = 'cancelled' AND charged = 1 AND ended_at IS NULL""",
                (now, now, cost_usd_ticks, job_id),
            )
            return cursor.rowcount == 1

    async def still_at_xai(self) -> list[Job]:
        """Cancelled jobs xAI may still be generating (``settle`` not written yet): followed again after a restart."""
        quiet = "j.status = 'cancelled' AND j.charged = 1 AND j.ended_at IS NULL"  # as in counting.IN_FLIGHT_SQL
        return await self._fetch(f"{_SELECT_JOB} WHERE {quiet} ORDER BY j.id", ())

    @staticmethod
    def _assignments(fields: dict[str, Any]) -> tuple[str, list[Any]]:
        unknown = set(fields) - UPDATABLE_FIELDS
        if unknown:
            raise ValueError(f"not an updatable job field: {sorted(unknown)}")
        names = sorted(fields)
        sql, values = "".join(f", {name} = ?" for name in names), [fields[name] for name in names]
        if "charged" in fields and "charged_at" not in fields:
            # Set with the flag: when the request went on the wire (the moment a finished job counts from). Kept
            # when it was charged already (a later write of the same verdict), cleared when it is handed back.
            if fields["charged"]:
                sql, values = f"{sql}, charged_at = COALESCE(charged_at, ?)", [*values, time.time()]
            else:
                sql += ", charged_at = NULL"
        return sql, values

    async def set_value(self, key: str, value: str) -> None:
        async with self._write_lock:
            await self._db.execute(
                "INSERT INTO kv (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    # -- reading -------------------------------------------------------------------------------

    async def get(self, job_id: int) -> Job | None:
        rows = await self._fetch(f"{_SELECT_JOB} WHERE j.id = ?", (job_id,))
        return rows[0] if rows else None

    async def get_input(self, job_id: int) -> MediaInput | None:
        async with self._db.execute(
            "SELECT mime_type, filename, data FROM job_inputs WHERE job_id = ?", (job_id,)
        ) as cursor:
            row = await cursor.fetchone()
        if row is None:
            return None
        return MediaInput(data=bytes(row["data"]), mime_type=row["mime_type"], filename=row["filename"])

    async def jobs_with_status(self, statuses: Iterable[JobStatus]) -> list[Job]:
        wanted = [s.value for s in statuses]
        placeholders = ", ".join("?" for _ in wanted)
        return await self._fetch(f"{_SELECT_JOB} WHERE j.status IN ({placeholders}) ORDER BY j.id", wanted)

    async def active_jobs(self) -> list[Job]:
        return await self.jobs_with_status(s for s in JobStatus if s.is_active)

    async def jobs_of_user(self, user_id: int, *, limit: int = 10, guild_id: int | None = None) -> list[Job]:
        if guild_id is None:
            return await self._fetch(f"{_SELECT_JOB} WHERE j.user_id = ? ORDER BY j.id DESC LIMIT ?", (user_id, limit))
        return await self._fetch(
            f"{_SELECT_JOB} WHERE j.user_id = ? AND j.guild_id = ? ORDER BY j.id DESC LIMIT ?",
            (user_id, guild_id, limit),
        )

    async def recent_generation_times(self, limit: int = 20) -> list[float]:
        """How long xAI took (submit to ready) for the latest finished jobs: the poll cadence learns from it."""
        async with self._db.execute(
            """
            SELECT finished_at - submitted_at FROM jobs
            WHERE finished_at IS NOT NULL AND submitted_at IS NOT NULL AND request_id IS NOT NULL
            ORDER BY id DESC LIMIT ?
            """,
            (limit,),
        ) as cursor:
            rows = await cursor.fetchall()
        return [float(row[0]) for row in rows if row[0] is not None and row[0] >= 0]

    async def unnotified_endings(self) -> list[Job]:
        """Jobs that ended without a video whose requester has not been told yet."""
        return await self._fetch(
            f"{_SELECT_JOB} WHERE j.notified_at IS NULL AND j.status IN ('failed', 'moderated', 'expired') "
            "ORDER BY j.id",
            (),
        )

    # -- the history the limits read (services.policy.limits.RecentUse; the SQL is in services/store/counting.py) --

    async def counted_count(self, guild_id: int, user_id: int | None, since: float) -> int:
        """How many jobs count against a limit in the window since ``since`` (in the making: whatever their age)."""
        return await counting.counted_count(self._db, guild_id, user_id, since)

    async def counted_uses(self, guild_id: int, user_id: int | None, since: float) -> list[Use]:
        """The jobs that count in the window, with when each was charged and whether it is still in the making."""
        return await counting.counted_uses(self._db, guild_id, user_id, since)

    async def spend_total(self, guild_id: int, since: float, policy: GuildPolicy) -> float:
        """The dollars a server's counted jobs of the window count for: xAI's figure, else the estimate."""
        return await counting.spend_total(self._db, guild_id, since, policy)

    async def spend_uses(self, guild_id: int, since: float, policy: GuildPolicy) -> list[Use]:
        """``spend_total`` job by job (only needed to tell when enough spend leaves the window)."""
        return await counting.spend_uses(self._db, guild_id, since, policy)

    async def active_count(self, guild_id: int, user_id: int) -> int:
        """A member's videos in the making, a cancelled one that xAI still generates included."""
        return await counting.in_making_count(self._db, guild_id, user_id)

    # -- server rules and bans -------------------------------------------------------------------

    async def policy_overrides(self, guild_id: int) -> dict[str, Any]:
        async with self._db.execute("SELECT overrides FROM guild_settings WHERE guild_id = ?", (guild_id,)) as cursor:
            row = await cursor.fetchone()
        return {} if row is None else decode_overrides(row[0])

    async def save_policy_overrides(self, guild_id: int, overrides: dict[str, Any], by: int | None) -> None:
        async with self._write_lock:
            await self._db.execute(
                """
                INSERT INTO guild_settings (guild_id, overrides, updated_at, updated_by) VALUES (?, ?, ?, ?)
                ON CONFLICT(guild_id) DO UPDATE SET
                    overrides = excluded.overrides, updated_at = excluded.updated_at, updated_by = excluded.updated_by
                """,
                (guild_id, encode_overrides(overrides), time.time(), by),
            )

    async def is_banned(self, guild_id: int, user_id: int) -> bool:
        async with self._db.execute(
            "SELECT 1 FROM guild_bans WHERE guild_id = ? AND user_id = ?", (guild_id, user_id)
        ) as cursor:
            return await cursor.fetchone() is not None

    async def ban(self, guild_id: int, user_id: int, *, by: int | None, reason: str | None) -> bool:
        """Block a member from the bot in one server; False when they already were."""
        async with self._write_lock:
            cursor = await self._db.execute(
                """
                INSERT INTO guild_bans (guild_id, user_id, banned_at, banned_by, reason) VALUES (?, ?, ?, ?, ?)
                ON CONFLICT(guild_id, user_id) DO NOTHING
                """,
                (guild_id, user_id, time.time(), by, reason),
            )
            return cursor.rowcount == 1

    async def unban(self, guild_id: int, user_id: int) -> bool:
        async with self._write_lock:
            cursor = await self._db.execute(
                "DELETE FROM guild_bans WHERE guild_id = ? AND user_id = ?", (guild_id, user_id)
            )
            return cursor.rowcount == 1

    async def banned_users(self, guild_id: int) -> list[int]:
        async with self._db.execute(
            "SELECT user_id FROM guild_bans WHERE guild_id = ? ORDER BY banned_at", (guild_id,)
        ) as cursor:
            return [int(row[0]) for row in await cursor.fetchall()]

    async def jobs_in_guild(
        self, guild_id: int, *, since: float | None = None, user_id: int | None = None
    ) -> list[Job]:
        """A server's jobs (of one member) since ``since``, oldest first: what the usage views add up."""
        clauses: list[str] = ["j.guild_id = ?"]
        params: list[Any] = [guild_id]
        if since is not None:
            clauses.append("j.created_at >= ?")
            params.append(since)
        if user_id is not None:
            clauses.append("j.user_id = ?")
            params.append(user_id)
        return await self._fetch(f"{_SELECT_JOB} WHERE {' AND '.join(clauses)} ORDER BY j.created_at", params)

    # -- retention: what the janitor removes (services/media/retention.py) ------------------------------

    async def media_to_purge(
        self, ended_before: float | None, *, guild_id: int | None = None, user_id: int | None = None, limit: int = 100
    ) -> list[int]:
        """Ended jobs whose media is still kept and may go: ended before ``ended_before`` (None: none by age),
        or deleted, or forgotten. Never a job in flight, nor one whose requester is still owed its ending."""
        clauses = [
            "media_purged_at IS NULL",
            f"status IN ({_marks(_TERMINAL)})",
            f"NOT ({_OWED_NOTICE})",
        ]
        params: list[Any] = list(_TERMINAL)
        reasons = "deleted_at IS NOT NULL OR forgotten_at IS NOT NULL"
        if ended_before is not None:
            reasons += " OR COALESCE(ended_at, updated_at) < ?"
            params.append(ended_before)
        clauses.append(f"({reasons})")
        if guild_id is not None:
            clauses.append("guild_id = ? AND user_id = ?")
            params += [guild_id, user_id]
        sql = f"SELECT id FROM jobs WHERE {' AND '.join(clauses)} ORDER BY id LIMIT ?"
        async with self._db.execute(sql, [*params, limit]) as cursor:
            return [int(row[0]) for row in await cursor.fetchall()]

    async def purge_media(self, job_ids: Sequence[int], now: float) -> tuple[list[tuple[int, str | None]], int]:
        """Drop the stored inputs of ended jobs and mark their media removed (erasing forgotten prompts too).

        Returns each purged job's (id, output_path), for the caller to delete the files, and the bytes of
        input freed inside the database (SQLite reuses those pages for new inputs).
        """
        if not job_ids:
            return [], 0
        ids = list(job_ids)
        where = (
            f"j.id IN ({_marks(ids)}) AND j.status IN ({_marks(_TERMINAL)}) AND j.media_purged_at IS NULL "
            f"AND NOT ({_OWED_NOTICE})"
        )
        async with self._transaction():
            async with self._db.execute(
                f"""SELECT j.id, j.output_path,
                           COALESCE((SELECT length(data) FROM job_inputs i WHERE i.job_id = j.id), 0)
                    FROM jobs j WHERE {where}""",
                [*ids, *_TERMINAL],
            ) as cursor:
                rows = await cursor.fetchall()
            purged = [int(row[0]) for row in rows]
            if purged:
                marks = _marks(purged)
                await self._db.execute(f"DELETE FROM job_inputs WHERE job_id IN ({marks})", purged)
                await self._db.execute(
                    f"""UPDATE jobs SET media_purged_at = ?, updated_at = ?,
                            prompt = CASE WHEN forgotten_at IS NULL THEN prompt ELSE '' END
                        WHERE id IN ({marks})""",
                    [now, now, *purged],
                )
        return [(int(row[0]), row[1]) for row in rows], sum(int(row[2]) for row in rows)

    async def forget_member(self, guild_id: int, user_id: int, now: float) -> tuple[int, int, int]:
        """Mark a member's jobs in a server forgotten and erase the prompts of those that are over.

        A job still in flight (or whose ending its requester is still owed) keeps its prompt until it is over:
        xAI may still need it, and the janitor erases it then. Returns (jobs in all, newly forgotten, waiting).
        """
        mine = "guild_id = ? AND user_id = ?"
        async with self._transaction():
            cursor = await self._db.execute(
                f"UPDATE jobs SET forgotten_at = ?, updated_at = ? WHERE {mine} AND forgotten_at IS NULL",
                (now, now, guild_id, user_id),
            )
            newly = cursor.rowcount
            await self._db.execute(
                f"""UPDATE jobs SET prompt = '' WHERE {mine} AND prompt != ''
                    AND status IN ({_marks(_TERMINAL)}) AND NOT ({_OWED_NOTICE})""",
                (guild_id, user_id, *_TERMINAL),
            )
            async with self._db.execute(
                f"""SELECT COUNT(*), COALESCE(SUM(status NOT IN ({_marks(_TERMINAL)}) OR ({_OWED_NOTICE})), 0)
                    FROM jobs WHERE {mine}""",
                (*_TERMINAL, guild_id, user_id),
            ) as counts:
                row = await counts.fetchone()
        total, waiting = (int(row[0]), int(row[1])) if row else (0, 0)
        return total, newly, waiting

    async def media_states(self, job_ids: Iterable[int]) -> dict[int, tuple[JobStatus, bool]]:
        """(status, media removed?) of the given jobs the store knows; an id it does not know is left out."""
        ids, states = sorted(set(job_ids)), {}
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            async with self._db.execute(
                f"SELECT id, status, media_purged_at FROM jobs WHERE id IN ({_marks(chunk)})", chunk
            ) as cursor:
                for row in await cursor.fetchall():
                    states[int(row[0])] = (JobStatus(row[1]), row[2] is not None)
        return states

    @contextlib.asynccontextmanager
    async def _transaction(self) -> AsyncIterator[None]:
        """One write transaction, whole: SQLite's write lock first, rolled back if anything (a cancel) cuts in."""
        async with self._write_lock:
            await self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    await self._db.execute("ROLLBACK")
                raise
            await self._db.execute("COMMIT")

    async def get_value(self, key: str) -> str | None:
        async with self._db.execute("SELECT value FROM kv WHERE key = ?", (key,)) as cursor:
            row = await cursor.fetchone()
        return None if row is None else str(row[0])

    async def _fetch(self, sql: str, params: Sequence[Any]) -> list[Job]:
        async with self._db.execute(sql, params) as cursor:
            rows = await cursor.fetchall()
        return [_job_from_row(row) for row in rows]


_TERMINAL = tuple(sorted(s.value for s in JobStatus if s.is_terminal))
# An ending the bot still owes its requester (the failure outbox, ``unnotified_endings``). The terminal's
# jobs are told in the terminal and never by the bot, so nothing is owed for them.
_OWED_NOTICE = "notified_at IS NULL AND status IN ('failed', 'moderated', 'expired') AND origin = 'discord'"


def _marks(values: Sequence[object]) -> str:
    return ", ".join("?" for _ in values)


async def _always_admit(now: float) -> None:
    return None


_SELECT_JOB = """
SELECT j.*, EXISTS (SELECT 1 FROM job_inputs i WHERE i.job_id = j.id) AS has_media FROM jobs j
"""


def _job_from_row(row: aiosqlite.Row) -> Job:
    return Job(
        id=row["id"],
        mode=Mode(row["mode"]),
        prompt=row["prompt"],
        options=VideoOptions(duration=row["duration"], aspect_ratio=row["aspect_ratio"], resolution=row["resolution"]),
        origin=Origin(
            guild_id=row["guild_id"],
            channel_id=row["channel_id"],
            user_id=row["user_id"],
            source_message_id=row["source_message_id"],
            kind=row["origin"],
        ),
        status=JobStatus(row["status"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        request_id=row["request_id"],
        progress=row["progress"],
        submitted_at=row["submitted_at"],
        finished_at=row["finished_at"],
        downloaded_at=row["downloaded_at"],
        delivered_at=row["delivered_at"],
        error_code=row["error_code"],
        error_message=row["error_message"],
        cost_usd_ticks=row["cost_usd_ticks"],
        output_path=row["output_path"],
        output_bytes=row["output_bytes"],
        video_duration_s=row["video_duration_s"],
        status_message_id=row["status_message_id"],
        delivered_channel_id=row["delivered_channel_id"],
        delivered_message_id=row["delivered_message_id"],
        delivery_method=row["delivery_method"],
        deleted_at=row["deleted_at"],
        parent_job_id=row["parent_job_id"],
        has_media=bool(row["has_media"]),
        charged=bool(row["charged"]),
        charged_at=row["charged_at"],
        ended_at=row["ended_at"],
        media_purged_at=row["media_purged_at"],
        forgotten_at=row["forgotten_at"],
    )
