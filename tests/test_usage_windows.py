"""/usage places a job in time where the limits' windows do: when it was sent to xAI, else when it was asked
for, and a job still in the making today, whatever its age.

Since issue 11 (``UsageRepository.in_guild`` and ``build_report``); before it /usage read the creation time, so a
job that waited in line through an outage counted on today's limits but on an earlier day in /usage.
Read through the store query ``cogs/usage.py`` calls, on a real SQLite file.
"""

from __future__ import annotations

import time
from pathlib import Path

from services.jobs.models import JobRequest, JobStatus, Mode, Origin, VideoOptions
from services.policy.guild_policy import GuildPolicy
from services.policy.usage import Period, build_report
from services.store.store import Store

DAY = 86400.0
HOUR = 3600.0


def _request(prompt: str) -> JobRequest:
    return JobRequest(Mode.TEXT, prompt, VideoOptions(duration=3), Origin(guild_id=1, channel_id=2, user_id=3))


async def _aged(store: Store, job_id: int, *, created: float, charged: float | None = None) -> None:
    await store.database.execute("UPDATE jobs SET created_at = ? WHERE id = ?", (created, job_id))
    if charged is not None:
        await store.database.execute("UPDATE jobs SET charged_at = ? WHERE id = ?", (charged, job_id))


async def _ended(store: Store, prompt: str, *, charged: bool) -> int:
    job = await store.jobs.create(_request(prompt))
    await store.jobs.transition(job.id, JobStatus.QUEUED, JobStatus.SUBMITTING, charged=charged)
    await store.jobs.transition(job.id, JobStatus.SUBMITTING, JobStatus.FAILED, error_code="timeout")
    return job.id


async def test_usage_places_a_job_when_it_was_sent_and_one_in_the_making_today(
    tmp_path: Path, store_url: str | None
) -> None:
    """Asked for 10 days ago: sent 2 days ago (in the 7 days), never sent (out), still generating (in, today)."""
    now = time.time()
    async with await Store.open(tmp_path / "jobs.sqlite3", url=store_url) as store:
        sent = await _ended(store, "sent late", charged=True)
        await _aged(store, sent, created=now - 10 * DAY, charged=now - 2 * DAY)
        unsent = await _ended(store, "never sent", charged=False)
        await _aged(store, unsent, created=now - 10 * DAY)
        making = await store.jobs.create(_request("still generating"))
        await store.jobs.transition(making.id, JobStatus.QUEUED, JobStatus.SUBMITTING, charged=True)
        await store.jobs.transition(making.id, JobStatus.SUBMITTING, JobStatus.RUNNING, request_id="r-1")
        await _aged(store, making.id, created=now - 10 * DAY, charged=now - 10 * DAY)

        week = await store.usage.in_guild(1, since=Period.WEEK.since(now))
        assert sorted(job.id for job in week) == [sent, making.id]
        everything = await store.usage.in_guild(1)
        assert sorted(job.id for job in everything) == [sent, unsent, making.id]

        report = build_report(week, GuildPolicy(), Period.WEEK, now=now)
        by_day = {day.day: day.jobs for day in report.days if day.jobs}
        assert by_day == {_utc_day(now - 2 * DAY): 1, _utc_day(now): 1}


def _utc_day(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(timestamp))
