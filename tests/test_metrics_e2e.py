"""``/metrics`` of the real bot: the figures move with the jobs (queued, generating, delivered, cost, retries)."""

from __future__ import annotations

from services.jobs.models import USD_TICKS_PER_DOLLAR, JobStatus
from tests.emulators.xai_emulator import Outcome
from tests.harness import BotRig
from tests.observe_pages import metrics, pages

COST_TICKS = 3 * USD_TICKS_PER_DOLLAR // 4  # $0.75, as xAI reports it


def _jobs(found: dict[tuple[str, tuple[tuple[str, str], ...]], float], status: str, ending: str = "") -> float:
    return found.get(("grokbot_jobs", (("ending", ending), ("status", status))), 0.0)


async def test_metrics_follow_jobs_from_the_line_to_delivered(rig: BotRig) -> None:
    """One slot at xAI: the first job holds it (xAI never finishes it, so it times out), the second waits in line,
    then is made and delivered; the page shows each stage, xAI's reported cost, and the 429 it answered once."""
    rig.xai.outcomes.extend([Outcome(kind="never"), Outcome(cost_usd_ticks=COST_TICKS)])
    rig.xai.fail_requests("GET", r"^/v1/videos/", status=429, times=1, headers={"Retry-After": "0"})
    emu = rig.discord
    async with rig.running(XAI_MAX_CONCURRENT_JOBS="1", XAI_JOB_TIMEOUT_SECONDS="5") as bot, pages(bot) as base:
        before = await metrics(base)
        assert not [key for key in before if key[0] == "grokbot_jobs"]
        assert before[("grokbot_xai_cost_usd_total", ())] == 0
        await emu.slash("video", {"prompt": "a lighthouse in fog"})
        first = await rig.wait_for_job(lambda job: job.status is JobStatus.RUNNING)
        await emu.slash("video", {"prompt": "a paper boat on a rainy street"})
        second = await rig.wait_for_job(lambda job: job.id != first.id and job.status is JobStatus.QUEUED)
        await emu.wait_for(lambda: bot.runtime.scheduler.queue_position(second.id) is not None)  # in line, stored
        waiting = await metrics(base)
        assert waiting[("grokbot_queue_length", ())] == 1
        assert waiting[("grokbot_jobs_generating", ())] == 1
        assert _jobs(waiting, "queued") == 1 and _jobs(waiting, "running") == 1
        delivered = await rig.wait_until_terminal(second.id)
        done = await metrics(base)
    assert delivered.status is JobStatus.DELIVERED
    assert _jobs(done, "delivered") == 1 and _jobs(done, "failed", "timeout") == 1
    assert _jobs(done, "queued") == 0 and _jobs(done, "running") == 0
    assert done[("grokbot_queue_length", ())] == 0 and done[("grokbot_jobs_generating", ())] == 0
    assert done[("grokbot_xai_cost_usd_total", ())] == 0.75
    assert done[("grokbot_xai_429_total", ())] == 1
    polls_and_submits = sum(1 for r in rig.xai.requests if r.path.startswith("/v1/videos"))
    assert done[("grokbot_budget_slots_granted_total", ())] == polls_and_submits
    assert done[("grokbot_poll_detection_lag_seconds_count", ())] == 1
    assert done[("grokbot_poll_detection_lag_seconds_sum", ())] >= 0
    assert done[("grokbot_delivery_retries_total", ())] == 0 and done[("grokbot_delivery_failures_total", ())] == 0
    assert done[("grokbot_up", ())] == 1


async def test_a_failed_post_counts_as_a_delivery_failure_and_its_retry(rig: BotRig) -> None:
    """Discord refusing the upload once (the scheduler tries again 2 s later): one failed try, one retry, and the
    video still delivered."""
    emu = rig.discord
    async with rig.running() as bot, pages(bot) as base:
        emu.fail_next("POST", r"/channels/\d+/messages$", 400, code=50035, message="Invalid Form Body")
        await emu.slash("video", {"prompt": "a red fox running through snow"})
        job = await rig.wait_until_terminal(timeout=60)
        found = await metrics(base)
    assert job.status is JobStatus.DELIVERED, job
    assert found[("grokbot_delivery_failures_total", ())] >= 1
    assert found[("grokbot_delivery_retries_total", ())] >= 1
    assert _jobs(found, "delivered") == 1
