"""The scheduler: one background loop per process that moves every job through xAI.

It admits waiting jobs while fewer than ``max_concurrent`` are generating, spends the one shared request
budget on submits and polls together (each free slot goes where the polling policy says: a submit first, else
the job most likely done by now, else nothing yet), and writes every step to the store first. On start it
learns past generation times and picks up every job the store says was in flight, so a restart loses nothing.
``Scheduler`` is the facade the rest of the bot calls; the work is done by its parts:

- ``admission.py``: the fair queue, a concurrent slot, the submit through the ``SubmitGate``;
- ``poll_policy.py``: which job a free slot polls, from generation times learnt per kind of job;
- ``tracking.py``: the poll table, xAI's answers, backoff, deadlines, quiet cancelled jobs, letting go;
- ``aftercare.py`` and ``fetching.py``: the download and delivery of a made video;
- ``steps.py`` and ``notices.py``: each step written to the store, and told to the listener;
- ``tasks.py``, ``retrying.py``, ``settings.py``: the background tasks, the retry loops, every delay.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

import aiohttp

from services.jobs import endings
from services.jobs.listener import JobListener
from services.jobs.models import CancelResult, Job, JobStatus
from services.scheduler.admission import Admission
from services.scheduler.aftercare import Aftercare
from services.scheduler.context import Context
from services.scheduler.fetching import ResultFetcher
from services.scheduler.notices import Notices
from services.scheduler.poll_policy import GenerationHistory, Poll, PollPolicy, Submit, Wait, first_poll_prior
from services.scheduler.polltable import job_kind
from services.scheduler.settings import Clocks, SchedulerSettings
from services.scheduler.steps import AT_XAI, JobSteps
from services.scheduler.tasks import TaskRegistry
from services.scheduler.tracking import DetectionLags, Tracking
from services.store.store import Store
from services.xai.budget import RequestBudget
from services.xai.client import XaiClient

log = logging.getLogger(__name__)

BEAT_S = 5.0  # the loop looks up at least this often, so its heartbeat (``heartbeat_age``) stays fresh when idle


class Scheduler:
    """What the rest of the bot calls: builds the parts, runs the loop that gives each budget slot to the most
    urgent work, and holds every background task. Start once, stop on shutdown."""

    def __init__(
        self,
        store: Store,
        client: XaiClient,
        budget: RequestBudget,
        listener: JobListener,
        *,
        session: aiohttp.ClientSession,
        media_dir: Path,
        settings: SchedulerSettings | None = None,
        resume_origins: frozenset[str] = frozenset({"discord"}),
        clocks: Clocks | None = None,
        policy: PollPolicy | None = None,
    ) -> None:
        self.store = store
        self.client = client
        self.budget = budget
        self.media_dir = media_dir
        self.settings = settings = settings or SchedulerSettings()
        self.resume_origins = resume_origins  # the terminal resumes nothing; the bot resumes Discord jobs
        self._clocks = clocks or Clocks()
        self._listener = listener
        self._session = session
        prior = first_poll_prior(settings.first_poll_s, settings.polling)
        self.policy = policy or PollPolicy(GenerationHistory(prior), settings.polling)
        self._build_parts()
        self._loop_task: asyncio.Task[None] | None = None
        self._stopping = False
        self.max_generating_seen = 0
        self._beat_at: float | None = None  # when the loop last went round (monotonic), for /healthz

    def _build_parts(self) -> None:
        store, client, settings, clocks, listener = self.store, self.client, self.settings, self._clocks, self._listener
        self._tasks = TaskRegistry()
        self._wake = asyncio.Event()
        notices = Notices(store, listener, self._tasks.spawn, settings, clocks)
        steps = JobSteps(store, notices)
        self._context = context = Context(store, client, steps, notices, self._tasks, settings, clocks, self._wake.set)
        fetcher = ResultFetcher(self._session, client, settings, clocks)
        self._aftercare = Aftercare(context, listener, fetcher, self.media_dir)
        self._tracking = Tracking(context, self._aftercare, self.policy)
        self._admission = Admission(context, self.budget, listener, self._tracking, self.resume_origins)

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Resume whatever the store says was in flight, then start the loop.

        A stopped scheduler may start again (a cluster's leader elected once more): it starts from fresh parts,
        as a new process would, and from what the store says; only the learnt generation times carry over."""
        if self._loop_task is not None:
            return
        if self._stopping:
            self._build_parts()
            self._stopping = False
        self.media_dir.mkdir(parents=True, exist_ok=True)
        times = await self.store.jobs.generation_times()  # newest first; the history keeps the newest
        self.policy.history.learn((job_kind(t.model, t.mode, t.options), t.seconds) for t in reversed(times))
        await self._resume()
        self._loop_task = asyncio.create_task(self._run(), name="scheduler")

    async def stop(self, grace_s: float | None = None) -> None:
        """Stop admitting; let requests already on the wire finish (up to ``grace_s``, by default the settings'
        ``stop_grace_s``); cancel the rest. Everything is in the store, so whatever is cut short is picked up by
        the next start."""
        self._stopping = True
        self._wake.set()
        if self._loop_task is not None:
            self._loop_task.cancel()
            await asyncio.wait({self._loop_task})  # never raises its CancelledError: a cancel of stop() itself goes on
            self._loop_task = None
        self._admission.call_off_all()
        await self._tasks.stop(self.settings.stop_grace_s if grace_s is None else grace_s)
        await self._tracking.let_go_unfollowed()

    # -- what the rest of the bot calls --------------------------------------------------------

    def enqueue(self, job: Job) -> None:
        """A freshly accepted (already stored) job joins the line (once: ``take_up`` may have seen it first)."""
        if not self._admission.holds(job.id):
            self._admission.enqueue(job)

    async def take_up(self, job_id: int | None = None) -> int:
        """Jobs another process accepted into the store join the line: ``job_id`` (a wake-up said it was queued),
        or every waiting job this loop does not hold yet (the backup for a wake-up that was lost). A job taken up
        twice is harmless: only one ``queued`` to ``submitting`` move wins. Returns how many joined."""
        if self._stopping:
            return 0
        if job_id is not None:
            found = await self.store.jobs.get(job_id)
            jobs = [found] if found is not None else []
        else:
            jobs = await self.store.jobs.with_status([JobStatus.QUEUED])
        joined = 0
        for job in jobs:
            ours = job.status is JobStatus.QUEUED and job.origin.kind in self.resume_origins
            if ours and not self._admission.holds(job.id) and not self._stopping:
                self._admission.enqueue(job)
                joined += 1
        return joined

    def queue_position(self, job_id: int) -> int | None:
        return self._admission.position(job_id)

    @property
    def generating(self) -> int:
        """Jobs occupying one of xAI's concurrent slots right now."""
        return self._admission.submitting + self._tracking.generating

    @property
    def waiting(self) -> int:
        return self._admission.waiting

    async def cancel(self, job_id: int) -> CancelResult | None:
        """Stop a job; None when it is past stopping (finished, or its video is already on its way).

        ``BEFORE_SENDING``: nothing reached xAI and the job is handed back (the store says so on return).
        ``AFTER_SENDING``: the request had gone to xAI, which may bill it; the job counts, and ends cancelled
        (now, or as soon as xAI answers the submit that is on the wire). xAI goes on generating it, so it keeps its
        concurrent slot and stays in the making (followed quietly, nothing fetched) until xAI is done with it.
        """
        if self._admission.holds(job_id):
            return await self._admission.cancel(job_id)
        return await self._tracking.cancel(job_id)

    # -- resume --------------------------------------------------------------------------------

    async def _resume(self) -> None:
        now, wall = self._clocks.monotonic(), self._clocks.wall()
        ours = self.resume_origins
        resumed = 0
        # Read the failure outbox first: jobs failed below are told by their own ending, not twice.
        untold = [job for job in await self.store.jobs.unnotified_endings() if job.origin.kind in ours]
        for job in await self.store.jobs.active():
            if job.origin.kind in ours:
                resumed += await self._resume_one(job, now, wall)
        for job in await self.store.jobs.uncertain_since(wall - self.settings.job_timeout_s):
            if job.origin.kind in ours:  # sent, and nobody can follow it (no id): xAI may still be making it
                self._admission.hold_uncertain(job)
        for job in await self.store.jobs.still_at_xai():  # cancelled while xAI generated them: followed quietly
            if job.origin.kind not in ours:
                continue
            if job.request_id is None:
                await self._tracking.let_go(job.id, None, "no request id to ask about")
                continue
            resumed += 1
            self._tracking.resume(job, job.request_id, now, wall)
        if resumed:
            log.info("Resumed %d job(s) from the store", resumed)
        for job in untold:
            self._context.notices.ending(job)

    async def _resume_one(self, job: Job, now: float, wall: float) -> bool:
        """Pick one in-flight job up where it was; False when it could not be (it is ended instead)."""
        if job.status in (JobStatus.QUEUED, JobStatus.SUBMITTING):
            await self._admission.resume(job)
        elif job.status in AT_XAI and job.request_id:
            self._tracking.resume(job, job.request_id, now, wall)
        elif job.status is JobStatus.DELIVERING:
            self._tasks.spawn(self._aftercare.resume_delivery(job.id), f"deliver-{job.id}")
        else:
            log.warning("Job %d is %s without a request id; marking it failed", job.id, job.status)
            await self._context.steps.end(job.id, job.status, endings.LOST_REQUEST_ID)
            return False
        return True

    # -- the loop ------------------------------------------------------------------------------

    def heartbeat_age(self) -> float | None:
        """Seconds since the loop last went round; None when it is not running (never started, stopped, or
        ended by an error it could not outlive)."""
        if self._loop_task is None or self._loop_task.done() or self._beat_at is None:
            return None
        return max(0.0, self._clocks.monotonic() - self._beat_at)

    @property
    def detection_lags(self) -> DetectionLags:
        """How late finished videos were noticed (at most), for /metrics."""
        return self._tracking.lags

    async def _run(self) -> None:
        while not self._stopping:
            self._beat_at = self._clocks.monotonic()
            try:
                await self._step()
            except asyncio.CancelledError:
                raise
            except Exception:  # the loop must outlive any one bad step
                log.exception("Scheduler step failed; continuing")
                await self._clocks.sleep(self.settings.step_failure_pause_s)

    async def _step(self) -> None:
        # Only hand out work when a budget slot is free and nobody is already waiting for one, so each slot
        # goes where the policy says at the moment it frees up (the budget says how many go; the policy, which).
        if self.budget.waiting or self.budget.delay() > 0:
            await self._sleep(max(self.budget.delay(), 0.005))
            return
        now = self._clocks.monotonic()
        decision = self.policy.decide(
            now,
            self._tracking.running(),
            waiting=self._admission.waiting,
            free_concurrency=self.settings.max_concurrent - self.generating,
            rate_per_s=self.budget.per_second,
        )
        if (isinstance(decision, Submit) and self._admit_one()) or (
            isinstance(decision, Poll) and self._tracking.poll(decision.job_id)
        ):
            await asyncio.sleep(0)  # let the new task take its budget slot before choosing again
            return
        await self._sleep(max(0.005, decision.until - now) if isinstance(decision, Wait) else 0.005)

    def _admit_one(self) -> bool:
        if self.generating >= self.settings.max_concurrent or not self._admission.admit_next():
            return False
        self.max_generating_seen = max(self.max_generating_seen, self.generating)
        return True

    async def _sleep(self, seconds: float) -> None:
        """Wait ``seconds``, or until a part wakes the loop (a slot freed, a poll came back, a job arrived)."""
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=min(seconds, BEAT_S))
