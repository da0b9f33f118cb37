"""The store says, at every moment, whether a job's request may be at xAI: so a crash never guesses.

An admitted job is "submitting" but not charged while it waits for a request slot or out a 429's Retry-After;
the client's gate hook writes ``charged`` right before each attempt goes on the wire and clears it when xAI
provably turned the attempt away. After a kill -9 the next start puts an uncharged submitting job back in line
and calls only a charged one uncertain, holding the concurrent slot xAI may still be using for it. Once with
the scheduler's own rig (the store as a kill leaves it), once with a real ``python bot.py`` killed by SIGKILL.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.jobs.models import ErrorCode, JobStatus
from services.scheduler.poll_policy import JobKind
from services.xai.bodies import SubmitRequest
from services.xai.budget import RequestBudget
from services.xai.client import XaiClient
from services.xai.gate import SubmitGate
from tests.botprocess import BotProcess, jobs_now
from tests.emulators.discord_emulator import DiscordEmulator
from tests.emulators.xai_emulator import XaiEmulator
from tests.scheduler_rig import SUBMIT, Rig, open_rig, text_request, unlimited_service, until, wait_for


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    async with open_rig(tmp_path) as rig:
        yield rig


async def _killed(rig: Rig) -> None:
    """What a kill -9 leaves: every task of the running scheduler gone, no further write."""
    scheduler = rig.schedulers.pop()
    for task in [scheduler._loop_task, *scheduler._tasks]:
        if task is not None:
            task.cancel()
    await asyncio.gather(*scheduler._tasks, return_exceptions=True)
    scheduler._stopping = True


async def test_a_crash_while_waiting_out_a_429_puts_the_job_back_in_line(rig: Rig) -> None:
    """xAI only ever answered 429; killed during the Retry-After, the restart sends it and it is delivered."""
    rig.xai.fail_requests("POST", SUBMIT, status=429, headers={"Retry-After": "30"})
    first = rig.scheduler()
    await first.start()
    job = (await unlimited_service(rig.store, first).accept(text_request())).job
    await until(lambda: rig.xai.submits())
    waiting = await wait_for(rig.store, job.id, lambda j: j.status is JobStatus.SUBMITTING and not j.charged)
    assert waiting.charged_at is None  # turned away: nothing is at xAI, and the store says so
    await _killed(rig)
    rig.budget = RequestBudget(6000)  # a fresh process: a fresh budget
    second = rig.scheduler()
    await second.start()
    ended = await rig.ended(job.id)
    assert ended.status is JobStatus.DELIVERED, f"{ended.error_code}: {ended.error_message}"
    assert [r.status for r in rig.xai.submits()] == [429, 200]


async def test_a_request_on_the_wire_is_charged_before_it_leaves(rig: Rig) -> None:
    """xAI holds the submit without answering: the store already says it may be there, and a crash now is
    called uncertain (never sent twice)."""
    rig.xai.fail_requests("POST", SUBMIT, hang_s=3)
    first = rig.scheduler()
    await first.start()
    job = (await unlimited_service(rig.store, first).accept(text_request())).job
    await until(lambda: rig.xai.submits())
    on_the_wire = await rig.store.jobs.get(job.id)
    assert on_the_wire is not None and on_the_wire.status is JobStatus.SUBMITTING and on_the_wire.charged
    assert on_the_wire.charged_at is not None
    await _killed(rig)
    second = rig.scheduler()
    await second.start()
    ended = await rig.ended(job.id)
    assert (ended.status, ended.error_code) == (JobStatus.FAILED, ErrorCode.SUBMIT_UNCERTAIN)
    assert ended.charged and len(rig.xai.submits()) == 1


async def test_a_request_of_unknown_fate_keeps_its_slot_while_xai_may_be_making_it(rig: Rig) -> None:
    """Killed while xAI was taking the submit, on an account that runs one video at a time: xAI has the job and
    nobody here can follow it. The next start holds its slot until nine in ten videos would be done (here about
    150 s, learnt), so the next job waits for that instead of being turned away by xAI's cap; then it goes."""
    rig.xai.max_concurrent = 1
    rig.xai.submit_delay_s = 30  # xAI has the job; its answer is still on the way when the kill comes
    first = rig.scheduler(max_concurrent=1)
    await first.start()
    lost = (await unlimited_service(rig.store, first).accept(text_request("lost"))).job
    await until(lambda: rig.xai.submits())
    await _killed(rig)
    rig.xai.submit_delay_s = 0
    offset = [0.0]
    second = rig.scheduler(max_concurrent=1, monotonic_clock=lambda: time.monotonic() + offset[0])
    second.policy.history.learn([(JobKind("any", "480p", 3, "text"), 100.0)] * 40)  # videos take about 100 s
    await second.start()
    assert (await rig.ended(lost.id)).error_code == ErrorCode.SUBMIT_UNCERTAIN
    assert second.generating == 1  # the lost job's slot, held
    waiting = (await unlimited_service(rig.store, second).accept(text_request("next"))).job
    for _ in range(20):  # the loop goes round; the slot stays held
        await asyncio.sleep(0.01)
    assert len(rig.xai.submits()) == 1 and second.waiting == 1
    offset[0] = 1000.0  # long past when the lost video would be done
    delivered = await rig.ended(waiting.id)
    assert delivered.status is JobStatus.DELIVERED
    assert len(rig.xai.submits()) == 2 and rig.xai.submits()[1].status == 200 and rig.xai.n429 == 0


async def test_a_request_of_unknown_fate_from_long_ago_holds_no_slot(rig: Rig) -> None:
    """The bot was away an hour after the crash: whatever xAI made is long done, so no slot is held."""
    job = await rig.store.jobs.create(text_request())
    await rig.store.jobs.transition(job.id, JobStatus.QUEUED, JobStatus.SUBMITTING, charged=True)
    later = rig.scheduler(max_concurrent=1, wall_clock=lambda: time.time() + 3600)
    await later.start()
    assert (await rig.ended(job.id)).error_code == ErrorCode.SUBMIT_UNCERTAIN
    assert later.generating == 0


async def _row(bot: BotProcess, predicate: object, timeout: float = 30) -> dict[str, object]:
    assert callable(predicate)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        rows = await jobs_now(bot.database_path)
        if rows and predicate(rows[-1]):
            return rows[-1]
        if loop.time() > deadline:
            raise AssertionError(f"the job never got there: {rows}\n{bot.all_logs()}")
        await asyncio.sleep(0.05)


async def test_kill_9_while_waiting_out_a_429_sends_the_job_after_the_restart(
    bot: BotProcess, discord_emu: DiscordEmulator, xai: XaiEmulator
) -> None:
    """The real bot, SIGKILLed while xAI's Retry-After runs: the next start sends it once more and posts it."""
    xai.fail_requests("POST", SUBMIT, status=429, headers={"Retry-After": "30"})
    await bot.start()
    await discord_emu.slash("video", {"prompt": "a kite over the dunes"})
    await discord_emu.wait_for(lambda: len(xai.submits()) == 1, 20)
    row = await _row(bot, lambda r: r["status"] == "submitting" and not r["charged"])
    await bot.kill()
    await bot.start()
    done = await _row(bot, lambda r: r["status"] == "delivered" or r["notified_at"])
    assert (done["status"], done["error_code"]) == ("delivered", None), bot.all_logs()
    assert [r.status for r in xai.submits()] == [429, 200]
    assert done["id"] == row["id"]


class _FrozenClient(XaiClient):
    """A client whose process freezes (SIGSTOP, a paused VM) after its job moved to "submitting", before the wire."""

    thaw = asyncio.Event()

    async def submit(self, request: SubmitRequest, *, gate: SubmitGate | None = None) -> str:
        await self.thaw.wait()
        return await super().submit(request, gate=gate)


async def test_a_leader_that_froze_and_came_back_does_not_send_a_job_another_took_over(rig: Rig) -> None:
    """The first scheduler moved the job to "submitting" and froze; the next leader put it back in line and sent
    it; when the first wakes, its send token no longer holds, so the job is sent once, not twice."""
    _FrozenClient.thaw = asyncio.Event()
    frozen = rig.scheduler(client_class=_FrozenClient)
    await frozen.start()
    job = (await unlimited_service(rig.store, frozen).accept(text_request())).job
    await wait_for(rig.store, job.id, lambda j: j.status is JobStatus.SUBMITTING)
    taking_over = rig.scheduler()
    await taking_over.start()  # resumes the uncharged "submitting" job as a restart does: back in line, sent
    delivered = await rig.ended(job.id)
    assert delivered.status is JobStatus.DELIVERED
    _FrozenClient.thaw.set()  # the frozen process goes on where it stopped
    await until(lambda: not frozen._admission._submitting)
    assert len(rig.xai.submits()) == 1
    assert (await rig.store.jobs.get(job.id)) == delivered  # and it left the job as the other process did


async def test_a_submit_whose_answer_never_came_keeps_its_slot_as_after_a_crash(rig: Rig) -> None:
    """xAI took the submit, but its answer did not come within the request timeout: the job ends saying the bot
    cannot tell whether xAI started it, the same unknown fate as a crash mid-submit. So its slot is held the same
    way (live, and again at the next start), and the next job waits for it instead of being turned away by
    xAI's cap on an account that runs one video at a time."""
    rig.xai.max_concurrent = 1
    rig.xai.submit_delay_s = 30  # xAI has the job; its answer comes long after the bot stopped waiting
    rig.xai.generation_s = 60  # and it is making it for a while
    offset = [0.0]
    first = rig.scheduler(max_concurrent=1, monotonic_clock=lambda: time.monotonic() + offset[0])
    first.policy.history.learn([(JobKind("any", "480p", 3, "text"), 100.0)] * 40)  # videos take about 100 s
    await first.start()
    lost = await rig.ended((await unlimited_service(rig.store, first).accept(text_request("lost"))).job.id)
    assert (lost.error_code, lost.charged) == (ErrorCode.XAI_UNAVAILABLE, True)
    assert "cannot tell whether xAI started the video" in (lost.error_message or "")
    rig.xai.submit_delay_s, rig.xai.generation_s = 0, 0.3
    assert first.generating == 1  # held while it runs
    waiting = (await unlimited_service(rig.store, first).accept(text_request("next"))).job
    for _ in range(20):
        await asyncio.sleep(0.01)
    assert len(rig.xai.submits()) == 1 and first.waiting == 1
    await first.stop(grace_s=0)
    second = rig.scheduler(max_concurrent=1, monotonic_clock=lambda: time.monotonic() + offset[0])
    second.policy.history.learn([(JobKind("any", "480p", 3, "text"), 100.0)] * 40)
    await second.start()
    assert second.generating == 1  # a later start remembers it from the store
    for made in rig.xai.jobs.values():
        made.generation_s = 0.0  # xAI has finished the lost video
    offset[0] = 1000.0  # and for the bot it is long past when it would be done
    delivered = await rig.ended(waiting.id)
    assert delivered.status is JobStatus.DELIVERED
    assert len(rig.xai.submits()) == 2 and rig.xai.n429 == 0
