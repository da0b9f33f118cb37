"""Jobs as rows and rows as jobs: the one SELECT every job read starts from, and the conversion back.

A long read (``/usage`` over a long history) returns tens of thousands of rows; turning 100,000 of them into
``Job`` objects takes over a second of pure Python, so from ``THREAD_FROM_ROWS`` rows on it runs in a worker
thread and the event loop stays free (the rows are plain values by then: no connection is touched there).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import fields
from typing import Any

from services.jobs.models import Job, JobStatus, Mode, Origin, VideoOptions
from services.store.database import Database, Params, Row

SELECT_JOB = "SELECT j.*, EXISTS (SELECT 1 FROM job_inputs i WHERE i.job_id = j.id) AS has_media FROM jobs j"
THREAD_FROM_ROWS = 500

TERMINAL = tuple(sorted(s.value for s in JobStatus if s.is_terminal))
# An ending the bot still owes its requester (the failure outbox, ``JobRepository.unnotified_endings``). The
# terminal's jobs are told in the terminal and never by the bot, so nothing is owed for them.
OWED_NOTICE = "notified_at IS NULL AND status IN ('failed', 'moderated', 'expired') AND origin = 'discord'"

# Columns that become a Job field of the same name as they are; the others are built below.
_BUILT = {"mode", "options", "origin", "status", "has_media", "charged"}
_AS_STORED = tuple(f.name for f in fields(Job) if f.name not in _BUILT)


def marks(values: Sequence[object]) -> str:
    """One ``?`` per value, for an ``IN (...)``."""
    return ", ".join("?" for _ in values)


def job_from_row(row: Row) -> Job:
    stored: dict[str, Any] = {name: row[name] for name in _AS_STORED}
    return Job(
        mode=Mode(row["mode"]),
        options=VideoOptions(duration=row["duration"], aspect_ratio=row["aspect_ratio"], resolution=row["resolution"]),
        origin=Origin(
            guild_id=row["guild_id"],
            channel_id=row["channel_id"],
            user_id=row["user_id"],
            source_message_id=row["source_message_id"],
            kind=row["origin"],
        ),
        status=JobStatus(row["status"]),
        has_media=bool(row["has_media"]),
        charged=bool(row["charged"]),
        **stored,
    )


def _jobs_from_rows(rows: Sequence[Row]) -> list[Job]:
    return [job_from_row(row) for row in rows]


async def fetch_jobs(database: Database, where: str, params: Params = ()) -> list[Job]:
    """The jobs ``SELECT_JOB`` finds with ``where`` (the rest of the statement: WHERE, ORDER BY, LIMIT)."""
    rows = await database.fetch_all(f"{SELECT_JOB} {where}", params)
    if len(rows) >= THREAD_FROM_ROWS:
        return await asyncio.to_thread(_jobs_from_rows, rows)
    return _jobs_from_rows(rows)
