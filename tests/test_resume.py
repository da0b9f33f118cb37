"""A restart tells the truth: a resumed job is asked about before anything is said about it.

A job's age survives restarts (the stored, wall-clock ``submitted_at``) but runs on the monotonic clock
within a run, and a job is called timed out only by a poll, made after its deadline, that finds it still
pending. Jobs are stored hours old (or the scheduler's wall clock is moved) instead of waiting.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.jobs.models import ErrorCode, Job, JobStatus
from services.media import probing
from services.scheduler.poll_policy import JobKind
from tests.emulators.xai_emulator import Outcome
from tests.scheduler_rig import Rig, open_rig, text_request, unlimited_service, wait_for

HOUR = 3600.0
POLLS = r"^/v1/videos/[0-9a-f-]{36}$"


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    async with open_rig(tmp_path) as rig:
        yield rig


async def _left_by_an_earlier_run(rig: Rig, status: JobStatus, request_id: str | None, age_s: float) -> Job:
    """A job as a bot that stopped ``age_s`` after submitting it would have left it in the store."""
    job = await rig.store.jobs.create(text_request())
    submitted = time.time() - age_s
    assert await rig.store.jobs.transition(job.id, JobStatus.QUEUED, JobStatus.SUBMITTING, charged=True)
    assert await rig.store.jobs.transition(
        job.id, JobStatus.SUBMITTING, JobStatus.RUNNING, request_id=request_id, submitted_at=submitted
    )
    if status is JobStatus.DOWNLOADING:
        assert await rig.store.jobs.transition(job.id, JobStatus.RUNNING, status, finished_at=submitted + 60)
    stored = await rig.store.jobs.get(job.id)
    assert stored is not None
    return stored


@pytest.mark.parametrize("status", [JobStatus.RUNNING, JobStatus.DOWNLOADING])
async def test_a_job_hours_old_that_xai_finished_is_fetched_and_delivered(rig: Rig, status: JobStatus) -> None:
    """Down for five hours with a job xAI finished (and billed): polled once for its address, then delivered."""
    request_id = rig.xai.add_job(finished=True)
    job = await _left_by_an_earlier_run(rig, status, request_id, age_s=5 * HOUR)
    await rig.scheduler(timeout_s=600).start()
    ended = await rig.ended(job.id)
    assert ended.status is JobStatus.DELIVERED
    assert rig.listener.delivered[job.id] == rig.xai.output_video
    assert rig.polls_of(request_id) == 1 and not rig.xai.submits()


async def test_a_job_past_its_deadline_is_polled_once_then_timed_out_honestly(rig: Rig) -> None:
    """Still pending when asked after the deadline: timed out, with xAI's request id and that xAI may charge."""
    request_id = rig.xai.add_job(Outcome(kind="never"), finished=False)
    job = await _left_by_an_earlier_run(rig, JobStatus.RUNNING, request_id, age_s=2 * HOUR)
    await rig.scheduler(timeout_s=600).start()
    ended = await rig.ended(job.id)
    assert (ended.status, ended.error_code) == (JobStatus.FAILED, ErrorCode.TIMEOUT)
    assert request_id in (ended.error_message or "") and "may still charge" in (ended.error_message or "")
    assert rig.polls_of(request_id) == 1 and ended.charged


async def test_a_job_xai_cannot_be_asked_about_waits_instead_of_timing_out(rig: Rig) -> None:
    """Polls fail long past the deadline; the job is never failed on age alone, and is delivered once xAI answers."""
    rig.xai.outcomes.append(Outcome(generation_s=0.05))
    rig.xai.fail_requests("GET", POLLS, status=503, times=12)  # four polls, each with its two retries
    scheduler = rig.scheduler(timeout_s=0.2)
    await scheduler.start()
    job = (await unlimited_service(rig.store, scheduler).accept(text_request())).job
    await wait_for(rig.store, job.id, lambda j: j.status is JobStatus.RUNNING)
    while rig.xai.pending_faults():
        stored = await rig.store.jobs.get(job.id)
        assert stored is not None and stored.status is JobStatus.RUNNING
        await asyncio.sleep(0.02)
    ended = await rig.ended(job.id)
    assert ended.status is JobStatus.DELIVERED


async def test_a_job_still_generating_at_its_deadline_gets_a_poll_right_then(rig: Rig) -> None:
    """The deadline itself brings a poll; a job xAI finishes just before it is delivered, never timed out."""
    rig.xai.outcomes.append(Outcome(kind="never"))
    job = await rig.run_job(text_request(), rig.scheduler(timeout_s=0.4))
    assert job.error_code == ErrorCode.TIMEOUT
    polls = [r.time for r in rig.xai.requests if r.method == "GET"]
    submitted = next(r.time for r in rig.xai.requests if r.method == "POST")
    assert polls[-1] - submitted >= 0.4  # the poll that decided was made after the deadline


async def test_a_wall_clock_jump_during_a_run_does_not_age_a_job(rig: Rig) -> None:
    """The system clock leaps a day forward mid-job: the job's age runs on the monotonic clock, so it lives."""
    jump = 0.0

    def wall() -> float:
        return time.time() + jump

    rig.xai.outcomes.append(Outcome(generation_s=0.6))
    scheduler = rig.scheduler(timeout_s=60, wall_clock=wall)
    await scheduler.start()
    job = (await unlimited_service(rig.store, scheduler).accept(text_request())).job
    await wait_for(rig.store, job.id, lambda j: j.status is JobStatus.RUNNING)
    jump = 24 * HOUR
    ended = await rig.ended(job.id)
    assert ended.status is JobStatus.DELIVERED


async def test_the_age_of_a_resumed_job_comes_from_the_wall_clock(rig: Rig) -> None:
    """Resumed in a run whose wall clock says two hours have passed: the job is past its deadline, asked once."""
    request_id = rig.xai.add_job(Outcome(kind="never"), finished=False)
    job = await _left_by_an_earlier_run(rig, JobStatus.RUNNING, request_id, age_s=0)
    await rig.scheduler(timeout_s=600, wall_clock=lambda: time.time() + 2 * HOUR).start()
    ended = await rig.ended(job.id)
    assert ended.error_code == ErrorCode.TIMEOUT and rig.polls_of(request_id) == 1


async def test_a_job_xai_says_expired_after_a_long_downtime_says_so(rig: Rig) -> None:
    """Past xAI's 24 hours the video is gone: the requester hears that it expired, not that it timed out."""
    request_id = rig.xai.add_job(Outcome(kind="expired"), finished=True)
    job = await _left_by_an_earlier_run(rig, JobStatus.DOWNLOADING, request_id, age_s=30 * HOUR)
    await rig.scheduler().start()
    ended = await rig.ended(job.id)
    assert (ended.status, ended.error_code) == (JobStatus.EXPIRED, ErrorCode.EXPIRED) and ended.charged


async def test_a_downloading_job_without_its_request_id_fails_honestly_and_counts(rig: Rig) -> None:
    """The row lost its xAI id: nothing can be fetched, the message says why, and it still counts."""
    job = await _left_by_an_earlier_run(rig, JobStatus.DOWNLOADING, None, age_s=HOUR)
    await rig.scheduler().start()
    ended = await rig.ended(job.id)
    assert ended.status is JobStatus.FAILED and "lost the id" in (ended.error_message or "")
    assert await rig.store.usage.counted_count(1, 1, 0) == 1 and ended.charged


async def test_a_resumed_finished_video_is_checked_before_it_is_delivered(rig: Rig) -> None:
    """What is delivered after a resume is a whole, playable copy."""
    request_id = rig.xai.add_job(Outcome(damaged_downloads=1), finished=True)
    job = await _left_by_an_earlier_run(rig, JobStatus.DOWNLOADING, request_id, age_s=3 * HOUR)
    await rig.scheduler().start()
    ended = await rig.ended(job.id)
    assert ended.status is JobStatus.DELIVERED
    delivered = rig.tmp_path / "delivered.mp4"
    delivered.write_bytes(rig.listener.delivered[job.id])
    await probing.check_result_video(delivered)


async def test_generation_times_are_stored_and_learnt_again_by_the_next_start(rig: Rig) -> None:
    """A video found ready teaches its generation time, stored with its model; the next start begins from it. A
    job resumed after a downtime teaches nothing (its age spans the downtime)."""
    rig.xai.outcomes.append(Outcome(generation_s=0.3))
    job = await rig.run_job(text_request())
    assert job.status is JobStatus.DELIVERED and job.model == rig.xai.model
    assert job.generation_s is not None and 0.1 < job.generation_s < 1.0
    resumed = await _left_by_an_earlier_run(rig, JobStatus.RUNNING, rig.xai.add_job(finished=True), age_s=HOUR)
    second = rig.scheduler()
    await second.start()
    assert second.policy.history.samples(JobKind(rig.xai.model, "480p", 3, "text")) == 1
    ended = await rig.ended(resumed.id)
    assert ended.status is JobStatus.DELIVERED and ended.generation_s is None
