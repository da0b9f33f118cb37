"""A Cancel while xAI generates a video stops nothing at xAI: the job is followed quietly until xAI is done.

xAI has no cancel endpoint, so a job cancelled after its request went out keeps generating (and billing) and
keeps one of the account's concurrent slots. It stays in the making for the member's active limit and /quota,
holds its slot in the scheduler, is polled only when no live job is due, and is let go once xAI says it is over
(its reported cost recorded) or a poll past its deadline still finds it pending. Nothing of it is downloaded or
posted. A restart picks it up again.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.jobs.models import CancelResult, JobStatus
from services.scheduler.poll_policy import JobEvidence, JobKind, Poll, PollPolicy
from services.scheduler.polltable import PollTable, Tracked
from tests.emulators.xai_emulator import Outcome
from tests.harness import BotRig
from tests.scheduler_rig import Rig, open_rig, text_request, unlimited_service, wait_for
from tests.test_limits_e2e import refused, reply, text_of
from tests.test_money_e2e import cancelled_while_generating


@pytest.fixture
async def srig(tmp_path: Path) -> AsyncIterator[Rig]:
    async with open_rig(tmp_path) as rig:
        yield rig


def _generating_at_xai(rig: Rig | BotRig) -> int:
    return sum(1 for job in rig.xai.jobs.values() if job.ready_at is None)


async def test_a_cancelled_job_keeps_its_slot_until_xai_is_done_with_it(srig: Rig) -> None:
    """One concurrent slot: the job behind a cancelled one is sent only once xAI finished the cancelled one."""
    srig.xai.prompt_outcomes["first"] = Outcome(generation_s=1.0, cost_usd_ticks=2_000_000_000)
    scheduler = srig.scheduler(max_concurrent=1)
    await scheduler.start()
    service = unlimited_service(srig.store, scheduler)
    first = (await service.accept(text_request("first"))).job
    await wait_for(srig.store, first.id, lambda job: job.status is JobStatus.RUNNING)
    second = (await service.accept(text_request("second"))).job
    assert await scheduler.cancel(first.id) is CancelResult.AFTER_SENDING
    cancelled = await srig.store.jobs.get(first.id)
    assert cancelled is not None and cancelled.status is JobStatus.CANCELLED and cancelled.in_flight
    assert await srig.store.usage.active_count(1, 1) == 2  # still in the making, with the one waiting behind it
    await asyncio.sleep(0.3)
    assert scheduler.generating == 1 and len(srig.xai.submits()) == 1  # the slot is still taken at xAI
    delivered = await srig.ended(second.id)  # sent once xAI finished the first one
    assert delivered.status is JobStatus.DELIVERED
    settled = await srig.store.jobs.get(first.id)
    assert settled is not None and settled.ended_at is not None and not settled.in_flight
    assert settled.cost_usd_ticks == 2_000_000_000  # xAI's own figure, recorded when it came
    assert settled.status is JobStatus.CANCELLED and settled.charged
    assert srig.xai.max_active <= 1  # never two generating at xAI at once
    assert {d.request_id for d in srig.xai.downloads} == {delivered.request_id}  # nothing fetched for the first


async def test_a_cancelled_job_xai_never_finishes_is_let_go_at_its_deadline(srig: Rig) -> None:
    """A poll past the deadline still pending lets it go: no timeout notice is sent, it just stops counting."""
    srig.xai.outcomes.append(Outcome(kind="never"))
    scheduler = srig.scheduler(timeout_s=0.6)
    await scheduler.start()
    job = (await unlimited_service(srig.store, scheduler).accept(text_request())).job
    await wait_for(srig.store, job.id, lambda j: j.status is JobStatus.RUNNING)
    assert await scheduler.cancel(job.id) is CancelResult.AFTER_SENDING
    let_go = await wait_for(srig.store, job.id, lambda j: j.ended_at is not None)
    assert let_go.status is JobStatus.CANCELLED and let_go.error_code == "cancelled" and let_go.charged
    assert srig.polls_of(let_go.request_id) >= 2  # asked again after the Cancel, until its deadline
    assert scheduler.generating == 0
    assert job.id not in srig.listener.endings  # no ending is told twice: the Cancel already said it all


async def test_a_restart_follows_a_cancelled_job_again(srig: Rig) -> None:
    """Cancelled while generating, then the bot stops: the next start polls it and records xAI's verdict."""
    srig.xai.prompt_outcomes["slow"] = Outcome(generation_s=1.5)
    first = srig.scheduler()
    await first.start()
    job = (await unlimited_service(srig.store, first).accept(text_request("slow"))).job
    await wait_for(srig.store, job.id, lambda j: j.status is JobStatus.RUNNING)
    assert await first.cancel(job.id) is CancelResult.AFTER_SENDING
    await first.stop(grace_s=1)
    stopped = await srig.store.jobs.get(job.id)
    assert stopped is not None and stopped.in_flight  # xAI still on it
    second = srig.scheduler()
    await second.start()
    assert second.generating == 1
    settled = await wait_for(srig.store, job.id, lambda j: j.ended_at is not None)
    assert settled.cost_usd_ticks == 1_500_000_000 and not srig.xai.downloads
    assert second.generating == 0


def test_live_jobs_are_polled_before_quiet_ones() -> None:
    """Polls cost budget: a cancelled job is asked about only when no job someone waits for is due."""
    table = PollTable()
    kind = JobKind("grok-imagine-video", "480p", 3, "text")
    table.add(Tracked(1, "quiet", 0.0, 100.0, kind, JobEvidence().pending(1.0, 25), quiet=True))  # ready at ~4 s
    table.add(Tracked(2, "live", 0.0, 100.0, kind, JobEvidence().pending(1.0, 20)))  # ready at about 5 s
    policy = PollPolicy()

    def polled(now: float) -> int | None:
        decision = policy.decide(now, table.running(), waiting=0, free_concurrency=0, rate_per_s=1.0)
        return decision.job_id if isinstance(decision, Poll) else None

    assert polled(6.0) == 2  # both due: the live one first
    assert polled(4.3) == 1  # nothing live due yet: the quiet one may have the slot
    assert table.generating == 2


async def test_cancel_in_a_loop_cannot_pass_the_active_limit(rig: BotRig) -> None:
    """LIMIT_USER_ACTIVE_JOBS=1: a cancelled video xAI still makes is in the making; the next waits for it."""
    emu = rig.discord
    rig.xai.prompt_outcomes["slow"] = Outcome(generation_s=4.0)
    async with rig.running(LIMIT_USER_ACTIVE_JOBS="1", LIMIT_USER_VIDEOS="10"):
        first = await cancelled_while_generating(rig, "slow 0")
        answer = await refused(rig, "slow 1")
        assert "You already have 1 video in the making" in answer
        quota = text_of(await reply(rig, await emu.slash("quota", {})))
        assert "1 of 1 videos in the making at once" in quota
        assert _generating_at_xai(rig) == 1
        done = await rig.wait_for_job(lambda job: job.ended_at is not None, first, timeout=20)
        assert done.cost_usd_ticks == 600_000_000  # xAI's reported cost, once it came (3 s on lite, the default)
        inter = await emu.slash("video", {"prompt": "slow 2", "duration": 3, "resolution": "480p"})
        await rig.wait_for_answer(inter, "Generating")  # accepted now that xAI is done with the first
    assert len(rig.xai.submits()) == 2
    assert not [m for m in emu.world.messages.values() if any(a.filename.endswith(".mp4") for a in m.attachments)]
