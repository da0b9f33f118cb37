"""Which request the scheduler's next budget slot goes to: a submit, a poll of one job, or nothing yet.

Pure: plain dataclasses in, a decision out, time a number on the scheduler's monotonic clock. The budget's
token bucket stays the one authority on *whether* a request may go now; this module only says *which*.

A job's generation time T is believed lognormal, learnt per kind of job (``GenerationHistory``) and sharpened
by the last progress xAI reported. A poll is worth P, the chance the job finished since xAI last said
"pending". A poll made when P reaches θ finds the job done with chance θ, so it costs about 1/θ polls a job:
θ = 1/allowance spends what the budget affords (spare requests per running job per generation time). Scarce
budget, high θ: about one poll, at the predicted moment. Free budget, low θ: polls packed around the moment.
A slot no planned poll needs within one slot interval delays nothing, so it goes to the likeliest job if P is
at least ``spare_threshold``: a budget-bound bot never idles while finished videos hold concurrent slots. A
job without a progress estimate gets an early *probe* when the budget affords two polls a job (or the guess
is wide): the progress in its answer turns a ±40 % guess into a ±3 % one, and the next poll lands on time.
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

_SQRT2 = math.sqrt(2.0)
_NORMAL = statistics.NormalDist()
_TINY = 1e-300  # a survival below this: the belief says "certainly done by now"


@dataclass(frozen=True, slots=True)
class JobKind:
    """What makes generation times comparable: the same model, resolution, duration and mode."""

    model: str | None = None
    resolution: str | None = None
    duration_s: int | None = None
    mode: str | None = None  # text, image or edit (an edit's length is its input's)


@dataclass(frozen=True, slots=True)
class LogNormal:
    """A belief about a generation time: ln T ~ Normal(mu, sigma)."""

    mu: float
    sigma: float

    @classmethod
    def around(cls, median_s: float, sigma: float) -> LogNormal:
        return cls(math.log(median_s), sigma)

    @classmethod
    def with_share_below(cls, seconds: float, share: float, sigma: float) -> LogNormal:
        """The belief that a ``share`` of generations are done within ``seconds``."""
        return cls(math.log(seconds) - sigma * _NORMAL.inv_cdf(share), sigma)

    @property
    def mean(self) -> float:
        return math.exp(self.mu + self.sigma**2 / 2)

    def survival(self, seconds: float) -> float:
        """P(T > seconds), with erfc so it stays exact far into the tail, where an overdue job lives."""
        if seconds <= 0:
            return 1.0
        return 0.5 * math.erfc((math.log(seconds) - self.mu) / (self.sigma * _SQRT2))

    def time_at_survival(self, survival: float) -> float:
        """The t with P(T > t) = survival."""
        return math.exp(self.mu - self.sigma * _NORMAL.inv_cdf(min(max(survival, _TINY), 1 - 1e-15)))


class GenerationHistory:
    """Recent generation times per kind of job (bounded), and the belief they give for each kind.

    A kind with few samples leans on all kinds' belief, which leans on the prior (``weight`` pseudo-samples
    each): with little history the guess falls back smoothly instead of trusting two odd videos.
    """

    def __init__(
        self,
        prior: LogNormal | None = None,
        *,
        per_kind: int = 40,
        overall: int = 200,
        weight: float = 3.0,
        min_sigma: float = 0.05,
    ) -> None:
        self.prior = prior or LogNormal.around(60.0, 0.6)  # xAI: about a minute, give or take a lot
        self._per_kind = per_kind
        self._weight = weight
        self._min_sigma = min_sigma  # even identical samples never make the guess exact
        self._kinds: dict[JobKind, deque[float]] = {}
        self._all: deque[float] = deque(maxlen=overall)
        # Each kind's belief until the next record: the scheduler asks for it several times a job at every
        # slot, and recomputing it from 200 samples each time would hold the event loop for milliseconds.
        self._beliefs: dict[JobKind | None, LogNormal] = {}

    def record(self, kind: JobKind, seconds: float) -> None:
        """A job of this kind took this long at xAI (as ``PollPolicy.generation_time`` judged it)."""
        if not (0 < seconds < math.inf):
            return
        self._kinds.setdefault(kind, deque(maxlen=self._per_kind)).append(math.log(seconds))
        self._all.append(math.log(seconds))
        self._beliefs.clear()

    def learn(self, rows: Iterable[tuple[JobKind, float]]) -> None:
        """Start from the store's recent (kind, seconds) rows, oldest first (the newest are kept)."""
        for kind, seconds in rows:
            self.record(kind, seconds)

    def samples(self, kind: JobKind | None = None) -> int:
        return len(self._all if kind is None else self._kinds.get(kind, ()))

    def belief(self, kind: JobKind | None = None) -> LogNormal:
        """This kind's belief (None: all kinds'), falling back to all kinds, then to the prior."""
        known = self._beliefs.get(kind)
        if known is None:
            overall = self._shrunk(self._all, self.prior)
            samples = self._kinds.get(kind) if kind is not None else None
            known = self._beliefs[kind] = self._shrunk(samples, overall) if samples else overall
        return known

    def _shrunk(self, logs: Iterable[float] | None, toward: LogNormal) -> LogNormal:
        values = list(logs or ())
        if not values:
            return toward
        if len(values) >= 5:  # one absurd time (a ten-hour job) must not widen every later job's guess five-fold
            middle = statistics.median(values)
            reach = 4 * 1.4826 * statistics.median(abs(x - middle) for x in values)  # four robust sds
            if reach > 0:
                values = [min(middle + reach, max(middle - reach, x)) for x in values]
        n, w = len(values), self._weight
        mean = math.fsum(values) / n
        spread = math.fsum((x - mean) ** 2 for x in values)
        sigma = math.sqrt((spread + w * toward.sigma**2) / (n + w))
        return LogNormal((n * mean + w * toward.mu) / (n + w), max(self._min_sigma, sigma))


@dataclass(frozen=True, slots=True)
class JobEvidence:
    """What xAI's answers told about one job. Times are clock times; the scheduler keeps one per tracked job."""

    last_poll_at: float | None = None  # when the last poll (any answer) was sent: the minimum gap runs from it
    pending_at: float | None = None  # when the latest poll that found it pending was sent: T is past this
    progress: int | None = None  # the last progress that moved, 1..99
    progress_at: float | None = None  # when that value was first reported (a repeat says nothing new)
    polls: int = 0

    def pending(self, at: float, progress: int | None) -> JobEvidence:
        """A poll sent at ``at`` found the job pending, with this progress. None is an empty 202: still pending,
        no news (the older progress estimate stands). So is a progress *below* the last one: a glitch read as
        fact put the end of a video at 50 % after 30 s at 2000 s, and left it unasked but for ``max_interval_s``
        (should xAI really have started over, the older estimate is outlived soon and dropped for the kind's)."""
        moved = progress is not None and 0 < progress < 100 and progress > (self.progress or 0)
        return replace(
            self,
            last_poll_at=at,
            pending_at=at if self.pending_at is None else max(self.pending_at, at),
            progress=progress if moved else self.progress,
            progress_at=at if moved else self.progress_at,
            polls=self.polls + 1,
        )

    def failed(self, at: float) -> JobEvidence:
        """A poll sent at ``at`` got no answer about the job: it counts for the gap, says nothing of T."""
        return replace(self, last_poll_at=at, polls=self.polls + 1)


@dataclass(frozen=True, slots=True)
class RunningJob:
    """A job xAI has, as the policy sees it."""

    job_id: int
    kind: JobKind
    started: float  # when xAI got it (for a resumed job: from the stored wall-clock submit time)
    evidence: JobEvidence = JobEvidence()
    quiet: bool = False  # cancelled while generating: polled only when no live job is worth a poll
    in_flight: bool = False
    resumed: bool = False  # picked up after a restart: polled at once (it may well be done)
    deadline: float | None = None  # one poll lands on it, so a job past it is ended by a poll
    not_before: float = -math.inf  # the scheduler's own hold (an error backoff)


@dataclass(frozen=True, slots=True)
class Submit:
    """Send the next waiting job."""


@dataclass(frozen=True, slots=True)
class Poll:
    job_id: int
    chance_done: float  # for logs and tests


@dataclass(frozen=True, slots=True)
class Wait:
    until: float  # nothing is worth a request before this (unless something changes: wake up then)


Decision = Submit | Poll | Wait
_NONE = ((False, False, -1.0, -math.inf), -1)  # a pick: (starving, live, chance done, -due), job id


@dataclass(frozen=True, slots=True)
class PolicySettings:
    min_gap_s: float = 0.25  # never poll one job twice within this...
    min_gap_share: float = 0.03  # ...or this share of its kind's mean generation time, whichever is longer
    max_interval_s: float = 30.0  # every job is polled this often, late only by slots others took first
    probe_at: float = 0.005  # a probe goes when P reaches this: early, yet late enough for a telling progress
    max_probes: int = 2  # empty answers stop the probing after this many polls
    wide_sigma: float = 0.6  # a guess this wide is worth a probe even on a scarce budget
    progress_error: float = 0.05  # how far xAI's progress may stray from linear (log-sd, shrinks to 0 at 100)
    # A job still pending where its progress left less than this chance of it running has outlived that progress
    # (stuck at 99, or not linear): the estimate is dropped for the kind's, or the job would be polled every gap.
    outlived: float = 1e-3
    min_threshold: float = 0.01
    max_threshold: float = 0.8
    spare_threshold: float = 0.25  # a slot nothing planned needs goes to a job at least this likely done
    idle_s: float = 60.0  # the wait when nothing is tracked


def first_poll_prior(first_poll_s: float, settings: PolicySettings) -> LogNormal:
    """What a fresh bot believes (``XAI_FIRST_POLL_SECONDS``): the belief wide enough to be probed on any budget,
    whose probe lands ``first_poll_s`` after a submit. The first progress xAI reports then replaces the guess."""
    return LogNormal.with_share_below(first_poll_s, settings.probe_at, settings.wide_sigma)


class PollPolicy:
    """Answers, each time a request slot is free, what to spend it on. Holds only the history."""

    def __init__(self, history: GenerationHistory | None = None, settings: PolicySettings | None = None) -> None:
        self.history = history or GenerationHistory()
        self.settings = settings or PolicySettings()

    def decide(
        self,
        now: float,
        jobs: Sequence[RunningJob],
        *,
        waiting: int,
        free_concurrency: int,
        rate_per_s: float,
        slot_in_s: float = 0.0,
    ) -> Decision:
        """A submit if a job waits and a concurrent slot is free, else ``choose``. Submits go first even before a
        job at its ``max_interval_s`` bound: they only take slots while a concurrent slot is free, a bounded
        stretch (``max_concurrent`` slots) while xAI takes them. Not when its submits fail at once (out of credit,
        every prompt refused): each frees its slot for the next, so a job unasked for twice ``max_interval_s``
        goes first."""
        if slot_in_s > 0:
            return Wait(now + slot_in_s)
        if waiting > 0 and free_concurrency > 0:
            overdue = [
                (self._starving_at(job), job.job_id)
                for job in jobs
                if not job.in_flight
                and now >= max(job.not_before, self._starving_at(job) + self.settings.max_interval_s)
            ]
            if overdue:
                job_id = min(overdue)[1]
                return Poll(job_id, self.chance_done(next(j for j in jobs if j.job_id == job_id), now))
            return Submit()
        return self.choose(now, jobs, waiting=waiting, rate_per_s=rate_per_s)

    def choose(self, now: float, jobs: Sequence[RunningJob], *, waiting: int, rate_per_s: float) -> Poll | Wait:
        """The slot no submit takes: the planned poll (a job at its ``max_interval_s`` bound first, live before
        quiet, then the likeliest done), else a spare one; else the time something will be worth a request."""
        threshold, afford_probe = self.threshold(len(jobs), waiting, rate_per_s)
        spare_level = min(threshold, self.settings.spare_threshold)
        planned = spare = _NONE
        next_planned = next_spare = now + self.settings.idle_s
        for job in jobs:
            if job.in_flight:
                continue
            planned_due = self.due_at(job, now, threshold, afford_probe)
            spare_due = self.due_at(job, now, spare_level, afford_probe)  # never later: a lower level
            if planned_due > now:
                next_planned = min(next_planned, planned_due)
            if spare_due > now:
                next_spare = min(next_spare, spare_due)
                continue
            pick = ((now >= self._starving_at(job), not job.quiet, self.chance_done(job, now), -spare_due), job.job_id)
            spare = max(spare, pick)
            planned = max(planned, pick) if planned_due <= now else planned
        if planned is not _NONE:
            return Poll(planned[1], planned[0][2])
        # A slot no planned poll needs before the next one frees up delays nothing: the likeliest job gets it.
        if spare is not _NONE and next_planned >= now + 1.0 / max(rate_per_s, 1e-9):
            return Poll(spare[1], spare[0][2])
        return Wait(min(next_planned, next_spare))

    def threshold(self, running: int, waiting: int, rate_per_s: float) -> tuple[float, bool]:
        """The chance a poll must reach to be worth a slot, and whether the budget affords probes.

        allowance = requests the budget gives each running job per mean generation time, less the submit
        that follows each one while jobs wait. θ = 1/allowance spends it (a poll at θ succeeds with chance θ).
        """
        allowance = rate_per_s * self.history.belief().mean / max(1, running) - (1.0 if waiting > 0 else 0.0)
        theta = 1.0 / allowance if allowance > 0 else 1.0
        return min(self.settings.max_threshold, max(self.settings.min_threshold, theta)), allowance >= 2.0

    def belief(self, job: RunningJob) -> LogNormal:
        """The kind's belief, sharpened by the last progress that moved (precision-weighted in log space).

        Progress p first seen at elapsed e says T ~ 100 e / (p + 0.5): integer progress is within one point,
        and real progress may not be linear, an error that shrinks as the job nears 100 %.
        """
        base = self.history.belief(job.kind)
        ev = job.evidence
        if ev.progress is None or ev.progress_at is None or ev.progress_at <= job.started:
            return base
        p = ev.progress
        mu_p = math.log(100 * (ev.progress_at - job.started) / (p + 0.5))
        var_p = (1 / (p + 0.5)) ** 2 / 12 + (self.settings.progress_error * (1 - p / 100)) ** 2
        w_base, w_p = 1 / base.sigma**2, 1 / var_p
        sharp = LogNormal((w_base * base.mu + w_p * mu_p) / (w_base + w_p), math.sqrt(1 / (w_base + w_p)))
        # Outlived (xAI still says pending well past where the progress put the end): it no longer tells T.
        return base if sharp.survival(self._pending_s(job)) < self.settings.outlived else sharp

    def chance_done(self, job: RunningJob, now: float) -> float:
        """P(the job finished since xAI last said it was pending)."""
        if job.resumed and job.evidence.last_poll_at is None:
            return 1.0
        belief = self.belief(job)
        last = belief.survival(self._pending_s(job))
        return 1.0 if last < _TINY else max(0.0, 1.0 - belief.survival(now - job.started) / last)

    def due_at(self, job: RunningJob, now: float, threshold: float, afford_probe: bool) -> float:
        """When the job is worth a poll: P reaches θ (or the probe's level), within the gap and the bounds."""
        ev = job.evidence
        # The gap never outgrows the starvation bound (a long prior, say XAI_FIRST_POLL_SECONDS=600, made it 100 s)
        gap = min(
            self.settings.max_interval_s,
            max(self.settings.min_gap_s, self.settings.min_gap_share * self.history.belief(job.kind).mean),
        )
        earliest = max(job.not_before, -math.inf if ev.last_poll_at is None else ev.last_poll_at + gap)
        if job.resumed and ev.last_poll_at is None:
            return max(earliest, now)
        latest = self._starving_at(job)
        if job.deadline is not None and (ev.last_poll_at is None or ev.last_poll_at < job.deadline):
            latest = min(latest, job.deadline)
        belief = self.belief(job)
        probe = ev.progress is None and ev.polls < self.settings.max_probes
        probe = probe and (afford_probe or belief.sigma >= self.settings.wide_sigma)
        level = min(self.settings.probe_at, threshold) if probe else threshold
        target = (1 - level) * belief.survival(self._pending_s(job))
        moment = now if target < _TINY else job.started + belief.time_at_survival(target)
        return max(earliest, min(latest, moment))

    def finished(self, job: RunningJob, done_at: float) -> float | None:
        """A poll sent at ``done_at`` found the video ready: learn its generation time (unless resumed), return it."""
        seconds = self.generation_time(job, done_at)
        if seconds is not None and not job.resumed:
            self.history.record(job.kind, seconds)
        return seconds

    def generation_time(self, job: RunningJob, done_at: float) -> float | None:
        """T within what the answers bound it to (past the last "pending", before the "done"): the progress
        estimate, else the kind's median within the bounds. A job found done by an early first poll was *shorter*
        than that: dropping it would teach that videos take longer and vary less than they do. Bounds spanning
        most of the belief (a first poll late behind a backlog) teach nothing: None, never recorded as T."""
        ev, low, high = job.evidence, self._pending_s(job), max(0.0, done_at - job.started)
        if ev.progress is not None and ev.progress_at is not None and ev.progress_at > job.started:
            return min(high, max(low, 100 * (ev.progress_at - job.started) / (ev.progress + 0.5)))
        belief = self.history.belief(job.kind)
        above, beyond = belief.survival(low), belief.survival(high)
        if high <= low or above - beyond > 0.8:
            return None
        return min(high, max(low, belief.time_at_survival((above + beyond) / 2)))

    def _starving_at(self, job: RunningJob) -> float:
        last = job.evidence.last_poll_at
        return (job.started if last is None else last) + self.settings.max_interval_s

    @staticmethod
    def _pending_s(job: RunningJob) -> float:
        at = job.evidence.pending_at
        return 0.0 if at is None else max(0.0, at - job.started)


class FixedInterval(PollPolicy):
    """The official SDKs' way, to measure the policy against (bench/scheduler.py ``--poller fixed``, the tests'
    simulation): submits first, then each job every ``every_s`` after its last poll (after its submit for the
    first; a resumed job at once, a job held back by a failed poll when its hold ends), oldest due first."""

    def __init__(self, every_s: float) -> None:
        super().__init__()
        self.every_s = every_s

    def choose(self, now: float, jobs: Sequence[RunningJob], *, waiting: int, rate_per_s: float) -> Poll | Wait:
        due: list[tuple[float, int]] = []
        for job in jobs:
            if job.in_flight:
                continue
            last = job.evidence.last_poll_at
            at = now if job.resumed and last is None else (job.started if last is None else last) + self.every_s
            due.append((max(at, job.not_before), job.job_id))
        if not due:
            return Wait(now + self.settings.idle_s)
        at, job_id = min(due)
        return Poll(job_id, 0.0) if at <= now else Wait(at)
