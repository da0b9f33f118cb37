"""Money spent is money counted: once a submit may have reached xAI, the job counts whatever its ending.

Each job runs through the real scheduler and client against the xAI emulator; what counts is read back
through the same store queries the limits use (``counted_count``, ``spend_total``), and through ``/usage``'s
arithmetic (``job_cost``). Only a job that provably started nothing at xAI is handed back.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.jobs.listener import DeliveryError, DeliveryReceipt
from services.jobs.models import ErrorCode, Job, JobStatus, ticks_to_usd
from services.policy.guild_policy import GuildPolicy
from services.policy.usage import job_cost
from tests.emulators.xai_emulator import Outcome
from tests.scheduler_rig import Rig, open_rig, text_request, unlimited_service, wait_for_status

SUBMIT = r"^/v1/videos/generations$"
POLICY = GuildPolicy()  # the rig's jobs record no model: priced as the classic one they are sent to
ESTIMATE = 0.15  # the rig's jobs: 3 s at 480p, $0.05 a second


@pytest.fixture
async def rig(tmp_path: Path, engine: str) -> AsyncIterator[Rig]:
    async with open_rig(tmp_path, engine) as rig:
        yield rig


async def _counted(rig: Rig, job: Job) -> tuple[int, float, float]:
    """(jobs counted, dollars counted by the limits, dollars /usage shows) for the rig's one member."""
    count = await rig.store.usage.counted_count(1, 1, 0)
    spend = await rig.store.usage.spend_total(1, 0, POLICY)
    stored = await rig.store.jobs.get(job.id)
    assert stored is not None
    return count, round(ticks_to_usd(spend), 4), round(ticks_to_usd(job_cost(stored, POLICY)[0]), 4)


@pytest.mark.parametrize(
    ("outcome", "status", "code", "dollars"),
    [
        (Outcome(kind="moderated", cost_usd_ticks=2_000_000_000), JobStatus.MODERATED, ErrorCode.MODERATED, 0.20),
        (Outcome(kind="moderated_400"), JobStatus.MODERATED, ErrorCode.MODERATED, ESTIMATE),
        (Outcome(kind="failed"), JobStatus.FAILED, ErrorCode.XAI_FAILED, ESTIMATE),
        (Outcome(kind="expired"), JobStatus.EXPIRED, ErrorCode.EXPIRED, ESTIMATE),
        (Outcome(video=b"not a video at all"), JobStatus.FAILED, ErrorCode.DOWNLOAD_FAILED, 0.15),
    ],
)
async def test_a_job_xai_worked_on_counts_whatever_its_ending(
    rig: Rig, outcome: Outcome, status: JobStatus, code: ErrorCode, dollars: float
) -> None:
    """Moderated, failed at xAI, expired, not downloadable: each counts, at xAI's cost when reported."""
    rig.xai.outcomes.append(outcome)
    job = await rig.run_job(text_request())
    assert (job.status, job.error_code) == (status, code)
    assert await _counted(rig, job) == (1, dollars, dollars)
    assert job.charged


async def test_a_timed_out_job_counts_at_its_estimate(rig: Rig) -> None:
    """xAI never finished it within the timeout; it may still bill it, so it counts."""
    rig.xai.outcomes.append(Outcome(kind="never"))
    job = await rig.run_job(text_request(), rig.scheduler(timeout_s=0.3))
    assert job.error_code == ErrorCode.TIMEOUT
    assert await _counted(rig, job) == (1, ESTIMATE, ESTIMATE)
    assert job.charged


async def test_a_job_caught_mid_submit_by_a_crash_counts(rig: Rig) -> None:
    """Nobody can tell whether xAI got it: it is failed as uncertain, and it counts."""
    rig.xai.fail_requests("POST", SUBMIT, hang_s=3)
    first = rig.scheduler()
    await first.start()
    job = (await unlimited_service(rig.store, first).accept(text_request())).job
    await wait_for_status(rig.store, job.id, JobStatus.SUBMITTING)
    while not rig.xai.submits():
        await asyncio.sleep(0.01)
    await first.stop(grace_s=0)  # the request is on the wire when the process goes
    second = rig.scheduler()
    await second.start()
    ended = await rig.ended(job.id)
    assert ended.error_code == ErrorCode.SUBMIT_UNCERTAIN
    assert await _counted(rig, ended) == (1, ESTIMATE, ESTIMATE)
    assert ended.charged


async def test_a_video_that_could_not_be_delivered_counts(rig: Rig) -> None:
    """xAI made and billed it; Discord refusing the post does not hand it back."""

    async def refuse(job: Job, video: Path) -> DeliveryReceipt:
        raise DeliveryError("The bot may not post in that channel.", permanent=True)

    rig.listener.deliver = refuse  # type: ignore[method-assign]
    job = await rig.run_job(text_request())
    assert job.error_code == ErrorCode.DELIVERY_FAILED
    assert job.cost_usd_ticks == 1_500_000_000  # xAI's own figure (the emulator's price for 3 s)
    assert await _counted(rig, job) == (1, 0.15, 0.15)
    assert job.charged


async def test_a_server_error_on_submit_counts(rig: Rig) -> None:
    """A 500 may have started a billed job (it is never sent again), so it counts."""
    rig.xai.fail_requests("POST", SUBMIT, status=500)
    job = await rig.run_job(text_request())
    assert job.status is JobStatus.FAILED
    assert await _counted(rig, job) == (1, ESTIMATE, ESTIMATE)
    assert job.charged


@pytest.mark.parametrize(
    ("status", "body", "code"),
    [
        (400, {"code": "invalid-argument", "error": "Duration must be between 1 and 15 s."}, ErrorCode.XAI_REJECTED),
        (401, {"code": "unauthenticated", "error": "No API key provided."}, ErrorCode.XAI_AUTH),
        (429, {"code": "resource-exhausted", "error": "Your team has used all its credits."}, ErrorCode.XAI_CREDITS),
        (407, "<html>Proxy Authentication Required</html>", ErrorCode.XAI_UNAVAILABLE),  # a proxy's: xAI saw nothing
    ],
)
async def test_a_clear_refusal_from_xai_is_handed_back(
    rig: Rig, status: int, body: dict[str, str] | str, code: str
) -> None:
    """xAI answered that it took nothing (no job, nothing to bill): the job does not count."""
    rig.xai.fail_requests("POST", SUBMIT, status=status, body=body)
    job = await rig.run_job(text_request())
    assert (job.status, job.error_code) == (JobStatus.FAILED, code)
    assert await _counted(rig, job) == (0, 0.0, 0.0)
    assert not job.charged


async def test_a_prompt_refused_by_moderation_at_submit_counts(rig: Rig) -> None:
    """xAI bills moderated work, so a moderation refusal stays counted."""
    rig.xai.fail_requests("POST", SUBMIT, status=400, body={"code": "invalid-argument", "error": "Content moderated."})
    job = await rig.run_job(text_request())
    assert job.status is JobStatus.MODERATED
    assert await _counted(rig, job) == (1, ESTIMATE, ESTIMATE)
    assert job.charged


async def test_a_connection_that_never_opened_is_handed_back(rig: Rig) -> None:
    """Nobody listens at xAI's address: nothing was sent, so nothing counts."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    job = await rig.run_job(text_request(), rig.scheduler(base_url=f"http://127.0.0.1:{port}/v1"))
    assert job.status is JobStatus.FAILED
    assert await _counted(rig, job) == (0, 0.0, 0.0)
    assert not job.charged


async def test_a_job_waiting_in_line_counts_and_is_handed_back_when_cancelled(rig: Rig) -> None:
    """While it waits it holds its place in the limits; cancelled before it was sent, it costs nothing."""
    scheduler = rig.scheduler(max_concurrent=1)
    service = unlimited_service(rig.store, scheduler)
    job = (await service.accept(text_request())).job
    assert await _counted(rig, job) == (1, ESTIMATE, ESTIMATE)
    await service.cancel(job.id)
    assert await _counted(rig, job) == (0, 0.0, 0.0)
