"""When the scheduler polls: at the configured first poll until times are learnt, then when past jobs and the
reported progress say the video is likely ready; a failed poll is asked again after a doubling backoff.

(These pinned the old fixed cadence, ``PollCadence``; issue 12's policy took its place, so each expectation is
now asked of the policy: the first poll, the learnt first poll, the progress prediction, the error backoff.)
"""

from __future__ import annotations

import pytest

from services.scheduler.poll_policy import (
    GenerationHistory,
    JobEvidence,
    JobKind,
    PolicySettings,
    PollPolicy,
    RunningJob,
    first_poll_prior,
)
from services.scheduler.retrying import doubling

KIND = JobKind("grok-imagine-video", "480p", 6, "text")
SCARCE = (60, 0.5)  # 60 jobs running on 30 requests a minute: about one poll a job
FREE = (1, 100.0)


def _policy(first_poll_s: float = 2.0, history: list[float] | None = None, max_interval_s: float = 30.0) -> PollPolicy:
    polling = PolicySettings(max_interval_s=max_interval_s)
    policy = PollPolicy(GenerationHistory(first_poll_prior(first_poll_s, polling)), polling)
    policy.history.learn((KIND, seconds) for seconds in history or [])
    return policy


def _due(policy: PollPolicy, job: RunningJob, now: float, running: int, rate: float) -> float:
    threshold, afford_probe = policy.threshold(running, 0, rate)
    return policy.due_at(job, now, threshold, afford_probe)


def test_first_poll_uses_the_default_until_a_job_has_finished() -> None:
    """With no history the configured first delay is used, whatever the budget."""
    policy = _policy(first_poll_s=3.0)
    for running, rate in (FREE, SCARCE):
        assert _due(policy, RunningJob(1, KIND, started=0.0), 0.0, running, rate) == pytest.approx(3.0)


def test_first_poll_learns_typical_generation_times() -> None:
    """After a few jobs the first poll lands when videos are usually ready (on a budget of one poll a job)."""
    policy = _policy(history=[40, 42, 45, 44, 41], max_interval_s=60)
    assert 40 <= _due(policy, RunningJob(1, KIND, started=0.0), 0.0, *SCARCE) <= 45


def test_progress_predicts_the_next_poll() -> None:
    """Half done after 10 s means ready in about 10 s more."""
    policy = _policy(history=[40, 42, 45, 44, 41])
    told = RunningJob(1, KIND, started=0.0, evidence=JobEvidence().pending(10.0, 50))
    assert 20 <= _due(policy, told, 10.0, *SCARCE) <= 21


def test_failed_polls_back_off_up_to_the_cap() -> None:
    """A poll that fails is asked again after 2, 4, 8... seconds, never more than the cap."""
    delays = [doubling(2.0, failures, low_s=0.25, high_s=30.0) for failures in range(1, 7)]
    assert delays == [2, 4, 8, 16, 30, 30]
