"""Cancel means cancel: checked against the xAI emulator's own record of what reached it.

A Cancel before the request is on the wire (waiting in line, admitted but not yet sent, waiting for a
budget slot, between 429 retries) stops it: xAI never gets a job and the job costs nothing. Once the
request is on the wire, the Cancel says so and the job ends cancelled when xAI answers, still counted.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.jobs.models import CancelResult, ErrorCode, JobStatus
from tests.emulators.xai_emulator import Outcome
from tests.scheduler_rig import SUBMIT, Rig, open_rig, text_request, unlimited_service, until, wait_for, wait_for_status


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    async with open_rig(tmp_path) as rig:
        yield rig


async def test_cancel_while_the_budget_is_paused_by_a_429_sends_nothing(rig: Rig) -> None:
    """xAI turns the submit away with Retry-After: 30; a Cancel during that pause stops it at once, for free."""
    rig.xai.fail_requests("POST", SUBMIT, status=429, headers={"Retry-After": "30"})
    scheduler = rig.scheduler()
    await scheduler.start()
    job = (await unlimited_service(rig.store, scheduler).accept(text_request())).job
    await until(lambda: rig.xai.submits())
    # The emulator records the submit before the bot has read its 429: wait for the bot to take the pause.
    await until(lambda: rig.budget.delay() > 20)  # everyone waits for the pause: the submit is waiting for a slot
    await wait_for(rig.store, job.id, lambda j: not j.charged)  # and the turned-away attempt is handed back
    assert await scheduler.cancel(job.id) is CancelResult.BEFORE_SENDING
    stored = await rig.store.jobs.get(job.id)
    assert stored is not None and stored.status is JobStatus.CANCELLED and not stored.charged
    assert await rig.store.usage.counted_count(1, 1, 0) == 0  # handed back
    await asyncio.sleep(0.2)
    assert [r.status for r in rig.xai.submits()] == [429] and not rig.xai.jobs  # xAI never got a job
    assert scheduler.generating == 0


async def test_cancel_between_429_retries_sends_no_retry(rig: Rig) -> None:
    """A Cancel while a submit is on the wire says so; when xAI answers 429, the retry never goes out."""
    rig.xai.fail_requests("POST", SUBMIT, status=429, hang_s=0.5, headers={"Retry-After": "0"})
    scheduler = rig.scheduler()
    await scheduler.start()
    job = (await unlimited_service(rig.store, scheduler).accept(text_request())).job
    await until(lambda: rig.xai.submits())
    assert await scheduler.cancel(job.id) is CancelResult.AFTER_SENDING  # on the wire: it may reach xAI
    ended = await wait_for(rig.store, job.id, lambda j: j.status.is_terminal)
    assert ended.status is JobStatus.CANCELLED and not ended.charged  # xAI turned it away: it costs nothing
    await asyncio.sleep(0.2)
    assert len(rig.xai.submits()) == 1 and not rig.xai.jobs


@pytest.mark.sqlite_only  # holds the SQLite file's write lock
async def test_cancel_between_admission_and_the_wire_sends_nothing(rig: Rig, tmp_path: Path) -> None:
    """Admitted while another program holds the database: the Cancel lands before the submit could be sent."""
    job = await rig.store.jobs.create(text_request())
    locked, release = threading.Event(), threading.Event()

    def hold_the_write_lock() -> None:
        other = sqlite3.connect(tmp_path / "jobs.sqlite3", isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        locked.set()
        release.wait(10)
        other.execute("ROLLBACK")
        other.close()

    holder = asyncio.create_task(asyncio.to_thread(hold_the_write_lock))
    await asyncio.to_thread(locked.wait, 10)
    scheduler = rig.scheduler()
    await scheduler.start()  # resumes the queued job and admits it; its first write waits for the lock
    await until(lambda: scheduler.generating == 1)
    cancel = asyncio.create_task(scheduler.cancel(job.id))
    await asyncio.sleep(0.1)
    release.set()
    await holder
    assert await asyncio.wait_for(cancel, 10) is CancelResult.BEFORE_SENDING
    stored = await rig.store.jobs.get(job.id)
    assert stored is not None and stored.status is JobStatus.CANCELLED and not stored.charged
    await asyncio.sleep(0.2)
    assert not rig.xai.requests


async def test_cancel_during_a_submit_on_the_wire_ends_it_cancelled_and_counted(rig: Rig) -> None:
    """xAI has the job but its answer is slow: AFTER_SENDING, one submit, cancelled once the answer comes, and
    followed quietly (its slot held, nothing fetched) until xAI is done with it."""
    rig.xai.submit_delay_s = 0.5
    scheduler = rig.scheduler()
    await scheduler.start()
    job = (await unlimited_service(rig.store, scheduler).accept(text_request())).job
    await until(lambda: rig.xai.jobs)  # xAI made the job; the answer is still on the way
    assert await scheduler.cancel(job.id) is CancelResult.AFTER_SENDING
    assert await scheduler.cancel(job.id) is CancelResult.AFTER_SENDING  # a second click says the same
    ended = await wait_for(rig.store, job.id, lambda j: j.status.is_terminal)
    assert (ended.status, ended.error_code) == (JobStatus.CANCELLED, ErrorCode.CANCELLED)
    assert ended.charged and ended.request_id in rig.xai.jobs  # xAI may bill it: it counts
    assert await rig.store.usage.counted_count(1, 1, 0) == 1
    settled = await wait_for(rig.store, job.id, lambda j: j.ended_at is not None)  # xAI finished it meanwhile
    assert settled.cost_usd_ticks == 1_500_000_000  # at xAI's own figure
    assert len(rig.xai.submits()) == 1 and rig.polls_of(ended.request_id) >= 1
    assert not rig.xai.downloads and job.id not in rig.listener.delivered
    await until(lambda: scheduler.generating == 0)
    assert await scheduler.cancel(job.id) is None


async def test_a_cancel_racing_the_poll_that_finds_it_done_wins(rig: Rig) -> None:
    """The poll that would find the video ready is on the wire when the Cancel comes: nothing is fetched."""
    rig.xai.outcomes.append(Outcome(generation_s=0.05))
    rig.xai.poll_delay_s = 0.4  # the answer, when it comes, says "done"
    scheduler = rig.scheduler()
    await scheduler.start()
    job = (await unlimited_service(rig.store, scheduler).accept(text_request())).job
    await until(lambda: any(r.method == "GET" for r in rig.xai.requests))
    assert await scheduler.cancel(job.id) is CancelResult.AFTER_SENDING
    await asyncio.sleep(0.6)
    stored = await rig.store.jobs.get(job.id)
    assert stored is not None and stored.status is JobStatus.CANCELLED and stored.charged
    assert rig.xai.jobs[str(stored.request_id)].ready_at is not None  # xAI answered "done"...
    assert not rig.xai.downloads and job.id not in rig.listener.delivered  # ...and nothing was fetched
    assert await scheduler.cancel(job.id) is None  # already over: nothing more to stop


async def test_cancel_twice_while_waiting_in_line(rig: Rig) -> None:
    """The first Cancel hands the job back; the second finds it already over."""
    scheduler = rig.scheduler(max_concurrent=1)
    service = unlimited_service(rig.store, scheduler)
    await service.accept(text_request("first"))
    waiting = (await service.accept(text_request("second"))).job
    assert await service.cancel(waiting.id) is CancelResult.BEFORE_SENDING
    assert await service.cancel(waiting.id) is None
    stored = await rig.store.jobs.get(waiting.id)
    assert stored is not None and stored.status is JobStatus.CANCELLED and not stored.charged


async def test_a_shutdown_puts_an_unsent_submit_back_in_line(rig: Rig) -> None:
    """Stopping while a submit waits out a 429 leaves it waiting in line, not "uncertain": the next start sends it."""
    rig.xai.fail_requests("POST", SUBMIT, status=429, headers={"Retry-After": "30"})
    first = rig.scheduler()
    await first.start()
    job = (await unlimited_service(rig.store, first).accept(text_request())).job
    await until(lambda: rig.xai.submits())
    await first.stop(grace_s=2)
    stored = await rig.store.jobs.get(job.id)
    assert stored is not None and stored.status is JobStatus.QUEUED and not stored.charged
    second = rig.scheduler(rpm=6000)  # a fresh process: a fresh budget
    await second.start()
    ended = await rig.ended(job.id)
    assert ended.status is JobStatus.DELIVERED
    assert [r.status for r in rig.xai.submits()] == [429, 200]
    await wait_for_status(rig.store, job.id, JobStatus.DELIVERED)
