"""The limits' rolling windows count a job when it was sent to xAI, and a job still in the making now.

A job that waited in line through a long outage is sent (and billed) on the restart: it counts in today's
spend and videos, not on the day it was asked for. A job still in the making counts whatever its age, and a
refusal it blocks names no moment in the past. Read through the same store queries the limits, /quota and
/usage use, on a real SQLite file.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.jobs.accepting import JobService
from services.jobs.models import JobRequest, JobStatus, Mode, Origin, VideoOptions
from services.policy.guild_policy import GuildPolicy, LimitDefaults
from services.policy.limits import Limit, Refused
from services.policy.server_rules import ServerRules
from tests.scheduler_rig import Rig, open_rig, text_request

DAY = 86400.0
HOUR = 3600.0
POLICY = GuildPolicy()  # the rig's jobs record no model: priced as the classic one they are sent to


@pytest.fixture
async def rig(tmp_path: Path, engine: str) -> AsyncIterator[Rig]:
    async with open_rig(tmp_path, engine) as rig:
        yield rig


async def _aged(rig: Rig, job_id: int, *, created: float, charged: float | None = None) -> None:
    """Move a stored job's moments into the past (as if the bot had been down meanwhile)."""
    await rig.store.database.execute("UPDATE jobs SET created_at = ? WHERE id = ?", (created, job_id))
    if charged is not None:
        await rig.store.database.execute("UPDATE jobs SET charged_at = ? WHERE id = ?", (charged, job_id))


async def test_a_job_that_waited_through_an_outage_counts_on_the_day_it_was_sent(rig: Rig) -> None:
    """Asked for 25 h ago, sent on today's restart: it counts in today's videos and spend."""
    job = await rig.store.jobs.create(text_request())
    await _aged(rig, job.id, created=time.time() - 25 * HOUR)
    scheduler = rig.scheduler()
    await scheduler.start()  # the restart
    done = await rig.ended(job.id)
    assert done.status is JobStatus.DELIVERED and done.request_id in rig.xai.jobs  # sent and billed today
    since = time.time() - DAY
    assert await rig.store.usage.counted_count(1, None, since) == 1
    assert await rig.store.usage.spend_total(1, since, POLICY) == 1_500_000_000  # xAI's figure for 3 s ($0.15)
    assert done.charged_at is not None and done.charged_at > since


async def test_a_finished_job_counts_from_when_it_was_charged(rig: Rig) -> None:
    """Charged 23 h ago (asked for 30 h ago): in today's window. Charged 25 h ago: out of it."""
    now = time.time()
    inside, outside = [await rig.store.jobs.create(text_request(f"p{n}")) for n in range(2)]
    for job, charged_at in ((inside, now - 23 * HOUR), (outside, now - 25 * HOUR)):
        await rig.store.jobs.transition(job.id, JobStatus.QUEUED, JobStatus.SUBMITTING, charged=True)
        await rig.store.jobs.transition(job.id, JobStatus.SUBMITTING, JobStatus.FAILED, error_code="timeout")
        await _aged(rig, job.id, created=now - 30 * HOUR, charged=charged_at)
    assert await rig.store.usage.counted_count(1, None, now - DAY) == 1
    uses = await rig.store.usage.counted_uses(1, None, now - DAY)
    assert [round(use.charged_at or 0) for use in uses] == [round(now - 23 * HOUR)]
    assert await rig.store.usage.spend_total(1, now - DAY, POLICY) == 1_500_000_000  # $0.15


async def test_a_job_still_in_the_making_counts_whatever_its_age(rig: Rig) -> None:
    """Sent two days ago and still generating (the bot was down): it counts against today's limits."""
    job = await rig.store.jobs.create(text_request())
    await rig.store.jobs.transition(job.id, JobStatus.QUEUED, JobStatus.SUBMITTING, charged=True)
    await rig.store.jobs.transition(job.id, JobStatus.SUBMITTING, JobStatus.RUNNING, request_id="r-1")
    await _aged(rig, job.id, created=time.time() - 2 * DAY)
    assert await rig.store.usage.counted_count(1, 1, time.time() - HOUR) == 1
    assert await rig.store.usage.counted_count(1, None, time.time() - DAY) == 1
    assert await rig.store.usage.spend_total(1, time.time() - DAY, POLICY) == 1_500_000_000


async def test_a_refusal_held_by_an_old_video_in_the_making_names_no_past_moment(rig: Rig) -> None:
    """The slot is a video sent two hours ago that xAI still makes: free when it finishes, not 'an hour ago'."""
    job = await rig.store.jobs.create(text_request())
    await rig.store.jobs.transition(job.id, JobStatus.QUEUED, JobStatus.SUBMITTING, charged=True)
    await rig.store.jobs.transition(job.id, JobStatus.SUBMITTING, JobStatus.RUNNING, request_id="r-1")
    await _aged(rig, job.id, created=time.time() - 2 * HOUR, charged=time.time() - 2 * HOUR)
    limits = LimitDefaults(user_videos=1, user_active_jobs=None, server_videos_per_day=None, server_usd_per_day=None)
    service = JobService(rig.store, rig.scheduler(), ServerRules(rig.store, limits))
    with pytest.raises(Refused) as refusal:
        await service.accept(text_request("another"))
    assert refusal.value.refusal.limit is Limit.USER_VIDEOS
    assert refusal.value.refusal.retry_at is None
    assert "as soon as one of your videos in the making finishes" in refusal.value.refusal.reason
    quota = await service.quota(1, 1)
    assert quota.videos_used == 1 and quota.next_video_at is None and quota.active == 1


async def test_an_edit_is_estimated_at_720p_until_xai_reports_its_cost(rig: Rig) -> None:
    """An edit keeps its input's resolution, which the bot does not record: it is never counted at 480p."""
    edit = JobRequest(Mode.EDIT, "watercolour", VideoOptions(), Origin(guild_id=1, channel_id=2, user_id=1))
    await rig.store.jobs.create(edit)  # waiting in line: counted at its estimate
    assert await rig.store.usage.spend_total(1, 0, POLICY) == 9 * 700_000_000  # 9 s at $0.07
    assert POLICY.estimate_ticks(None, Mode.EDIT, None, None) == 9 * 700_000_000
