"""The janitor over a real store and a real videos folder, with the clock injected: what goes, what stays."""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from services.config import ConfigError, RetentionSettings, load_settings
from services.jobs.models import Job, JobRequest, JobStatus, JobUpdate, MediaInput, Mode, Origin, VideoOptions
from services.media.retention import Janitor, kept_for
from services.policy.guild_policy import LimitDefaults
from services.policy.server_rules import ServerRules
from services.policy.usage import Period, build_report, to_csv
from services.store.migrations import MIGRATIONS
from services.store.store import Store
from tests.mediafactory import make_image, make_mp4

GUILD, USER, OTHER = 10, 20, 30
DAY, HOUR = 86400.0, 3600.0
NOW = 1_900_000_000.0  # the janitor's injected clock; rows and files are dated against it

# The way each ending is reached, as the scheduler takes it (the store times ``ended_at`` itself).
PATHS = {
    JobStatus.DELIVERED: [JobStatus.SUBMITTING, JobStatus.RUNNING, JobStatus.DOWNLOADING, JobStatus.DELIVERING,
                          JobStatus.DELIVERED],
    JobStatus.FAILED: [JobStatus.SUBMITTING, JobStatus.RUNNING, JobStatus.FAILED],
    JobStatus.RUNNING: [JobStatus.SUBMITTING, JobStatus.RUNNING],
    JobStatus.QUEUED: [],
}  # fmt: skip


@dataclass
class Folder:
    store: Store
    videos: Path

    async def job(
        self,
        status: JobStatus,
        *,
        ended_days_ago: float | None = None,
        user: int = USER,
        with_file: bool = True,
        notified: bool = True,
        cents: int = 40,
    ) -> Job:
        """A job of ``status`` with a stored image and (when it got that far) its MP4 in the folder."""
        image = MediaInput(make_image("PNG"), "image/png", "in.png")
        request = JobRequest(
            mode=Mode.IMAGE,
            prompt=f"prompt of {user}",
            options=VideoOptions(duration=5, resolution="480p"),
            origin=Origin(guild_id=GUILD, channel_id=1, user_id=user),
            media=image,
        )
        job = await self.store.jobs.create(request)
        old = JobStatus.QUEUED
        for new in PATHS[status]:
            fields: JobUpdate = {"request_id": f"r{job.id}"} if new is JobStatus.RUNNING else {}
            assert await self.store.jobs.transition(job.id, old, new, **fields)
            old = new
        if with_file and status in (JobStatus.DELIVERED, JobStatus.RUNNING):
            path = self.videos / f"job-{job.id}.mp4"
            path.write_bytes(make_mp4(1.0))
            _age(path, 3 * DAY)
            await self.store.jobs.update(job.id, output_path=str(path), output_bytes=path.stat().st_size)
        ended = None if ended_days_ago is None else NOW - ended_days_ago * DAY
        await self.store.database.execute(
            "UPDATE jobs SET ended_at = ?, created_at = ?, notified_at = ?, cost_usd_ticks = ?, charged = 1 "
            "WHERE id = ?",
            (ended, NOW - 40 * DAY, ended if notified else None, cents * 100_000_000, job.id),
        )
        fresh = await self.store.jobs.get(job.id)
        assert fresh is not None
        return fresh

    def stray(self, name: str, age_s: float) -> Path:
        path = self.videos / name
        path.write_bytes(b"\0" * 1000)
        _age(path, age_s)
        return path


def _age(path: Path, seconds: float) -> None:
    os.utime(path, (NOW - seconds, NOW - seconds))


@pytest.fixture
async def folder(tmp_path: Path) -> AsyncIterator[Folder]:
    store = await Store.open(tmp_path / "data" / "bot.sqlite3")
    videos = tmp_path / "data" / "videos"
    videos.mkdir()
    yield Folder(store, videos)
    await store.close()


def janitor(folder: Folder, **settings: Any) -> Janitor:
    return Janitor(folder.store, folder.videos, RetentionSettings(**settings), clock=lambda: NOW)


async def usage_figures(store: Store) -> tuple[object, ...]:
    """What /usage, /quota and the limits read for the server: they must not change when media goes."""
    policy = await ServerRules(store, LimitDefaults()).policy(GUILD)
    jobs = await store.usage.in_guild(GUILD)
    report = build_report(jobs, policy, Period.ALL, now=NOW)
    counted = await store.usage.counted_count(GUILD, USER, 0)
    spend = await store.usage.spend_total(GUILD, 0, policy)
    return len(jobs), dict(report.outcomes), round(report.usd, 4), report.video_seconds, counted, round(spend, 4)


async def test_old_endings_lose_files_and_inputs_while_recent_and_in_flight_ones_keep_theirs(folder: Folder) -> None:
    """Jobs ended 8 days ago lose their media; a recent, a running, a queued and an owed one keep theirs."""
    store = folder.store
    old_delivered = await folder.job(JobStatus.DELIVERED, ended_days_ago=8)
    old_failed = await folder.job(JobStatus.FAILED, ended_days_ago=8)
    recent = await folder.job(JobStatus.DELIVERED, ended_days_ago=6)
    running = await folder.job(JobStatus.RUNNING)  # made 40 days ago, still at xAI
    queued = await folder.job(JobStatus.QUEUED)
    owed = await folder.job(JobStatus.FAILED, ended_days_ago=30, notified=False)  # its failure notice is still due
    part = folder.stray(f"job-{running.id}.mp4.part", 2 * DAY)  # its download, however old, is in use
    before = await usage_figures(store)

    report = await janitor(folder, keep_days=7).sweep()

    gone = [await store.jobs.get(j.id) for j in (old_delivered, old_failed)]
    kept = [await store.jobs.get(j.id) for j in (recent, running, queued, owed)]
    assert all(j is not None and j.media_purged_at == NOW and not j.has_media for j in gone)
    assert all(j is not None and j.media_purged_at is None and j.has_media for j in kept)
    assert await store.jobs.get_input(old_delivered.id) is None and await store.jobs.get_input(recent.id) is not None
    assert not Path(old_delivered.output_path or "").exists()
    assert Path(recent.output_path or "").is_file() and Path(running.output_path or "").is_file() and part.is_file()
    assert report.media.jobs == 2 and report.media.files == 1
    assert report.media.file_bytes == old_delivered.output_bytes
    assert report.media.input_bytes == 2 * len(make_image("PNG"))
    # The rows, their costs and counts stay: /usage, /quota and the limits read the same as before.
    assert await usage_figures(store) == before
    assert [j.prompt for j in gone if j] == [f"prompt of {USER}"] * 2


async def test_strays_in_the_videos_folder_go_once_a_few_hours_old(folder: Folder) -> None:
    """A crash's .part files and shrunk copies, and files of jobs the store does not know, go; other files stay."""
    done = await folder.job(JobStatus.DELIVERED, ended_days_ago=1)
    running = await folder.job(JobStatus.RUNNING)
    strays = [
        folder.stray(f"job-{done.id}-fit-10485760.mp4", 7 * HOUR),  # a shrunk copy a crash left
        folder.stray(f"job-{done.id}-fit-10485760.mp4.part.mp4", 7 * HOUR),
        folder.stray(f"job-{done.id}.mp4.part", 7 * HOUR),
        folder.stray("job-99999.mp4", 7 * HOUR),  # a job the store does not know (a restored backup)
    ]
    kept = [
        folder.stray("job-88888.mp4", 1 * HOUR),  # too young to call a stray
        folder.stray(f"job-{running.id}-fit-10485760.mp4", 7 * HOUR),  # in flight: its delivery may use it
        folder.stray("notes.txt", 30 * DAY),  # not a name the bot gives: never touched
    ]

    report = await janitor(folder, keep_days=7).sweep()

    assert [p.exists() for p in strays] == [False] * 4 and all(p.exists() for p in kept)
    assert report.strays == 4 and report.stray_bytes == 4000
    assert Path(done.output_path or "").is_file() and report.media.jobs == 0  # its original is kept 7 days


async def test_a_file_left_by_a_purged_job_is_removed_by_the_next_sweep(folder: Folder) -> None:
    """The store is marked first; a file that could not be deleted then goes with the strays."""
    job = await folder.job(JobStatus.DELIVERED, ended_days_ago=8)
    await janitor(folder, keep_days=7).sweep()
    leftover = folder.stray(f"job-{job.id}.mp4", 8 * DAY)  # as if unlink had failed
    report = await janitor(folder, keep_days=7).sweep()
    assert not leftover.exists() and report.strays == 1 and report.media.jobs == 0


async def test_zero_days_keeps_media_forever_but_deleted_and_forgotten_ones_still_go(folder: Folder) -> None:
    """MEDIA_RETENTION_DAYS=0 keeps every file by age; a Delete or a forget removes media all the same."""
    ancient = await folder.job(JobStatus.DELIVERED, ended_days_ago=400)
    deleted = await folder.job(JobStatus.DELIVERED, ended_days_ago=1)
    await folder.store.jobs.update(deleted.id, deleted_at=NOW)
    report = await janitor(folder, keep_days=None).sweep()
    assert Path(ancient.output_path or "").is_file() and await folder.store.jobs.get_input(ancient.id) is not None
    assert not Path(deleted.output_path or "").exists() and report.media.jobs == 1


async def test_forget_erases_a_members_prompts_and_media_and_waits_for_one_in_flight(folder: Folder) -> None:
    """Finished jobs are erased at once; a running one keeps its prompt until it is over and a sweep comes."""
    store = folder.store
    finished = await folder.job(JobStatus.DELIVERED, ended_days_ago=1)
    running = await folder.job(JobStatus.RUNNING)
    theirs = await folder.job(JobStatus.DELIVERED, ended_days_ago=1, user=OTHER)
    before = await usage_figures(store)
    keeper = janitor(folder, keep_days=7)

    result = await keeper.forget(GUILD, USER)

    assert (result.jobs, result.newly, result.waiting, result.freed.jobs) == (2, 2, 1, 1)
    erased, waiting, other = [await store.jobs.get(j.id) for j in (finished, running, theirs)]
    assert erased is not None and erased.prompt == "" and erased.shown_prompt == "(forgotten)" and not erased.has_media
    assert not Path(finished.output_path or "").exists()
    assert waiting is not None and waiting.prompt == "prompt of 20" and waiting.has_media  # xAI may still need it
    assert waiting.shown_prompt == "(forgotten)"  # but no view shows it any more
    assert other is not None and other.prompt == "prompt of 30" and other.forgotten_at is None
    assert await usage_figures(store) == before
    csv = to_csv(await store.usage.in_guild(GUILD, user_id=USER), await ServerRules(store, None).policy(GUILD))
    assert b"prompt of 20" not in csv and csv.count(b"(forgotten)") == 2

    assert await store.jobs.transition(running.id, JobStatus.RUNNING, JobStatus.FAILED)
    await store.jobs.update(running.id, notified_at=NOW)
    await keeper.sweep()
    done = await store.jobs.get(running.id)
    assert done is not None and done.prompt == "" and not done.has_media and done.media_purged_at == NOW
    again = await keeper.forget(GUILD, USER)
    assert (again.jobs, again.newly, again.waiting) == (2, 0, 0)


async def test_a_failing_sweep_is_logged_and_the_next_one_succeeds(
    folder: Folder, caplog: pytest.LogCaptureFixture
) -> None:
    """A locked database fails one sweep with a warning; the timer's next sweep does the work."""
    job = await folder.job(JobStatus.DELIVERED, ended_days_ago=8)
    await folder.store.database.execute("PRAGMA busy_timeout = 50")
    other = sqlite3.connect(folder.store.path, timeout=0.1)
    other.execute("BEGIN IMMEDIATE")  # another program holds the write lock
    keeper = janitor(folder, keep_days=7)
    with caplog.at_level(logging.INFO, logger="services.media.retention"):
        assert await keeper.sweep_safely() is None
        other.rollback()
        other.close()
        report = await keeper.sweep_safely()
    assert "Media sweep failed (database is locked); the next sweep, in 1 hour, tries again" in caplog.text
    assert report is not None and report.media.jobs == 1 and keeper.sweeps == 1
    assert not Path(job.output_path or "").exists()
    line = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("Media sweep: "))
    assert "removed the media of 1 job(s): 1 file(s)" in line and "kept 7 days after a job ends" in line


async def test_the_timer_sweeps_first_soon_then_on_its_interval_and_stops_cleanly(folder: Folder) -> None:
    """start() leads to a first sweep and more after it, a broken folder does not end the timer, stop() ends it."""
    keeper = janitor(folder, keep_days=7, first_sweep_s=0.01, sweep_interval_s=0.02)
    folder.videos.rmdir()
    folder.videos.write_bytes(b"")  # the folder is a file now: every sweep fails with a disk error
    keeper.start()
    await asyncio.sleep(0.1)
    assert keeper.running and keeper.sweeps == 0
    folder.videos.unlink()
    deadline = time.monotonic() + 5
    while keeper.sweeps < 2 and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert keeper.sweeps >= 2
    await keeper.stop()
    assert not keeper.running
    assert not [t for t in asyncio.all_tasks() if t.get_name() == "media-janitor"]


async def test_ending_a_job_records_when_it_ended(tmp_path: Path) -> None:
    """Retention counts from the moment a job reached its final status, which the store writes itself."""
    async with await Store.open(tmp_path / "jobs.sqlite3") as store:
        request = JobRequest(Mode.TEXT, "p", VideoOptions(), Origin(guild_id=1, user_id=2))
        job = await store.jobs.create(request)
        assert await store.jobs.transition(job.id, JobStatus.QUEUED, JobStatus.SUBMITTING)
        assert (await store.jobs.get(job.id)).ended_at is None  # type: ignore[union-attr]
        before = time.time()
        assert await store.jobs.transition(job.id, JobStatus.SUBMITTING, JobStatus.CANCELLED)
        ended = (await store.jobs.get(job.id)).ended_at  # type: ignore[union-attr]
    assert ended is not None and before <= ended <= time.time()


async def test_schema_6_dates_the_endings_of_earlier_jobs(tmp_path: Path) -> None:
    """Upgrading gives finished jobs an ending time (delivery, else their last update), so they are kept 7 days."""
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as old:
        for number, script in enumerate(MIGRATIONS[:5], start=1):
            old.executescript(f"{script}\nPRAGMA user_version = {number};")
        for status, delivered in (("delivered", 5.0), ("failed", None), ("running", None)):
            old.execute(
                "INSERT INTO jobs (created_at, updated_at, mode, prompt, status, delivered_at) "
                "VALUES (1, 9, 'text', 'p', ?, ?)",
                (status, delivered),
            )
    async with await Store.open(path) as store:
        jobs = await store.jobs.with_status(JobStatus)
    assert [job.ended_at for job in jobs] == [5.0, 9.0, None]
    assert all(job.media_purged_at is None and job.forgotten_at is None for job in jobs)


@pytest.mark.parametrize(("raw", "days"), [(None, 7.0), ("0", None), ("0.5", 0.5), ("30", 30.0)])
def test_media_retention_days_takes_fractions_and_zero_for_forever(raw: str | None, days: float | None) -> None:
    """MEDIA_RETENTION_DAYS defaults to 7; 0 keeps media forever; 0.5 is twelve hours."""
    values = {"XAI_API_KEY": "k", **({"MEDIA_RETENTION_DAYS": raw} if raw is not None else {})}
    settings = load_settings(values, need_discord=False)
    assert settings.retention.keep_days == days and settings.retention.sweep_interval_s == 3600.0


@pytest.mark.parametrize(
    ("name", "raw"), [("MEDIA_RETENTION_DAYS", "-1"), ("MEDIA_RETENTION_DAYS", "a week"),
                      ("MEDIA_RETENTION_DAYS", "nan"), ("MEDIA_SWEEP_MINUTES", "0")]
)  # fmt: skip
def test_malformed_retention_settings_stop_start_up_naming_the_variable(name: str, raw: str) -> None:
    """A bad value is one line that names it and says what it should be."""
    with pytest.raises(ConfigError, match=f"^{name}="):
        load_settings({"XAI_API_KEY": "k", name: raw}, need_discord=False)


def test_how_long_media_is_kept_in_words() -> None:
    """The buttons say "after 7 days", "after 12 hours"... as the setting reads."""
    assert [kept_for(d) for d in (7, 1, 0.5, 1 / 24, 1 / 16)] == ["7 days", "1 day", "12 hours", "1 hour", "90 minutes"]
