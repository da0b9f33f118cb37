"""Following the jobs xAI has: one poll at a time, what each answer means, deadlines, and letting go.

Which job a free request slot polls is the policy's choice (``poll_policy.py``); each answer is written into the
job's evidence (the time its poll was sent, the progress only when it moved, an empty 202 as "pending, no
news"), and a finished job's generation time is learnt and stored with it, so a restart knows it too.

A job is only ever ended by a poll made after its deadline that finds it still pending (or still failing):
never on age alone, and a poll that fails is asked again (polls are idempotent). A job's age is kept on the
monotonic clock, taken from the stored, wall-clock ``submitted_at`` when it is resumed. A job cancelled once
xAI has it stays tracked, quietly (``polltable.py``): it keeps its concurrent slot, nothing of it is fetched,
and it is let go (with the cost xAI reports) once xAI is done with it. A finished video goes to the
after-work (``aftercare.py``) in a task of its own.
"""

from __future__ import annotations

import logging
import math
from collections import deque

from services.jobs import endings
from services.jobs.models import CancelResult, Job, JobStatus
from services.scheduler.aftercare import Aftercare
from services.scheduler.context import Context
from services.scheduler.poll_policy import JobKind, PollPolicy, RunningJob
from services.scheduler.polltable import PollTable, Tracked, job_kind
from services.scheduler.retrying import doubling
from services.scheduler.steps import AT_XAI
from services.store.patience import patiently
from services.xai.answers import Done, Expired, Failed, Moderated, Pending, PollResult
from services.xai.catalog import CLASSIC
from services.xai.errors import XaiError, XaiRateLimited

log = logging.getLogger(__name__)


class DetectionLags:
    """How late finished videos were noticed, at most: from the last poll that found each pending to the poll
    that found it done (xAI says nothing of when it finished). Plain numbers, read by /metrics at scrape time."""

    def __init__(self, keep: int = 1000) -> None:
        self.count = 0
        self.sum_s = 0.0
        self.recent_s: deque[float] = deque(maxlen=keep)  # for quantiles of the latest ones

    def add(self, seconds: float) -> None:
        self.count += 1
        self.sum_s += seconds
        self.recent_s.append(seconds)


class Tracking:
    """The poll table and everything done with xAI's answers; ``policy`` learns each finished job's time."""

    def __init__(self, context: Context, aftercare: Aftercare, policy: PollPolicy) -> None:
        self._c = context
        self._aftercare = aftercare
        self._policy = policy
        self._table = PollTable()
        self.lags = DetectionLags()

    @property
    def generating(self) -> int:
        """Tracked jobs using one of xAI's concurrent slots."""
        return self._table.generating

    def running(self) -> list[RunningJob]:
        """The tracked jobs, as the polling policy sees them."""
        return self._table.running()

    def follow(self, tracked: Tracked) -> None:
        self._table.add(tracked)

    def likely_done_after(self, job: Job) -> float:
        """Seconds after its submit by which nine in ten videos of this job's kind are done (learnt times)."""
        return self._policy.history.belief(self._kind_of(job)).time_at_survival(0.1)

    def _kind_of(self, job: Job) -> JobKind:
        return job_kind(job.model or CLASSIC, job.mode, job.options)  # no model stored: sent before models were

    def sent(self, job: Job, request_id: str, started: float, *, quiet: bool, followed_after_restart: bool) -> Tracked:
        """A job xAI just took (at ``started``, on the monotonic clock): the policy says when it is first asked."""
        deadline = started + self._c.settings.job_timeout_s
        return Tracked(
            job.id,
            request_id,
            started,
            deadline,
            self._kind_of(job),
            quiet=quiet,
            followed_after_restart=followed_after_restart,
        )

    def resume(self, job: Job, request_id: str, now: float, wall: float) -> None:
        """A job xAI has, picked up again: polled at once. Its age survives the restart (the stored wall-clock
        submit time), but the verdict is xAI's: only a poll past its deadline that finds it pending times it out."""
        age = max(0.0, wall - (job.submitted_at or wall))
        started = now - age
        self._table.add(
            Tracked(
                job.id,
                request_id,
                started,
                deadline=started + self._c.settings.job_timeout_s,
                kind=self._kind_of(job),
                needs_url_only=job.status is JobStatus.DOWNLOADING,
                resumed=True,
                quiet=job.status is JobStatus.CANCELLED,
            )
        )

    def poll(self, job_id: int) -> bool:
        """Start the poll the policy chose; False when the job is no longer there to be asked about."""
        tracked = self._table.get(job_id)
        if tracked is None or tracked.in_flight:
            return False
        tracked.in_flight = True
        self._c.tasks.spawn(self._poll(tracked), f"poll-{tracked.job_id}")
        return True

    async def cancel(self, job_id: int) -> CancelResult | None:
        """xAI cannot be told to stop: the job stays tracked, quietly, holding its slot until xAI is done with it."""
        tracked = self._table.get(job_id)
        if tracked is None or tracked.needs_url_only or tracked.quiet or tracked.cancelling:
            return None
        tracked.cancelling = True  # first, so a poll answer arriving while this is written is not acted on
        try:
            cancelled = await self._c.steps.cancel_while_at_xai(job_id)
        finally:
            tracked.cancelling = False
        if not cancelled:
            return None
        tracked.quiet = True
        log.info("Job %d cancelled while xAI generates it; following it quietly until xAI is done", job_id)
        return CancelResult.AFTER_SENDING

    async def let_go(self, job_id: int, cost_usd_ticks: int | None, why: str) -> None:
        """Stop following a cancelled job: it leaves the videos in the making, counted at xAI's cost if known."""
        self._table.pop(job_id)
        self._c.wake()
        store = self._c.store
        if await patiently(lambda: store.jobs.settle(job_id, cost_usd_ticks), what=f"job {job_id} settled"):
            log.info("Job %d (cancelled) let go: %s", job_id, why)

    async def let_go_unfollowed(self) -> None:
        """At stop: the terminal's quiet jobs go now, since no later start follows them."""
        for tracked in self._table:
            if tracked.quiet and not tracked.followed_after_restart:
                await self.let_go(tracked.job_id, None, "nothing will follow it after this run")

    async def _poll(self, tracked: Tracked) -> None:
        asked_at = self._c.clocks.monotonic()
        result: PollResult | XaiError | None = None
        try:
            result = await self._c.client.poll(tracked.request_id)
        except XaiError as error:
            result = error
        except Exception:  # a bug must neither end a job xAI may bill nor leave it unpolled: it is asked again
            log.exception("Job %d: the poll failed inside the bot; asking again later", tracked.job_id)
        finally:
            tracked.in_flight = False
            self._c.wake()
        if not self._table.holds(tracked):
            return  # let go while the poll was on the wire
        try:
            if tracked.cancelling:  # a Cancel being written: the answer says nothing, the next poll is acted on
                tracked.evidence = tracked.evidence.failed(asked_at)
            elif result is None:
                tracked.evidence = tracked.evidence.failed(asked_at)
                self._ask_later(tracked)
            elif isinstance(result, XaiError):
                await self._poll_failed(tracked, result, asked_at)
            elif tracked.quiet:
                await self._quiet_answer(tracked, result, asked_at)
            else:
                await self._answer(tracked, result, asked_at)
        except Exception:
            log.exception("Job %d: acting on xAI's answer failed inside the bot; asking again later", tracked.job_id)
            await self._track_again(tracked)

    def _ask_later(self, tracked: Tracked, *, by_deadline: bool = False) -> float:
        """Hold the next poll back after a failure: ``first_poll_s``, doubling with each failure in a row, up to
        the policy's ``max_interval_s`` (and no later than the deadline when ``by_deadline``); returns the delay."""
        first_s, polling, now = self._c.settings.first_poll_s, self._c.settings.polling, self._c.clocks.monotonic()
        tracked.failures += 1
        delay = doubling(first_s, tracked.failures, low_s=polling.min_gap_s, high_s=polling.max_interval_s)
        clamp = by_deadline and now < tracked.deadline
        tracked.not_before = min(now + delay, tracked.deadline) if clamp else now + delay
        return tracked.not_before - now

    @staticmethod
    def _pending(tracked: Tracked, asked_at: float, progress: int | None) -> None:
        """Still in the making (None: an empty 202, no news): the policy judges when to ask again."""
        tracked.evidence = tracked.evidence.pending(asked_at, progress)
        tracked.failures, tracked.not_before = 0, -math.inf

    def _generation_s(self, tracked: Tracked, done_at: float) -> float | None:
        """What a video found ready by a poll sent at ``done_at`` teaches: its generation time, learnt and returned
        for the store (None for a resumed job, whose age spans the downtime)."""
        seconds = self._policy.finished(tracked.view(), done_at)
        return None if tracked.resumed else seconds

    async def _track_again(self, tracked: Tracked) -> None:
        """After a failure inside the bot: keep following the job if the store says xAI still works on it."""
        self._ask_later(tracked)
        if self._table.holds(tracked):
            return
        try:
            job = await self._c.store.jobs.get(tracked.job_id)
        except Exception:
            log.exception("Job %d: could not read it back; the next start resumes it", tracked.job_id)
            return
        if job is not None and job.in_flight and job.status in (JobStatus.RUNNING, JobStatus.CANCELLED):
            tracked.quiet = job.status is JobStatus.CANCELLED
            self._table.add(tracked)

    async def _poll_failed(self, tracked: Tracked, error: XaiError, asked_at: float) -> None:
        """Polls are idempotent, so a failed one is asked again: while xAI cannot be reached, however old the job
        is; otherwise (a 401/403 for the key, a proxy's 407, a 404...) until its deadline. Only a poll made after
        the deadline that still fails ends it, in the words of what failed."""
        if error.transient or isinstance(error, XaiRateLimited) or asked_at < tracked.deadline:
            tracked.evidence = tracked.evidence.failed(asked_at)
            delay = self._ask_later(tracked, by_deadline=not error.transient)
            log.warning("Job %d: poll failed (%s); trying again in %.1fs", tracked.job_id, error, delay)
            return
        self._table.pop(tracked.job_id)
        if tracked.quiet:
            await self.let_go(tracked.job_id, None, f"xAI's answers kept failing: {error}")
        else:
            await self._c.steps.end(tracked.job_id, AT_XAI, endings.poll_failed(error, tracked.request_id))

    async def _quiet_answer(self, tracked: Tracked, result: PollResult, asked_at: float) -> None:
        """A cancelled job xAI goes on generating: let go once xAI says it is over (recording the cost it
        reports) or a poll past its deadline finds it still pending; nothing is ever fetched or posted."""
        if isinstance(result, Done | Moderated | Failed):
            seconds = self._generation_s(tracked, asked_at) if isinstance(result, Done) else None
            if seconds is not None:
                await self._c.steps.set(tracked.job_id, generation_s=seconds)
            await self.let_go(tracked.job_id, result.cost_usd_ticks, "xAI is done with it")
        elif isinstance(result, Expired):
            await self.let_go(tracked.job_id, None, "xAI says it expired")
        elif asked_at >= tracked.deadline:
            await self.let_go(tracked.job_id, None, "still in the making at its deadline")
        else:
            self._pending(tracked, asked_at, result.progress)

    async def _answer(self, tracked: Tracked, result: PollResult, asked_at: float) -> None:
        job_id = tracked.job_id
        if not isinstance(result, Done | Moderated | Failed | Expired):  # pending, or an answer meaning "not yet"
            progress = result.progress if isinstance(result, Pending) else None
            if asked_at >= tracked.deadline:  # xAI itself says, past the deadline, that it is not done
                self._table.pop(job_id)
                ending = endings.timed_out(self._c.settings.job_timeout_s, tracked.request_id)
                await self._c.steps.end(job_id, AT_XAI, ending)
                return
            self._pending(tracked, asked_at, progress)
            if progress is not None and progress != tracked.progress:
                tracked.progress = progress
                await self._c.steps.set(job_id, progress=progress)
                await self._c.notices.status(job_id)
            return
        self._table.pop(job_id)
        if isinstance(result, Done):
            await self._video_ready(tracked, result, asked_at)
        else:
            await self._c.steps.ended_by_xai(job_id, result)

    async def _video_ready(self, tracked: Tracked, done: Done, asked_at: float) -> None:
        finished_at = self._c.clocks.wall()
        if tracked.evidence.pending_at is not None:
            self.lags.add(max(0.0, asked_at - tracked.evidence.pending_at))
        if not tracked.needs_url_only:
            moved = await self._c.steps.move(
                tracked.job_id,
                JobStatus.RUNNING,
                JobStatus.DOWNLOADING,
                finished_at=finished_at,
                progress=100,
                cost_usd_ticks=done.cost_usd_ticks,
                generation_s=self._generation_s(tracked, asked_at),
            )
            if not moved:
                return  # cancelled meanwhile
        work = self._aftercare.download(tracked.job_id, tracked.request_id, done.url)
        self._c.tasks.spawn(work, f"download-{tracked.job_id}")
