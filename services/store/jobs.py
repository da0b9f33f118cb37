"""The jobs table: a job's row is written before anything else happens to it, and its status only moves forward.

Every transition is one UPDATE whose WHERE clause names the status the caller expects, so a restart or a
second worker can never take the same step twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, NamedTuple, TypeVar, Unpack

from services.jobs.models import (
    FORWARD,
    STILL_AT_XAI,
    ErrorCode,
    Job,
    JobRequest,
    JobStatus,
    JobUpdate,
    MediaInput,
    Mode,
    VideoOptions,
)
from services.store.database import Database
from services.store.rows import OWED_NOTICE, fetch_jobs, marks

log = logging.getLogger(__name__)

R = TypeVar("R")

# Columns a caller may set besides ``status``: exactly ``JobUpdate``'s keys (names never come from user input).
UPDATABLE_COLUMNS = frozenset(JobUpdate.__annotations__)


class GenerationTime(NamedTuple):
    """One finished job's generation time, with what makes it comparable to others'."""

    model: str | None
    mode: Mode
    options: VideoOptions  # its resolution and duration
    seconds: float


class ResultLink(NamedTuple):
    """xAI's temporary address of a finished video, and when it stops working (wall-clock seconds)."""

    url: str
    expires_at: float


class TransitionError(Exception):
    """A caller asked for a move the state machine does not allow (a bug, not a race)."""


class JobRepository:
    """Jobs: created, moved forward, updated and read."""

    def __init__(self, database: Database) -> None:
        self._db = database

    # -- writing -------------------------------------------------------------------------------

    async def create(self, request: JobRequest, *, status: JobStatus = JobStatus.QUEUED) -> Job:
        """Record a new job and its input media in one transaction, before anything else happens."""
        job = await self.create_unless(request, _always_admit, status=status)
        assert isinstance(job, Job)
        return job

    async def create_unless(
        self,
        request: JobRequest,
        refuse: Callable[[float], Awaitable[R | None]],
        *,
        status: JobStatus = JobStatus.QUEUED,
    ) -> Job | R:
        """Record a new job unless ``refuse(now)`` objects, deciding inside the inserting transaction.

        The transaction takes the database's write lock before ``refuse`` reads the history, so two requests
        racing for the last slot (in this process or another one) are decided one after the other.
        """
        now = time.time()
        origin, options = request.origin, request.options
        async with self._db.transaction():
            objection = await refuse(now)
            if objection is not None:
                return objection  # nothing was written
            job_id = await self._db.insert(
                """
                INSERT INTO jobs (created_at, updated_at, origin, guild_id, channel_id, user_id, source_message_id,
                                  mode, prompt, duration, aspect_ratio, resolution, parent_job_id, status,
                                  status_message_id, model)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
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
                    request.model,
                ),
            )
            if request.media is not None:
                await self._db.execute(
                    "INSERT INTO job_inputs (job_id, mime_type, filename, data) VALUES (?, ?, ?, ?)",
                    (job_id, request.media.mime_type, request.media.filename, request.media.data),
                )
        job = await self.get(job_id)
        assert job is not None
        return job

    async def transition(
        self, job_id: int, expected: JobStatus | Iterable[JobStatus], target: JobStatus, **fields: Unpack[JobUpdate]
    ) -> bool:
        """Move a job from ``expected`` to ``target`` and set ``fields``; False when it was not in ``expected``."""
        return await self._transition(job_id, expected, target, fields, ends=target.is_terminal)

    async def cancel_while_at_xai(
        self, job_id: int, expected: JobStatus | Iterable[JobStatus], **fields: Unpack[JobUpdate]
    ) -> bool:
        """Cancel a job xAI goes on generating: over for its requester, but still in the making (no ``ended_at``)
        until ``settle`` records that xAI is done with it."""
        return await self._transition(job_id, expected, JobStatus.CANCELLED, fields, ends=False)

    async def _transition(
        self,
        job_id: int,
        expected: JobStatus | Iterable[JobStatus],
        target: JobStatus,
        fields: JobUpdate,
        *,
        ends: bool,
    ) -> bool:
        expected_set = {expected} if isinstance(expected, JobStatus) else set(expected)
        for old in expected_set:
            if target not in FORWARD.get(old, frozenset()):
                raise TransitionError(f"job status cannot move from {old} to {target}")
        assignments, values = _assignments(fields)
        now = time.time()
        if ends:  # the moment retention counts from (services/media/retention.py), and it leaves those in the making
            assignments, values = f"{assignments}, ended_at = ?", [*values, now]
        sql = (
            f"UPDATE jobs SET status = ?, updated_at = ?{assignments} "
            f"WHERE id = ? AND status IN ({marks(list(expected_set))})"
        )
        changed = await self._db.execute(sql, [target.value, now, *values, job_id, *(s.value for s in expected_set)])
        if changed != 1:
            log.debug("Job %d was not in %s; not moved to %s", job_id, sorted(expected_set), target)
        return changed == 1

    async def charge(self, job_id: int, send_token: str) -> bool:
        """Mark a submitting job charged, right before its request goes on the wire, if ``send_token`` is still the
        one its move to "submitting" wrote; False when another process has moved it since (then it must not be sent)."""
        now = time.time()
        changed = await self._db.execute(
            "UPDATE jobs SET charged = 1, charged_at = COALESCE(charged_at, ?), updated_at = ? "
            "WHERE id = ? AND status = ? AND send_token = ?",
            (now, now, job_id, JobStatus.SUBMITTING.value, send_token),
        )
        return changed == 1

    async def update(self, job_id: int, **fields: Unpack[JobUpdate]) -> None:
        """Set non-status fields (progress, message ids, cost...)."""
        if not fields:
            return
        assignments, values = _assignments(fields)
        await self._db.execute(
            f"UPDATE jobs SET updated_at = ?{assignments} WHERE id = ?", [time.time(), *values, job_id]
        )

    async def settle(self, job_id: int, cost_usd_ticks: int | None) -> bool:
        """A cancelled job xAI kept generating is over at xAI now (done, failed, expired, or let go): it leaves the
        videos in the making, and counts from when it was charged, at xAI's reported cost when there is one."""
        now = time.time()
        changed = await self._db.execute(
            f"""UPDATE jobs SET ended_at = ?, updated_at = ?, cost_usd_ticks = COALESCE(?, cost_usd_ticks)
                WHERE id = ? AND {STILL_AT_XAI.sql()}""",
            (now, now, cost_usd_ticks, job_id),
        )
        return changed == 1

    # -- reading -------------------------------------------------------------------------------

    async def get(self, job_id: int) -> Job | None:
        jobs = await fetch_jobs(self._db, "WHERE j.id = ?", (job_id,))
        return jobs[0] if jobs else None

    async def get_input(self, job_id: int) -> MediaInput | None:
        row = await self._db.fetch_one("SELECT mime_type, filename, data FROM job_inputs WHERE job_id = ?", (job_id,))
        if row is None:
            return None
        return MediaInput(data=bytes(row["data"]), mime_type=row["mime_type"], filename=row["filename"])

    async def still_at_xai(self) -> list[Job]:
        """Cancelled jobs xAI may still be generating (``settle`` not written yet): followed again after a restart."""
        return await fetch_jobs(self._db, f"WHERE {STILL_AT_XAI.sql()} ORDER BY j.id")

    async def uncertain_since(self, since: float) -> list[Job]:
        """Jobs whose request went out after ``since`` (wall clock) and may be at xAI with no id to follow them by:
        ended "uncertain" after a crash, or failed charged without an answer (a timeout, a broken connection, an
        unclear error: ``xai_unavailable``). xAI may still be making them, and each keeps a concurrent slot at every
        start until it would be done (services/scheduler/uncertain.py)."""
        return await fetch_jobs(
            self._db,
            "WHERE j.status = ? AND j.charged = 1 AND j.request_id IS NULL AND j.error_code IN (?, ?) "
            "AND COALESCE(j.charged_at, j.updated_at) > ? ORDER BY j.id",
            (JobStatus.FAILED.value, ErrorCode.SUBMIT_UNCERTAIN.value, ErrorCode.XAI_UNAVAILABLE.value, since),
        )

    async def with_status(self, statuses: Iterable[JobStatus]) -> list[Job]:
        wanted = [s.value for s in statuses]
        return await fetch_jobs(self._db, f"WHERE j.status IN ({marks(wanted)}) ORDER BY j.id", wanted)

    async def active(self) -> list[Job]:
        return await self.with_status(s for s in JobStatus if s.is_active)

    async def of_user(self, user_id: int, *, limit: int = 10, guild_id: int | None = None) -> list[Job]:
        if guild_id is None:
            return await fetch_jobs(self._db, "WHERE j.user_id = ? ORDER BY j.id DESC LIMIT ?", (user_id, limit))
        return await fetch_jobs(
            self._db, "WHERE j.user_id = ? AND j.guild_id = ? ORDER BY j.id DESC LIMIT ?", (user_id, guild_id, limit)
        )

    async def generation_times(self, limit: int = 200) -> list[GenerationTime]:
        """How long xAI took for the latest jobs whose time was learnt (not resumed ones), newest first: the
        polling policy starts from them."""
        rows = await self._db.fetch_all(
            """
            SELECT model, mode, resolution, duration, generation_s FROM jobs
            WHERE generation_s IS NOT NULL AND generation_s > 0
            ORDER BY id DESC LIMIT ?
            """,
            (limit,),
        )
        return [
            GenerationTime(row[0], Mode(row[1]), VideoOptions(duration=row[3], resolution=row[2]), float(row[4]))
            for row in rows
        ]

    async def unnotified_endings(self) -> list[Job]:
        """Jobs that ended without a video whose requester has not been told yet (``OWED_NOTICE``)."""
        return await fetch_jobs(self._db, f"WHERE {OWED_NOTICE} ORDER BY j.id")

    # -- a finished video's temporary address, and the job behind a result message ------------------

    async def keep_result_link(self, job_id: int, url: str, expires_at: float) -> None:
        """xAI's address of the job's video, until ``expires_at``: posted when the file is too big to upload."""
        await self._db.execute(
            "UPDATE jobs SET result_url = ?, result_url_expires_at = ? WHERE id = ?", (url, expires_at, job_id)
        )

    async def result_link(self, job_id: int) -> ResultLink | None:
        row = await self._db.fetch_one(
            "SELECT result_url, result_url_expires_at FROM jobs WHERE id = ? AND result_url IS NOT NULL", (job_id,)
        )
        if row is None or row["result_url_expires_at"] is None:
            return None
        return ResultLink(str(row["result_url"]), float(row["result_url_expires_at"]))

    async def by_delivered_message(self, message_id: int) -> Job | None:
        """The job whose video a message carries (the bot's result message), if any."""
        jobs = await fetch_jobs(self._db, "WHERE j.delivered_message_id = ? ORDER BY j.id DESC LIMIT 1", (message_id,))
        return jobs[0] if jobs else None


def _assignments(fields: JobUpdate) -> tuple[str, list[Any]]:
    unknown = set(fields) - UPDATABLE_COLUMNS
    if unknown:
        raise ValueError(f"not an updatable job field: {sorted(unknown)}")
    names = sorted(fields)
    given: dict[str, Any] = dict(fields)
    sql, values = "".join(f", {name} = ?" for name in names), [given[name] for name in names]
    if "charged" in fields and "charged_at" not in fields:
        # Set with the flag: when the request went on the wire (the moment a finished job counts from). Kept
        # when it was charged already (a later write of the same verdict), cleared when it is handed back.
        if fields["charged"]:
            sql, values = f"{sql}, charged_at = COALESCE(charged_at, ?)", [*values, time.time()]
        else:
            sql += ", charged_at = NULL"
    return sql, values


async def _always_admit(now: float) -> None:
    return None
