"""The scheduler through the real client, against the xAI emulator over HTTP, with a real SQLite file."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.jobs.models import CancelResult, ErrorCode, Job, JobRequest, JobStatus, MediaInput, Mode, VideoOptions
from tests.emulators.xai_emulator import Outcome
from tests.mediafactory import make_image, make_mp4
from tests.scheduler_rig import RecordingListener, Rig, fast_sleep, open_rig, text_request, unlimited_service
from tests.scheduler_rig import wait_for_status as _wait_for_status

# The names other test files used before the rig moved to tests/scheduler_rig.py.
__all__ = ["RecordingListener", "Rig", "_fast_sleep", "_service", "_text", "_wait_for_status"]
_service, _text, _fast_sleep = unlimited_service, text_request, fast_sleep


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    async with open_rig(tmp_path) as rig:
        yield rig


async def test_text_job_is_generated_downloaded_and_delivered(rig: Rig) -> None:
    """The MP4 xAI made reaches the listener byte for byte, and the store records every step."""
    job = await rig.run_job(_text())
    assert job.status is JobStatus.DELIVERED
    assert rig.listener.delivered[job.id] == rig.xai.output_video
    assert job.request_id in rig.xai.jobs
    assert job.cost_usd_ticks and job.submitted_at and job.finished_at and job.delivered_at
    assert job.delivery_method == "test" and job.output_bytes == len(rig.xai.output_video)
    assert any(status is JobStatus.RUNNING and progress for _, status, progress in rig.listener.statuses)


async def test_image_and_edit_jobs_send_their_media(rig: Rig) -> None:
    """Animating sends the image as a data URI; editing goes to /videos/edits with the video."""
    image = MediaInput(make_image("PNG"), "image/png", "cat.png")
    clip = MediaInput(make_mp4(1.0), "video/mp4", "clip.mp4")
    base = _text()
    animated = await rig.run_job(JobRequest(Mode.IMAGE, "move", VideoOptions(), base.origin, media=image))
    edited = await rig.run_job(JobRequest(Mode.EDIT, "sepia", VideoOptions(), base.origin, media=clip))
    assert animated.status is edited.status is JobStatus.DELIVERED
    bodies = {r.path: r.body for r in rig.xai.requests if r.method == "POST"}
    assert str(bodies["/v1/videos/generations"]["image"]["url"]).startswith("data:image/png;base64,")
    assert str(bodies["/v1/videos/edits"]["video"]["url"]).startswith("data:video/mp4;base64,")


@pytest.mark.parametrize(
    ("outcome", "status", "code", "words"),
    [
        (Outcome(kind="failed", error_message="the engine broke"), JobStatus.FAILED, "xai_failed", "engine broke"),
        (Outcome(kind="moderated"), JobStatus.MODERATED, "moderated", "may still charge"),
        (Outcome(kind="moderated_400"), JobStatus.MODERATED, "moderated", "moderation"),
        (Outcome(kind="expired"), JobStatus.EXPIRED, "expired", "expired"),
    ],
)
async def test_each_xai_ending_reaches_the_listener_in_words(
    rig: Rig, outcome: Outcome, status: JobStatus, code: str, words: str
) -> None:
    """Failed, moderated (both ways) and expired jobs end with a stored reason a person understands."""
    rig.xai.outcomes.append(outcome)
    job = await rig.run_job(_text())
    assert (job.status, job.error_code) == (status, code)
    assert words in (job.error_message or "")
    assert job.id not in rig.listener.delivered


async def test_a_job_past_the_timeout_fails_and_keeps_its_request_id(rig: Rig) -> None:
    """xAI never finishing ends the job with a clear reason; the request id stays for a later look."""
    rig.xai.outcomes.append(Outcome(kind="never"))
    job = await rig.run_job(_text(), rig.scheduler(timeout_s=0.6))
    assert (job.status, job.error_code) == (JobStatus.FAILED, ErrorCode.TIMEOUT)
    assert job.request_id and job.request_id in (job.error_message or "")


async def test_a_restart_in_the_middle_of_a_running_job_still_completes(rig: Rig) -> None:
    """Stop the scheduler while xAI works; a new one resumes polling and delivers without resubmitting."""
    rig.xai.outcomes.append(Outcome(generation_s=1.0))
    first = rig.scheduler()
    await first.start()
    accepted = await _service(rig.store, first).accept(_text())
    for _ in range(200):
        job = await rig.store.jobs.get(accepted.job.id)
        if job is not None and job.status is JobStatus.RUNNING:
            break
        await asyncio.sleep(0.01)
    await first.stop(grace_s=0)
    job = await rig.store.jobs.get(accepted.job.id)
    assert job is not None and job.status is JobStatus.RUNNING

    second = rig.scheduler()
    await second.start()
    ending = await asyncio.wait_for(rig.listener.ending(accepted.job.id), 20)
    assert ending.status is JobStatus.DELIVERING
    submits = [r for r in rig.xai.requests if r.method == "POST"]
    assert len(submits) == 1


async def test_a_job_interrupted_while_submitting_is_failed_not_resent(rig: Rig) -> None:
    """After a crash mid-submit nobody knows if xAI got it; resending could bill twice, so it fails clearly."""
    job = await rig.store.jobs.create(_text())
    await rig.store.jobs.transition(job.id, JobStatus.QUEUED, JobStatus.SUBMITTING, charged=True)  # it went on the wire
    scheduler = rig.scheduler()
    await scheduler.start()
    ended = await asyncio.wait_for(rig.listener.ending(job.id), 5)
    assert (ended.status, ended.error_code) == (JobStatus.FAILED, ErrorCode.SUBMIT_UNCERTAIN)
    assert "double charge" in (ended.error_message or "")
    assert not [r for r in rig.xai.requests if r.method == "POST"]


async def test_budget_and_concurrency_limits_are_never_exceeded(rig: Rig) -> None:
    """Ten jobs at 3 concurrent and 240 requests/min: no 429, no burst, never more than 3 generating."""
    rig.xai.requests_per_minute = 240
    rig.xai.max_concurrent = 3
    # 10% under the account's rate: the emulator shares this event loop, so on a loaded machine it can read two
    # requests sent 250 ms apart as closer (seen in CI); a real burst would still show as twice the rate.
    scheduler = rig.scheduler(max_concurrent=3, rpm=216)
    await scheduler.start()
    service = _service(rig.store, scheduler)
    ids = [(await service.accept(_text(f"clip {n}", user=n % 4))).job.id for n in range(10)]
    await asyncio.wait_for(asyncio.gather(*(rig.listener.ending(i) for i in ids)), 60)
    assert len(rig.listener.delivered) == 10
    assert rig.xai.n429 == 0 and rig.xai.rate_window_violations() == 0
    assert rig.xai.max_active <= 3 and scheduler.max_generating_seen <= 3


async def test_queue_positions_are_reported_and_round_robin(rig: Rig) -> None:
    """With one slot, a second person's job is admitted before the first person's backlog."""
    rig.xai.outcomes.extend(Outcome(generation_s=0.2) for _ in range(4))
    scheduler = rig.scheduler(max_concurrent=1)
    service = _service(rig.store, scheduler)
    alice = [(await service.accept(_text("a", user=1))).job.id for _ in range(3)]
    bob = (await service.accept(_text("b", user=2))).job.id
    assert scheduler.queue_position(bob) == 2
    await scheduler.start()
    await asyncio.wait_for(asyncio.gather(*(rig.listener.ending(i) for i in [*alice, bob])), 30)
    submitted = [job_id for job_id, status, _ in rig.listener.statuses if status is JobStatus.RUNNING]
    first_seen = list(dict.fromkeys(submitted))
    assert first_seen.index(bob) < first_seen.index(alice[1])


async def test_cancelling_queued_and_running_jobs(rig: Rig) -> None:
    """A queued job leaves the line; a running one stops being tracked; both are recorded as cancelled."""
    rig.xai.outcomes.append(Outcome(kind="never"))
    scheduler = rig.scheduler(max_concurrent=1)
    service = _service(rig.store, scheduler)
    running = (await service.accept(_text("first"))).job.id
    waiting = (await service.accept(_text("second"))).job.id
    await scheduler.start()
    for _ in range(200):
        job = await rig.store.jobs.get(running)
        if job is not None and job.status is JobStatus.RUNNING:
            break
        await asyncio.sleep(0.01)
    assert await service.cancel(waiting) is CancelResult.BEFORE_SENDING
    assert await service.cancel(running) is CancelResult.AFTER_SENDING
    for job_id in (running, waiting):
        job = await rig.store.jobs.get(job_id)
        assert job is not None and job.status is JobStatus.CANCELLED


async def test_transient_poll_errors_are_retried(rig: Rig) -> None:
    """Server errors while polling do not fail the job."""
    rig.xai.fail_requests("GET", r"^/v1/videos/", status=503, times=3)
    job = await rig.run_job(_text())
    assert job.status is JobStatus.DELIVERED


async def test_a_server_error_on_submit_fails_the_job_without_resubmitting(rig: Rig) -> None:
    """A 500 on submit might still have started a billed job, so it is not sent again."""
    rig.xai.fail_requests("POST", r"^/v1/videos/generations", status=500)
    job = await rig.run_job(_text())
    assert job.status is JobStatus.FAILED and job.error_code == ErrorCode.XAI_UNAVAILABLE
    assert len([r for r in rig.xai.requests if r.method == "POST"]) == 1


async def test_a_broken_video_from_xai_fails_with_a_reason(rig: Rig) -> None:
    """An output that is not a playable MP4 is caught before anyone is sent garbage."""
    rig.xai.outcomes.append(Outcome(video=b"this is not an mp4"))
    job = await rig.run_job(_text())
    assert (job.status, job.error_code) == (JobStatus.FAILED, ErrorCode.DOWNLOAD_FAILED)
    assert "could not download" in (job.error_message or "")


async def test_a_failure_nobody_could_be_told_about_is_told_on_the_next_start(rig: Rig) -> None:
    """The failure outbox: telling the requester is retried after a restart until it succeeds, then never again."""
    told: list[int] = []

    async def unreachable(job: Job) -> None:
        raise RuntimeError("Discord is down")

    rig.xai.outcomes.append(Outcome(kind="failed", error_message="the engine broke"))
    original = rig.listener.on_finished_without_video
    rig.listener.on_finished_without_video = unreachable  # type: ignore[method-assign]
    first = rig.scheduler()
    await first.start()
    accepted = await _service(rig.store, first).accept(_text())
    job = await _wait_for_status(rig.store, accepted.job.id, JobStatus.FAILED)
    await first.stop(grace_s=0)
    assert job.id not in told

    async def reachable(job: Job) -> None:
        told.append(job.id)
        await original(job)

    rig.listener.on_finished_without_video = reachable  # type: ignore[method-assign]
    second = rig.scheduler()
    await second.start()
    await asyncio.wait_for(rig.listener.ending(job.id), 5)
    for _ in range(500):  # that it was told is recorded right after (stopping at once could cut that write)
        if not await rig.store.jobs.unnotified_endings():
            break
        await asyncio.sleep(0.01)
    await second.stop(grace_s=0)
    assert await rig.store.jobs.unnotified_endings() == []

    third = rig.scheduler()
    await third.start()
    await asyncio.sleep(0.2)
    assert told == [job.id]
