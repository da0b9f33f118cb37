"""A poll is only a question: one that fails is asked again, and only a failure past the deadline ends a job.

A proxy's 407 or 403 page, a 401 during a key rotation, a 404 from a load balancer that lost track for a
moment: none of them is xAI's verdict on a video it is making (and billing). Each is asked again with backoff
until the job's deadline; only a poll made after it that still fails ends the job, in words that name what
failed and what to check. Through the real scheduler and client against the xAI emulator.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.jobs.models import CancelResult, ErrorCode, JobStatus
from tests.emulators.xai_emulator import Outcome
from tests.scheduler_rig import Rig, open_rig, text_request, unlimited_service, wait_for

POLL = r"^/v1/videos/[0-9a-f-]{36}$"
PROXY_PAGE = "<html><body><h1>Access denied</h1></body></html>"


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    async with open_rig(tmp_path) as rig:
        yield rig


@pytest.mark.parametrize("status", [401, 403, 404, 407])
async def test_one_refused_poll_does_not_end_a_billed_job(rig: Rig, status: int) -> None:
    """The first poll gets an error page; the next one finds the video, which is delivered."""
    rig.xai.fail_requests("GET", POLL, status=status, body=PROXY_PAGE, headers={"Content-Type": "text/html"})
    job = await rig.run_job(text_request())
    assert job.status is JobStatus.DELIVERED, f"ended {job.status}: {job.error_message!r}"
    assert rig.polls_of(job.request_id) >= 2 and rig.xai.pending_faults() == 0


@pytest.mark.parametrize(
    ("status", "words", "code"),
    [
        (407, "asked for a login (HTTP 407)", ErrorCode.XAI_UNAVAILABLE),
        (401, "XAI_API_KEY", ErrorCode.XAI_AUTH),
        (403, "XAI_API_KEY", ErrorCode.XAI_AUTH),
        (404, "no longer knows this job", ErrorCode.XAI_REJECTED),
    ],
)
async def test_polls_failing_past_the_deadline_end_the_job_in_words_that_name_the_cause(
    rig: Rig, status: int, words: str, code: ErrorCode
) -> None:
    """Asked again until the deadline; the poll after it still fails: the job ends saying why and what to check."""
    rig.xai.fail_requests("GET", POLL, status=status, body=PROXY_PAGE, times=1000)
    loop = asyncio.get_running_loop()
    started = loop.time()
    job = await rig.run_job(text_request(), rig.scheduler(timeout_s=0.8))
    assert loop.time() - started >= 0.8  # nothing ended it before its deadline
    assert (job.status, job.error_code) == (JobStatus.FAILED, code)
    message = job.error_message or ""
    assert words in message and "xAI may still charge for it" in message and str(job.request_id) in message
    assert rig.polls_of(job.request_id) >= 3  # asked again, with backoff
    assert job.charged  # xAI may have made, and billed, it


async def test_a_proxy_login_error_says_to_check_the_proxy_setting(rig: Rig) -> None:
    """A 407 comes from a proxy, never from xAI: the words send the admin to HTTPS_PROXY."""
    rig.xai.fail_requests("GET", POLL, status=407, body=PROXY_PAGE, times=1000)
    job = await rig.run_job(text_request(), rig.scheduler(timeout_s=0.3))
    assert "HTTPS_PROXY" in (job.error_message or "")


async def test_a_cancelled_job_whose_polls_keep_failing_is_let_go_at_its_deadline(rig: Rig) -> None:
    """Followed quietly after a Cancel: failing polls past its deadline let it go, and nobody is told twice."""
    rig.xai.outcomes.append(Outcome(kind="never"))
    scheduler = rig.scheduler(timeout_s=0.8)
    await scheduler.start()
    job = (await unlimited_service(rig.store, scheduler).accept(text_request())).job
    await wait_for(rig.store, job.id, lambda j: j.status is JobStatus.RUNNING)
    rig.xai.fail_requests("GET", POLL, status=401, body=PROXY_PAGE, times=1000)
    assert await scheduler.cancel(job.id) is CancelResult.AFTER_SENDING
    asked = rig.polls_of(job.request_id)
    let_go = await wait_for(rig.store, job.id, lambda j: j.ended_at is not None)
    assert rig.polls_of(let_go.request_id) > asked  # still asked about after the Cancel
    assert let_go.status is JobStatus.CANCELLED and let_go.error_code == ErrorCode.CANCELLED.value
    assert scheduler.generating == 0
    assert job.id not in rig.listener.endings
