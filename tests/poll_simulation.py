"""A small seeded discrete-event simulation of issue 12's benchmark cases, for the polling policy's tests.

Jobs go through a fake xAI on a fake clock, so the figures take seconds, not minutes, and repeat exactly:
``python -m tests.poll_simulation`` prints the table of the policy, the fixed 0.5 s poll and a clairvoyant
oracle in each case. bench/scheduler.py measures the same cases through the real scheduler and emulator.
"""

from __future__ import annotations

import heapq
import math
import random
import statistics
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from services.scheduler.poll_policy import (
    FixedInterval,
    GenerationHistory,
    JobKind,
    LogNormal,
    Poll,
    PollPolicy,
    RunningJob,
    Submit,
    Wait,
)
from services.xai.budget import SAFETY_MARGIN

KIND = JobKind("grok-imagine-video", "480p", 6)


@dataclass(frozen=True, slots=True)
class Scenario:
    jobs: int
    concurrency: int
    rpm: float
    mean_s: float
    cv: float = 0.4
    empty_share: float = 0.3  # pending answers without a body
    latency_s: float = 0.02  # each request's round trip


CONCURRENCY_BOUND = Scenario(jobs=60, concurrency=15, rpm=600, mean_s=6.0)
BUDGET_BOUND = Scenario(jobs=60, concurrency=60, rpm=300, mean_s=3.0)


@dataclass
class SimResult:
    wall_s: float
    ideal_s: float
    requests: int
    lags: list[float] = field(default_factory=list)
    max_gap_s: float = 0.0

    @property
    def requests_per_job(self) -> float:
        return self.requests / len(self.lags)


def _last_asked(job: RunningJob) -> float:
    return job.started if job.evidence.last_poll_at is None else job.evidence.last_poll_at


class Oracle(PollPolicy):
    """What no policy can beat: it knows each generation time, and polls once, right when the video is ready."""

    def __init__(self, s: Scenario, seed: int) -> None:
        super().__init__()
        self.gen = _generation_times(s, random.Random(seed))
        self.latency_s = s.latency_s

    def choose(self, now: float, jobs: Sequence[RunningJob], *, waiting: int, rate_per_s: float) -> Poll | Wait:
        # xAI looks halfway through a request's round trip; the job's clock starts when the submit's answer is back
        due = {j.job_id: j.started + self.gen[j.job_id] - self.latency_s for j in jobs if not j.in_flight}
        first = min(due, key=due.__getitem__, default=None)
        if first is not None and due[first] <= now + 1e-9:
            return Poll(first, 1.0)
        return Wait(max(due[first], now + 1e-9) if first is not None else now + 60)


def _generation_times(s: Scenario, rng: random.Random) -> list[float]:
    sigma = math.sqrt(math.log(1 + s.cv**2))
    return [rng.lognormvariate(math.log(s.mean_s) - sigma**2 / 2, sigma) for _ in range(s.jobs)]


def simulate(policy: PollPolicy, s: Scenario, seed: int) -> SimResult:
    """Jobs through a fake xAI: evenly spaced budget slots (as services/xai/budget.py), at most ``concurrency``
    generating, lognormal generation times, progress as the emulator reports it (linear, whole percents),
    a share of pending answers empty. Answers arrive ``latency_s`` after the request; xAI looks halfway."""
    rng = random.Random(seed)
    gen = _generation_times(s, rng)
    interval = 60.0 / s.rpm * SAFETY_MARGIN
    queue = deque(range(s.jobs))
    xai_start: dict[int, float] = {}
    tracked: dict[int, RunningJob] = {}
    answers: list[tuple[float, int, str, float]] = []  # (arrives, job, "submit"/"poll", sent)
    now = next_slot = 0.0
    submitting = requests = 0
    result = SimResult(0.0, 0.0, 0)
    while queue or tracked or answers:
        while answers and answers[0][0] <= now:
            arrives, job_id, what, sent = heapq.heappop(answers)
            looked = sent + s.latency_s / 2
            if what == "submit":
                submitting -= 1
                xai_start[job_id] = looked
                tracked[job_id] = RunningJob(job_id, KIND, started=arrives)
                continue
            job = tracked[job_id]
            result.max_gap_s = max(result.max_gap_s, sent - _last_asked(job))
            if looked >= xai_start[job_id] + gen[job_id]:
                del tracked[job_id]
                result.lags.append(arrives - (xai_start[job_id] + gen[job_id]))
                result.wall_s = arrives
                policy.finished(job, sent)
                continue
            progress = min(99, int(100 * (looked - xai_start[job_id]) / gen[job_id]))
            empty = rng.random() < s.empty_share
            evidence = job.evidence.pending(sent, None if empty else progress)
            tracked[job_id] = replace(job, evidence=evidence, in_flight=False)
        decision = policy.decide(
            now,
            list(tracked.values()),
            waiting=len(queue),
            free_concurrency=s.concurrency - len(tracked) - submitting,
            rate_per_s=1.0 / interval,
            slot_in_s=max(0.0, next_slot - now),
        )
        if isinstance(decision, Wait):
            assert decision.until > now, decision
            now = min(decision.until, answers[0][0]) if answers else decision.until
            continue
        requests += 1
        next_slot = now + interval
        if isinstance(decision, Submit):
            submitting += 1
            heapq.heappush(answers, (now + s.latency_s, queue.popleft(), "submit", now))
        else:
            tracked[decision.job_id] = replace(tracked[decision.job_id], in_flight=True)
            heapq.heappush(answers, (now + s.latency_s, decision.job_id, "poll", now))
    result.requests = requests
    result.ideal_s = max(2 * s.jobs * interval, math.ceil(s.jobs / s.concurrency) * s.mean_s)
    return result


SEEDS = range(8)
MIXED = Scenario(jobs=60, concurrency=15, rpm=180, mean_s=6.0)  # both limits bind: neither benchmark case


def cold_policy(s: Scenario) -> PollPolicy:
    """A fresh bot: no history, a prior twice too long and wide (the benches scale xAI's minute down)."""
    return PollPolicy(GenerationHistory(LogNormal.around(2 * s.mean_s, 0.6)))


def pooled_lags(results: list[SimResult], s: Scenario) -> list[float]:
    return sorted(lag / s.mean_s for r in results for lag in r.lags)


def quantile(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, max(0, math.ceil(q * len(values)) - 1))]


def poller(label: str, s: Scenario, seed: int) -> PollPolicy:
    return cold_policy(s) if label == "policy" else FixedInterval(0.5) if label.startswith("fixed") else Oracle(s, seed)


def figures() -> list[dict[str, object]]:
    """The table in the policy report: ``python -m tests.poll_simulation``."""
    rows: list[dict[str, object]] = []
    for name, s in (("concurrency-bound", CONCURRENCY_BOUND), ("budget-bound", BUDGET_BOUND), ("mixed", MIXED)):
        for label in ("policy", "fixed 0.5 s", "oracle"):
            results = [simulate(poller(label, s, seed), s, seed) for seed in SEEDS]
            lags = pooled_lags(results, s)
            rows.append(
                {
                    "scenario": name,
                    "poller": label,
                    "wall_over_ideal": round(statistics.mean(r.wall_s / r.ideal_s for r in results), 3),
                    "requests_per_job": round(statistics.mean(r.requests_per_job for r in results), 2),
                    "lag_p50": round(quantile(lags, 0.5), 3),
                    "lag_p95": round(quantile(lags, 0.95), 3),
                }
            )
    return rows


if __name__ == "__main__":
    for row in figures():
        print(row)
