"""The job store against a real SQLite file and a real PostgreSQL database (``store_url``: each engine)."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from services.jobs.models import COUNTED, IN_THE_MAKING, JobRequest, JobStatus, MediaInput, Mode, Origin, VideoOptions
from services.store import counting
from services.store.jobs import TransitionError
from services.store.migrations import MIGRATIONS
from services.store.store import Store


def _request(prompt: str = "a cat surfing", media: MediaInput | None = None) -> JobRequest:
    mode = Mode.IMAGE if media else Mode.TEXT
    return JobRequest(
        mode=mode,
        prompt=prompt,
        options=VideoOptions(duration=5, aspect_ratio="16:9", resolution="480p"),
        origin=Origin(guild_id=1, channel_id=2, user_id=3),
        media=media,
        status_message_id=44,
    )


async def test_job_and_its_input_are_written_together(tmp_path: Path, store_url: str | None) -> None:
    """A new job is queued with its options, origin and input bytes on disk."""
    async with await Store.open(tmp_path / "jobs.sqlite3", url=store_url) as store:
        image = MediaInput(data=b"\x89PNG fake", mime_type="image/png", filename="cat.png")
        job = await store.jobs.create(_request(media=image))
        assert job.status is JobStatus.QUEUED
        assert job.options == VideoOptions(5, "16:9", "480p")
        assert job.origin.user_id == 3 and job.status_message_id == 44 and job.has_media
        assert await store.jobs.get_input(job.id) == image


async def test_jobs_survive_reopening(tmp_path: Path, store_url: str | None) -> None:
    """Closing and reopening the file keeps every job and does not re-run migrations."""
    path = tmp_path / "jobs.sqlite3"
    async with await Store.open(path, url=store_url) as store:
        job = await store.jobs.create(_request())
        version = await store.schema_version()
    async with await Store.open(path, url=store_url) as store:
        assert (await store.jobs.get(job.id)) is not None
        assert await store.schema_version() == version > 0


async def test_transitions_move_forward_only(tmp_path: Path, store_url: str | None) -> None:
    """A backward move is a programming error, refused before touching the database."""
    async with await Store.open(tmp_path / "jobs.sqlite3", url=store_url) as store:
        job = await store.jobs.create(_request())
        assert await store.jobs.transition(job.id, JobStatus.QUEUED, JobStatus.SUBMITTING)
        assert await store.jobs.transition(job.id, JobStatus.SUBMITTING, JobStatus.RUNNING, request_id="r-1")
        with pytest.raises(TransitionError):
            await store.jobs.transition(job.id, JobStatus.RUNNING, JobStatus.QUEUED)
        stored = await store.jobs.get(job.id)
        assert stored is not None and stored.status is JobStatus.RUNNING and stored.request_id == "r-1"


async def test_only_one_of_two_racing_workers_wins_a_transition(tmp_path: Path, store_url: str | None) -> None:
    """Each transition is guarded by the expected old status, so a step can never be taken twice."""
    async with await Store.open(tmp_path / "jobs.sqlite3", url=store_url) as store:
        job = await store.jobs.create(_request())
        results = await asyncio.gather(
            *(store.jobs.transition(job.id, JobStatus.QUEUED, JobStatus.SUBMITTING) for _ in range(5))
        )
        assert sorted(results) == [False, False, False, False, True]


async def test_unknown_fields_are_refused(tmp_path: Path, store_url: str | None) -> None:
    """Column names never come from callers' whims."""
    async with await Store.open(tmp_path / "jobs.sqlite3", url=store_url) as store:
        job = await store.jobs.create(_request())
        with pytest.raises(ValueError, match="not an updatable job field"):
            await store.jobs.update(job.id, status="delivered")  # type: ignore[call-arg]


async def test_key_value_settings_round_trip(tmp_path: Path, store_url: str | None) -> None:
    """The bot's own bookkeeping (like the command hash) is kept between runs."""
    async with await Store.open(tmp_path / "jobs.sqlite3", url=store_url) as store:
        assert await store.kv.get("k") is None
        await store.kv.set("k", "one")
        await store.kv.set("k", "two")
        assert await store.kv.get("k") == "two"


async def test_schema_5_marks_earlier_jobs_that_may_have_reached_xai_as_charged(tmp_path: Path) -> None:
    """Upgrading keeps the counts honest: jobs xAI knew of, or that were caught mid-submit, stay counted."""
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as old:
        for number, script in enumerate(MIGRATIONS[:4], start=1):
            old.executescript(f"{script}\nPRAGMA user_version = {number};")
        rows = [  # (status, request_id, cost, error_code)
            ("delivered", "r1", 100, None),
            ("moderated", None, None, "moderated"),
            ("cancelled", "r2", None, "cancelled"),  # cancelled while generating
            ("cancelled", None, None, "cancelled"),  # cancelled while waiting
            ("failed", None, None, "submit_uncertain"),
            ("failed", "r3", None, "timeout"),
            ("failed", None, None, "xai_rejected"),  # refused before anything started
            ("running", "r4", None, None),
            ("queued", None, None, None),
        ]
        for status, request_id, cost, code in rows:
            old.execute(
                "INSERT INTO jobs (created_at, updated_at, mode, prompt, status, request_id, cost_usd_ticks, "
                "error_code) VALUES (1, 1, 'text', 'p', ?, ?, ?, ?)",
                (status, request_id, cost, code),
            )
    async with await Store.open(path) as store:
        jobs = await store.jobs.with_status(JobStatus)
        assert await store.schema_version() == len(MIGRATIONS)
    assert [job.charged for job in jobs] == [True, True, True, False, True, True, False, True, False]


async def _plan(store: Store, query: counting.Query) -> str:
    sql, params = query
    return " | ".join(str(row[3]) for row in await store.database.fetch_all(f"EXPLAIN QUERY PLAN {sql}", params))


async def test_every_limit_decision_reads_indexes_only(tmp_path: Path) -> None:
    """The jobs in the making come from their partial index, the window's charged jobs from covering ones."""
    async with await Store.open(tmp_path / "jobs.sqlite3") as store:
        plans = [
            await _plan(store, counting.count_query(1, None, 0.0)),
            await _plan(store, counting.count_query(1, 7, 0.0)),
            await _plan(store, counting.spend_query(1, 0.0)),
            await _plan(store, counting.uses_query(1, 7, 0.0)),
            await _plan(store, counting.in_making_query(1, 7)),
        ]
    for plan in plans:
        assert "SCAN jobs" not in plan, plan
        assert "jobs_in_flight" in plan, plan
    assert "COVERING INDEX jobs_guild_charged" in plans[0] and "COVERING INDEX jobs_guild_charged" in plans[2]
    assert "COVERING INDEX jobs_user_charged" in plans[1]


async def test_schema_7_counts_earlier_jobs_from_when_they_were_sent(tmp_path: Path) -> None:
    """Upgrading: a charged job counts from its submit (else its creation); a row written without the moment
    by another program gets its creation, so nothing charged ever drops out of the windows."""
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as old:
        for number, script in enumerate(MIGRATIONS[:6], start=1):
            old.executescript(f"{script}\nPRAGMA user_version = {number};")
        old.executemany(
            "INSERT INTO jobs (created_at, updated_at, mode, prompt, status, submitted_at, charged, ended_at) "
            "VALUES (?, 1, 'text', 'p', ?, ?, ?, 1)",
            [(10.0, "delivered", 50.0, 1), (20.0, "failed", None, 1), (30.0, "failed", None, 0)],
        )
    async with await Store.open(path) as store:
        await store.database.execute(
            "INSERT INTO jobs (created_at, updated_at, mode, prompt, status, charged) VALUES (70, 70, 'text', 'p', "
            "'delivered', 1)"
        )
        jobs = await store.jobs.with_status(JobStatus)
    assert [job.charged_at for job in jobs] == [50.0, 20.0, None, 70.0]


async def test_the_counting_rule_reads_the_same_in_sql_and_on_a_job(tmp_path: Path, store_url: str | None) -> None:
    """``IN_THE_MAKING`` / ``COUNTED`` rendered as SQL pick exactly the rows whose jobs say so in Python."""
    async with await Store.open(tmp_path / "jobs.sqlite3", url=store_url) as store:
        for status in JobStatus:
            for charged in (False, True):
                for ended_at in (None, 5.0):
                    job = await store.jobs.create(_request(f"{status} {charged} {ended_at}"))
                    await store.database.execute(
                        "UPDATE jobs SET status = ?, charged = ?, ended_at = ? WHERE id = ?",
                        (status.value, charged, ended_at, job.id),
                    )
        for rule, on_a_job in ((IN_THE_MAKING, "in_flight"), (COUNTED, "counted")):
            rows = await store.database.fetch_all(f"SELECT id FROM jobs WHERE {rule.sql()} ORDER BY id")
            jobs = await store.jobs.with_status(JobStatus)
            assert [row[0] for row in rows] == [job.id for job in jobs if getattr(job, on_a_job)], on_a_job


async def test_a_setting_made_once_keeps_the_first_value(tmp_path: Path, store_url: str | None) -> None:
    """Two processes racing to make the same setting (the salt of the user hashes) both end up with the first."""
    path = tmp_path / "jobs.sqlite3"
    async with await Store.open(path, url=store_url) as first, await Store.open(path, url=store_url) as second:
        assert await first.kv.set_if_absent("salt", "one") == "one"
        assert await second.kv.set_if_absent("salt", "two") == "one"
        assert await second.kv.get("salt") == "one"
