"""A request of unknown fate keeps its concurrent slot across a change of leader (or a second restart).

The slot lives in the scheduler's memory, but the job has ended "uncertain" in the store: a new leader (or a
scheduler started again for a new term, or after a second crash) resumes nothing for it, and would admit a job
into a slot xAI may still be using. The store says when the request went out, so every start holds it again.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.jobs.models import ErrorCode, JobStatus
from services.scheduler.poll_policy import JobKind
from tests.scheduler_rig import Rig, open_rig, text_request

VIDEO_S = [(JobKind("any", "480p", 3, "text"), 100.0)] * 40  # videos of this kind take about 100 s


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    async with open_rig(tmp_path) as rig:
        yield rig


async def _uncertain_job(rig: Rig, *, sent_ago_s: float) -> int:
    """A job charged and being sent when the last leader died, ``sent_ago_s`` ago."""
    job = await rig.store.jobs.create(text_request())
    await rig.store.jobs.transition(job.id, JobStatus.QUEUED, JobStatus.SUBMITTING, charged=True)
    await rig.store.database.execute("UPDATE jobs SET charged_at = ? WHERE id = ?", (time.time() - sent_ago_s, job.id))
    return job.id


async def test_the_next_leader_still_holds_the_slot_of_a_request_of_unknown_fate(rig: Rig) -> None:
    job_id = await _uncertain_job(rig, sent_ago_s=5)
    first = rig.scheduler(max_concurrent=1)
    first.policy.history.learn(VIDEO_S)
    await first.start()
    assert (await rig.ended(job_id)).error_code == ErrorCode.SUBMIT_UNCERTAIN and first.generating == 1
    await first.stop(grace_s=0)  # its term ends (deposed, or killed a moment later)
    await first.start()  # the same process elected again: a new term starts as a restart does
    assert first.generating == 1
    await first.stop(grace_s=0)
    second = rig.scheduler(max_concurrent=1)  # another process takes over
    second.policy.history.learn(VIDEO_S)
    await second.start()
    assert second.generating == 1


async def test_a_request_of_unknown_fate_past_its_likely_end_holds_nothing_at_the_next_start(rig: Rig) -> None:
    job_id = await _uncertain_job(rig, sent_ago_s=5)
    first = rig.scheduler(max_concurrent=1)
    first.policy.history.learn(VIDEO_S)
    await first.start()
    assert (await rig.ended(job_id)).error_code == ErrorCode.SUBMIT_UNCERTAIN
    await first.stop(grace_s=0)
    later = rig.scheduler(max_concurrent=1, wall_clock=lambda: time.time() + 3600)
    later.policy.history.learn(VIDEO_S)
    await later.start()
    assert later.generating == 0
