"""Issue 12's polling policy on a fake clock: the job it picks, the slot it leaves for a submit, and (in a
seeded simulation, tests/poll_simulation.py) the request and detection-lag figures of the benchmark cases."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import pytest

from services.scheduler.poll_policy import (
    Decision,
    FixedInterval,
    GenerationHistory,
    JobEvidence,
    JobKind,
    LogNormal,
    PolicySettings,
    Poll,
    PollPolicy,
    RunningJob,
    Submit,
    Wait,
)
from services.xai.budget import SAFETY_MARGIN
from tests.poll_simulation import (
    BUDGET_BOUND,
    CONCURRENCY_BOUND,
    MIXED,
    SEEDS,
    Oracle,
    cold_policy,
    pooled_lags,
    quantile,
    simulate,
)

KIND = JobKind("grok-imagine-video", "480p", 6)
OTHER = JobKind("grok-imagine-video", "720p", 10)


def _learnt(mean_s: float = 6.0, cv: float = 0.4, n: int = 40, kind: JobKind = KIND) -> GenerationHistory:
    """A history of ``n`` jobs whose times follow the lognormal of this mean and spread."""
    history = GenerationHistory()
    sigma = math.sqrt(math.log(1 + cv**2))
    mu = math.log(mean_s) - sigma**2 / 2
    history.learn((kind, math.exp(mu + sigma * statistics.NormalDist().inv_cdf((i + 0.5) / n))) for i in range(n))
    return history


def _policy(history: GenerationHistory | None = None, **settings: Any) -> PollPolicy:
    return PollPolicy(history or _learnt(), PolicySettings(**settings))


def _decide(policy: PollPolicy, now: float, jobs: Sequence[RunningJob], **kw: float) -> Decision:
    args: dict[str, float] = {"waiting": 0, "free_concurrency": 0, "rate_per_s": 10.0} | kw
    return policy.decide(
        now,
        jobs,
        waiting=int(args["waiting"]),
        free_concurrency=int(args["free_concurrency"]),
        rate_per_s=args["rate_per_s"],
        slot_in_s=args.get("slot_in_s", 0.0),
    )


# -- the job it picks ----------------------------------------------------------------------------------


def test_a_job_past_its_predicted_moment_goes_before_one_just_submitted() -> None:
    policy = _policy()
    old = RunningJob(1, KIND, started=0.0, evidence=JobEvidence().pending(2.5, 41))  # says: done at about 6 s
    new = RunningJob(2, KIND, started=6.0)
    decision = _decide(policy, 6.3, [new, old])
    assert isinstance(decision, Poll) and decision.job_id == 1
    assert decision.chance_done > 0.9


def test_the_job_whose_progress_moved_to_nearly_done_is_picked() -> None:
    """Same age, same polls: one's progress moved to 90 %, the other's stayed at 50 % (which says nothing new)."""
    policy = _policy()
    moved = JobEvidence().pending(3.0, 50).pending(5.4, 90)
    stuck = JobEvidence().pending(3.0, 50).pending(5.4, 50)
    assert (moved.progress_at, stuck.progress_at) == (5.4, 3.0)  # a repeat does not refresh the estimate
    jobs = [RunningJob(1, KIND, 0.0, stuck), RunningJob(2, KIND, 0.0, moved)]
    assert policy.chance_done(jobs[1], 6.0) > policy.chance_done(jobs[0], 6.0)
    decision = _decide(policy, 6.0, jobs)
    assert isinstance(decision, Poll) and decision.job_id == 2


def test_a_job_polled_a_moment_ago_is_not_polled_again() -> None:
    policy = _policy()
    just = RunningJob(1, KIND, 0.0, JobEvidence().pending(2.5, 41).pending(9.9, None))  # overdue, polled at 9.9
    decision = _decide(policy, 10.0, [just])
    assert isinstance(decision, Wait) and decision.until == pytest.approx(9.9 + policy.settings.min_gap_s)
    other = RunningJob(2, KIND, 0.0, JobEvidence().pending(3.0, 40))
    decision = _decide(policy, 10.0, [just, other])
    assert isinstance(decision, Poll) and decision.job_id == 2


def test_nothing_worth_a_poll_means_a_wait_until_the_first_one_is() -> None:
    policy = _policy()
    job = RunningJob(1, KIND, started=0.0)
    decision = _decide(policy, 0.5, [job])
    assert isinstance(decision, Wait)
    threshold, afford = policy.threshold(1, 0, 10.0)
    assert decision.until == pytest.approx(policy.due_at(job, 0.5, threshold, afford))
    decision = _decide(policy, decision.until, [job])
    assert isinstance(decision, Poll) and decision.chance_done == pytest.approx(policy.settings.probe_at)


def test_a_resumed_job_is_polled_at_once() -> None:
    """Its age includes the downtime (xAI kept working): it may well be done, so it is asked first."""
    policy = _policy()
    resumed = RunningJob(1, KIND, started=-300.0, resumed=True)
    running = RunningJob(2, KIND, 0.0, JobEvidence().pending(2.5, 41))
    assert _decide(policy, 6.1, [running, resumed]) == Poll(1, 1.0)


def test_quiet_jobs_are_served_only_when_no_live_job_is_worth_a_poll() -> None:
    policy = _policy()
    quiet = RunningJob(1, KIND, 0.0, JobEvidence().pending(2.5, 41), quiet=True)  # far more likely done
    live = RunningJob(2, KIND, 0.0, JobEvidence().pending(3.0, 45))
    assert isinstance(d := _decide(policy, 6.5, [quiet, live]), Poll) and d.job_id == 2
    not_yet = replace(live, evidence=live.evidence.pending(6.5, 97))
    assert isinstance(d := _decide(policy, 6.5, [quiet, not_yet]), Poll) and d.job_id == 1


def test_in_flight_jobs_and_held_jobs_are_left_alone() -> None:
    policy = _policy()
    due = JobEvidence().pending(2.5, 41)
    assert isinstance(_decide(policy, 7.0, [RunningJob(1, KIND, 0.0, due, in_flight=True)]), Wait)
    assert _decide(policy, 7.0, [RunningJob(1, KIND, 0.0, due, not_before=9.0)]) == Wait(9.0)  # an error backoff


# -- the slot it leaves for a submit, and the spare slots ----------------------------------------------


def test_a_waiting_job_gets_the_slot_while_a_concurrent_slot_is_free() -> None:
    policy = _policy()
    due = RunningJob(1, KIND, 0.0, JobEvidence().pending(2.5, 41))
    assert _decide(policy, 6.5, [due], waiting=3, free_concurrency=1) == Submit()
    assert isinstance(_decide(policy, 6.5, [due], waiting=3, free_concurrency=0), Poll)  # no slot: the poll
    assert isinstance(_decide(policy, 6.5, [due], waiting=0, free_concurrency=5), Poll)  # nobody waits


def test_no_request_while_the_budget_has_no_slot() -> None:
    policy = _policy()
    decision = _decide(policy, 1.0, [], waiting=3, free_concurrency=1, slot_in_s=0.2)
    assert isinstance(decision, Wait) and decision.until == pytest.approx(1.2)


def test_a_spare_slot_goes_to_the_likeliest_job_unless_a_planned_poll_needs_it() -> None:
    """A scarce budget plans polls late (high θ); a slot no planned poll needs within one slot interval delays
    nothing, so a job likely enough done gets it rather than the slot going unused."""
    policy = _policy(_learnt(mean_s=6.0))
    rate = 0.25  # a slot every 4 s
    threshold, _ = policy.threshold(2, 0, rate)
    assert threshold == policy.settings.max_threshold
    likely = RunningJob(1, KIND, 0.0, JobEvidence().pending(2.0, 33))  # says: done at about 6 s
    assert policy.settings.spare_threshold < policy.chance_done(likely, 6.0) < threshold
    assert _decide(policy, 6.0, [likely], rate_per_s=rate) == Poll(1, policy.chance_done(likely, 6.0))
    planned_soon = RunningJob(2, KIND, 0.0, JobEvidence().pending(4.0, 66))
    soon = policy.due_at(planned_soon, 6.0, threshold, False)
    assert 6.0 < soon < 6.0 + 1 / rate  # due before the next slot would be free: this one waits for it
    assert _decide(policy, 6.0, [likely, planned_soon], rate_per_s=rate) == Wait(soon)


# -- starvation, deadlines, empty 202s -----------------------------------------------------------------


def test_a_job_at_its_max_interval_goes_before_likelier_ones_but_after_a_submit() -> None:
    """A job the belief calls hopeless (a ten-minute kind) is still asked every ``max_interval_s``."""
    history = _learnt(mean_s=6.0)
    history.learn([(OTHER, 600.0)] * 40)
    policy = _policy(history, max_interval_s=30.0)
    slow = RunningJob(1, OTHER, 0.0, JobEvidence().pending(1.0, None).pending(31.0, None))
    likely = RunningJob(2, KIND, 55.0, JobEvidence().pending(57.0, 33))  # says: ready at about 61 s
    assert policy.chance_done(slow, 61.0) < 0.01 < 0.5 < policy.chance_done(likely, 61.0)
    assert isinstance(d := _decide(policy, 60.9, [slow, likely]), Poll) and d.job_id == 2
    assert isinstance(d := _decide(policy, 61.0, [slow, likely]), Poll) and d.job_id == 1
    assert _decide(policy, 61.0, [slow, likely], waiting=1, free_concurrency=1) == Submit()


def test_one_poll_lands_on_the_deadline() -> None:
    policy = _policy(_learnt(mean_s=600.0, cv=0.1))
    job = RunningJob(1, KIND, 0.0, JobEvidence().pending(1.0, None), deadline=20.0)
    assert _decide(policy, 5.0, [job]) == Wait(20.0)


def test_an_empty_202_says_still_pending_and_nothing_else() -> None:
    evidence = JobEvidence().pending(2.5, 41).pending(5.0, None)
    assert (evidence.progress, evidence.progress_at, evidence.pending_at, evidence.polls) == (41, 2.5, 5.0, 2)
    policy = _policy()
    job = RunningJob(1, KIND, 0.0, evidence)
    assert policy.chance_done(job, 5.0) == 0.0  # it was pending a moment ago
    assert policy.belief(job) == policy.belief(RunningJob(1, KIND, 0.0, JobEvidence().pending(2.5, 41)))


def test_empty_answers_stop_the_probing_after_max_probes() -> None:
    policy = _policy(max_probes=2)
    threshold, afford = policy.threshold(15, 5, 10.0)
    assert afford
    fresh = RunningJob(1, KIND, 0.0)
    probe = policy.due_at(fresh, 0.0, threshold, afford)
    assert probe < 2.5  # early: the answer's progress is what makes the next poll land on the moment
    once = replace(fresh, evidence=fresh.evidence.pending(probe, None))
    again = policy.due_at(once, probe, threshold, afford)
    assert again < 3.0
    twice = replace(once, evidence=once.evidence.pending(again, None))
    assert policy.due_at(twice, again, threshold, afford) > 4.0  # no more probes: a poll at the threshold


def test_a_failed_poll_counts_for_the_gap_but_not_as_pending() -> None:
    evidence = JobEvidence().pending(2.0, 30).failed(4.0)
    assert (evidence.last_poll_at, evidence.pending_at, evidence.polls) == (4.0, 2.0, 2)


# -- the scarce budget ---------------------------------------------------------------------------------


def test_a_scarce_budget_polls_each_job_once_near_its_predicted_moment() -> None:
    """60 jobs at 5 requests/s with 3 s videos: no probes, and a job with a progress estimate is asked once,
    right after the moment it predicts."""
    policy = _policy(_learnt(mean_s=3.0))
    threshold, afford = policy.threshold(60, 0, 5.0)
    assert not afford and threshold == policy.settings.max_threshold
    fresh = RunningJob(1, KIND, 0.0)
    assert policy.due_at(fresh, 0.0, threshold, afford) > 3.0  # not probed: asked past the typical time
    told = RunningJob(1, KIND, 0.0, JobEvidence().pending(1.5, 49))  # says: ready at 3.03 s
    moment = policy.due_at(told, 1.5, threshold, afford)
    assert 3.03 < moment < 3.03 * 1.06


def test_a_free_budget_lowers_the_threshold_and_affords_probes() -> None:
    policy = _policy()
    threshold, afford = policy.threshold(15, 5, 10.0)
    assert threshold < 0.5 and afford
    assert policy.threshold(1, 0, 100.0)[0] == policy.settings.min_threshold


def test_a_wide_guess_is_probed_even_on_a_scarce_budget() -> None:
    """A fresh bot knows nothing but its prior: one early poll whose progress says how long this kind takes."""
    policy = PollPolicy(GenerationHistory(LogNormal.around(12.0, 0.7)))
    threshold, afford = policy.threshold(60, 0, 5.0)
    assert not afford
    assert policy.due_at(RunningJob(1, KIND, 0.0), 0.0, threshold, afford) < 3.0


# -- history -------------------------------------------------------------------------------------------


def test_history_is_per_kind_and_falls_back_to_all_kinds_then_to_the_prior() -> None:
    prior = LogNormal.around(60.0, 0.6)
    history = GenerationHistory(prior)
    assert history.belief(KIND) == prior
    history.learn([(KIND, 6.0)] * 30)
    assert history.belief(KIND).mean == pytest.approx(6.0, rel=0.3)
    assert history.belief(OTHER) == history.belief()  # nothing of its own yet: all kinds'
    history.learn([(OTHER, 20.0)] * 30)
    assert history.belief(OTHER).mean == pytest.approx(20.0, rel=0.3)
    assert history.belief(KIND).mean == pytest.approx(6.0, rel=0.3)
    one = GenerationHistory(prior)
    one.record(KIND, 6.0)
    assert 6.0 < math.exp(one.belief(KIND).mu) < 60.0  # one sample moves the guess, but does not set it


def test_history_is_bounded_and_keeps_the_newest() -> None:
    history = GenerationHistory(per_kind=5, overall=10)
    history.learn([(KIND, 100.0)] * 20 + [(KIND, 5.0)] * 5)
    assert history.samples(KIND) == 5 and history.samples() == 10
    assert math.exp(history.belief(KIND).mu) < 30.0
    history.record(KIND, -1.0)
    history.record(KIND, math.inf)
    assert history.samples(KIND) == 5


def test_what_a_finished_job_teaches() -> None:
    policy = _policy()
    told = RunningJob(1, KIND, 0.0, JobEvidence().pending(2.5, 41))
    assert policy.generation_time(told, 6.2) == pytest.approx(250 / 41.5)  # the progress estimate
    close = RunningJob(1, KIND, 0.0, JobEvidence().pending(5.0, None))
    assert 5.0 < (policy.generation_time(close, 5.5) or 0) < 5.5  # between "pending" and "done"
    early = policy.generation_time(RunningJob(1, KIND, 0.0), 2.0)  # done at an early first poll: shorter
    assert early is not None and early < 2.0
    assert policy.generation_time(RunningJob(1, KIND, 0.0), 30.0) is None  # behind a backlog: says nothing


def test_a_finished_job_is_learnt_unless_it_was_resumed() -> None:
    policy = PollPolicy(GenerationHistory())
    job = RunningJob(1, KIND, 0.0, JobEvidence().pending(2.5, 41))
    assert policy.finished(replace(job, resumed=True), 6.2) is not None
    assert policy.history.samples(KIND) == 0
    policy.finished(job, 6.2)
    assert policy.history.samples(KIND) == 1


# -- the simulated benchmark cases (tests/poll_simulation.py) ------------------------------------------


def test_simulated_concurrency_bound_case_notices_videos_within_the_targets() -> None:
    """15 at once, 600 requests/min, 6 s ± 40 %: lag p50 <= 5 %, p95 <= 15 % of the mean generation time, and
    no slower than the fixed poll nor more than 5 % behind a clairvoyant one."""
    s = CONCURRENCY_BOUND
    results = [simulate(cold_policy(s), s, seed) for seed in SEEDS]
    lags = pooled_lags(results, s)
    assert quantile(lags, 0.50) <= 0.05 and quantile(lags, 0.95) <= 0.15, (quantile(lags, 0.5), quantile(lags, 0.95))
    fixed = [simulate(FixedInterval(0.5), s, seed) for seed in SEEDS]
    oracle = [simulate(Oracle(s, seed), s, seed) for seed in SEEDS]
    for mine, theirs, best in zip(results, fixed, oracle, strict=True):
        assert mine.wall_s <= theirs.wall_s and mine.wall_s <= 1.05 * best.wall_s


def test_simulated_budget_bound_case_stays_at_about_one_poll_per_job() -> None:
    """60 at once, 300 requests/min, 3 s ± 40 %: at most 2.2 requests per job, the submit included."""
    s = BUDGET_BOUND
    results = [simulate(cold_policy(s), s, seed) for seed in SEEDS]
    assert all(r.requests_per_job <= 2.2 for r in results), [r.requests_per_job for r in results]
    assert all(r.wall_s / r.ideal_s <= 1.05 for r in results), [r.wall_s / r.ideal_s for r in results]


def test_simulated_mixed_case_spends_idle_slots_without_flooding() -> None:
    """Both limits bind: fewer requests than a fixed poll, and done sooner (on average over the seeds)."""
    s = MIXED
    mine = [simulate(cold_policy(s), s, seed) for seed in SEEDS]
    fixed = [simulate(FixedInterval(0.5), s, seed) for seed in SEEDS]
    assert sum(r.requests for r in mine) < sum(r.requests for r in fixed)
    assert sum(r.wall_s for r in mine) < sum(r.wall_s for r in fixed)


def test_simulated_starvation_bound_holds_when_the_belief_is_far_off() -> None:
    """No progress ever, and a prior of ten minutes for 6 s videos: every job is still asked every 30 s, late
    only by the slots that submits and other jobs at their bound took first."""
    s = replace(CONCURRENCY_BOUND, jobs=20, empty_share=1.0)
    policy = PollPolicy(GenerationHistory(LogNormal.around(600.0, 0.3)))
    result = simulate(policy, s, seed=1)
    assert len(result.lags) == 20
    assert 25.0 < result.max_gap_s <= policy.settings.max_interval_s + s.jobs * 60 / s.rpm * SAFETY_MARGIN
