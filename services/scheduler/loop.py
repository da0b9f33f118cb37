"""The scheduler: one background loop per process that moves every job through xAI.

It admits waiting jobs while fewer than ``max_concurrent`` are generating, spends the one shared
request budget on submits and polls together (always serving the job that is due soonest), downloads
each finished video at once, hands it to the listener, and writes every step to the store first.
On start it picks up every job the store says was in flight, so a restart loses nothing.

Every admitted job has a ``SubmitGate``: a Cancel stops it for free until the request goes on the wire, and
its hooks write ``charged`` right before each attempt is sent (and clear it when xAI provably turned it away),
so after a crash the store tells a request that may be at xAI from one that waited for a slot. A job
cancelled once xAI has it stays tracked, quietly (``services/scheduler/polltable.py``): it keeps its concurrent slot and
counts as in the making until xAI is done with it. A job's age is kept on the monotonic clock (taken from the
stored, wall-clock ``submitted_at`` when it is resumed), and a job is only ever ended by a poll made after its
deadline that finds it still pending (or still failing): never on age alone. Writing each step, and the
download and delivery of a made video, is ``services/scheduler/steps.py``'s job.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from services.jobs import endings
from services.jobs.charging import started_nothing
from services.jobs.listener import JobListener
from services.jobs.models import CancelResult, ErrorCode, Job, JobStatus, Mode
from services.jobs.queue import FairQueue
from services.media.hosts import AllowedHosts
from services.scheduler.fetching import URL_LIFETIME_S, FetchSettings, ResultFetcher
from services.scheduler.polltable import PollTable, Tracked
from services.scheduler.steps import JobSteps
from services.store.jobstore import JobStore
from services.store.patience import patiently
from services.xai.budget import RequestBudget
from services.xai.cadence import PollCadence
from services.xai.client import (
    Done,
    EditRequest,
    Expired,
    Failed,
    GenerationRequest,
    Moderated,
    Pending,
    PollResult,
    SubmitCalledOff,
    SubmitGate,
    XaiClient,
    XaiError,
    XaiRateLimited,
)

log = logging.getLogger(__name__)

DELIVERY_RETRY_DELAYS_S = (2.0, 10.0, 30.0, 60.0)
DOWNLOAD_RETRY_DELAYS_S = (1.0, 5.0, 15.0)
NOTIFY_RETRY_DELAYS_S = (2.0, 10.0, 30.0, 60.0, 300.0)
_CANCELLED: dict[str, Any] = {"error_code": ErrorCode.CANCELLED.value}
_TRACKED = (JobStatus.RUNNING, JobStatus.DOWNLOADING)  # where a polled job can be


@dataclass(frozen=True, slots=True)
class SchedulerSettings:
    max_concurrent: int = 15
    job_timeout_s: float = 600.0  # after this, a poll that finds the job still pending ends it as timed out
    max_download_bytes: int = 200 * 1024 * 1024
    download_timeout_s: float = 120.0
    download_hosts: AllowedHosts | None = None  # where finished videos may come from (None: anywhere)
    # Queue positions go out at most this often: a burst of requests then costs one recount, not one each.
    queue_report_interval_s: float = 0.5
    # The waits between tries of each retry loop (settable, so tests never sleep for real).
    download_retry_delays_s: tuple[float, ...] = DOWNLOAD_RETRY_DELAYS_S  # a failed or damaged copy
    delivery_retry_delays_s: tuple[float, ...] = DELIVERY_RETRY_DELAYS_S
    notify_retry_delays_s: tuple[float, ...] = NOTIFY_RETRY_DELAYS_S
    video_url_lifetime_s: float = URL_LIFETIME_S  # how long xAI's address of a finished video stays good


@dataclass(slots=True)
class _Submission:
    """An admitted job on its way to xAI: the gate a Cancel closes, and the request while it is being sent."""

    gate: SubmitGate
    wire: asyncio.Task[str] | None = None
    cancel_requested: bool = False  # a Cancel came once the request was on the wire: cancel once xAI answers
    back_in_line: bool = False  # called off by a shutdown, not a person: it waits in line again
    settled: asyncio.Event = field(default_factory=asyncio.Event)  # its outcome is in the store


class Scheduler:
    """Owns the queue, the polling table and every background task. Start once, stop on shutdown."""

    def __init__(
        self,
        store: JobStore,
        client: XaiClient,
        budget: RequestBudget,
        listener: JobListener,
        *,
        session: aiohttp.ClientSession,
        media_dir: Path,
        settings: SchedulerSettings | None = None,
        cadence: PollCadence | None = None,
        resume_origins: frozenset[str] = frozenset({"discord"}),
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.client = client
        self.budget = budget
        self.session = session
        self.media_dir = media_dir
        self.settings = settings or SchedulerSettings()
        self.cadence = cadence or PollCadence()
        self._clock = clock  # ages, deadlines and poll times
        self._wall = wall_clock  # what is stored (submitted_at...), read back to age resumed jobs
        self.resume_origins = resume_origins  # the terminal resumes nothing; the bot resumes Discord jobs
        self._fetcher = ResultFetcher(
            session,
            client,
            FetchSettings(
                max_bytes=self.settings.max_download_bytes,
                timeout_s=self.settings.download_timeout_s,
                allowed_hosts=self.settings.download_hosts,
                retry_delays_s=self.settings.download_retry_delays_s,
                url_lifetime_s=self.settings.video_url_lifetime_s,
            ),
            clock=clock,
        )
        self._steps = JobSteps(
            store, listener, self._fetcher, self.settings, media_dir, wall_clock=wall_clock, spawn=self._spawn
        )
        self._queue = FairQueue()
        self._queue_report_pending = False
        self._tracked = PollTable()
        self._submitting: dict[int, _Submission] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._wake = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._stopping = False
        self.max_generating_seen = 0

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Resume whatever the store says was in flight, then start the loop."""
        if self._loop_task is not None:
            return
        self.media_dir.mkdir(parents=True, exist_ok=True)
        for seconds in reversed(await self.store.recent_generation_times()):
            self.cadence.record(seconds)
        await self._resume()
        self._loop_task = asyncio.create_task(self._run(), name="scheduler")

    async def stop(self, grace_s: float = 5.0) -> None:
        """Stop admitting; let requests already on the wire finish (up to ``grace_s``); cancel the rest.

        Everything is in the store, so whatever is cut short is picked up by the next start.
        """
        self._stopping = True
        self._wake.set()
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
            self._loop_task = None
        for submission in self._submitting.values():
            if submission.gate.call_off():  # not sent yet: it waits in line for the next start, not "uncertain"
                submission.back_in_line = not submission.cancel_requested
                if submission.wire is not None:
                    submission.wire.cancel()
        pending = {task for task in self._tasks if not task.done()}
        if pending:
            _, still = await asyncio.wait(pending, timeout=grace_s)
            for task in still:
                task.cancel()
            if still:
                await asyncio.gather(*still, return_exceptions=True)
        for tracked in self._tracked:  # the terminal's quiet jobs: no later start follows them, so they go now
            if tracked.quiet and not tracked.followed_after_restart:
                await self._let_go(tracked.job_id, None, "nothing will follow it after this run")

    # -- what the rest of the bot calls --------------------------------------------------------

    @property
    def listener(self) -> JobListener:
        """Who is told each job's progress and ending (the bot sets its Discord delivery once it exists)."""
        return self._steps.listener

    @listener.setter
    def listener(self, listener: JobListener) -> None:
        self._steps.listener = listener

    def enqueue(self, job: Job) -> None:
        """A freshly accepted (already stored) job joins the line."""
        self._queue.push(job.id, _owner_key(job))
        self._wake.set()
        self._request_queue_report()

    def queue_position(self, job_id: int) -> int | None:
        return self._queue.position(job_id)

    @property
    def generating(self) -> int:
        """Jobs occupying one of xAI's concurrent slots right now."""
        return len(self._submitting) + self._tracked.generating

    @property
    def waiting(self) -> int:
        return len(self._queue)

    async def cancel(self, job_id: int) -> CancelResult | None:
        """Stop a job; None when it is past stopping (finished, or its video is already on its way).

        ``BEFORE_SENDING``: nothing reached xAI and the job is handed back (the store says so on return).
        ``AFTER_SENDING``: the request had gone to xAI, which may bill it; the job counts, and ends cancelled
        (now, or as soon as xAI answers the submit that is on the wire). xAI goes on generating it, so it keeps its
        concurrent slot and stays in the making (followed quietly, nothing fetched) until xAI is done with it.
        """
        if self._queue.remove(job_id):
            self._request_queue_report()
            if await self._steps.move(job_id, JobStatus.QUEUED, JobStatus.CANCELLED, **_CANCELLED, charged=False):
                return CancelResult.BEFORE_SENDING
            return None
        submission = self._submitting.get(job_id)
        if submission is not None:
            if submission.gate.call_off():
                if submission.wire is not None:
                    submission.wire.cancel()  # waiting for a budget slot or between retries: stop waiting
                await submission.settled.wait()
                return CancelResult.BEFORE_SENDING
            submission.cancel_requested = True
            submission.gate.called_off = True  # and if xAI turns it away (429), no retry goes out
            return CancelResult.AFTER_SENDING
        tracked = self._tracked.get(job_id)
        if tracked is None or tracked.needs_url_only or tracked.quiet or tracked.cancelling:
            return None
        # xAI cannot be told to stop: the job stays tracked, quietly, holding its slot until xAI is done with it.
        tracked.cancelling = True  # first, so a poll answer arriving while this is written is not acted on
        try:
            cancelled = await self._steps.cancel_while_at_xai(job_id)
        finally:
            tracked.cancelling = False
        if not cancelled:
            return None
        tracked.quiet = True
        log.info("Job %d cancelled while xAI generates it; following it quietly until xAI is done", job_id)
        return CancelResult.AFTER_SENDING

    # -- resume --------------------------------------------------------------------------------

    async def _resume(self) -> None:
        now, wall = self._clock(), self._wall()
        resumed = 0
        # Read the failure outbox first: jobs failed below are told by their own ending, not twice.
        untold = [job for job in await self.store.unnotified_endings() if job.origin.kind in self.resume_origins]
        for job in await self.store.active_jobs():
            if job.origin.kind not in self.resume_origins:
                continue
            resumed += 1
            if job.status is JobStatus.QUEUED:
                self._queue.push(job.id, _owner_key(job))
            elif job.status is JobStatus.SUBMITTING and not job.charged:
                # Its request never went on the wire (it waited for a slot, or out a 429): it waits in line again.
                if await self._steps.move(job.id, JobStatus.SUBMITTING, JobStatus.QUEUED):
                    self._queue.push(job.id, _owner_key(job))
            elif job.status is JobStatus.SUBMITTING:
                # We cannot know whether xAI received it; sending it again could bill twice. It stays charged.
                await self._steps.end(job.id, JobStatus.SUBMITTING, endings.SUBMIT_UNCERTAIN)
            elif job.status in (JobStatus.RUNNING, JobStatus.DOWNLOADING) and job.request_id:
                self._tracked.add(self._resumed(job, job.request_id, now, wall))
            elif job.status is JobStatus.DELIVERING:
                self._spawn(self._steps.resume_delivery(job.id), f"deliver-{job.id}")
            else:
                resumed -= 1
                log.warning("Job %d is %s without a request id; marking it failed", job.id, job.status)
                await self._steps.end(job.id, job.status, endings.LOST_REQUEST_ID)
        for job in await self.store.still_at_xai():  # cancelled while xAI generated them: followed quietly
            if job.origin.kind not in self.resume_origins:
                continue
            if job.request_id is None:
                await self._let_go(job.id, None, "no request id to ask about")
                continue
            resumed += 1
            self._tracked.add(self._resumed(job, job.request_id, now, wall))
        if resumed:
            log.info("Resumed %d job(s) from the store", resumed)
        for job in untold:
            self._spawn(self._steps.notify_ending(job), f"notify-{job.id}")

    def _resumed(self, job: Job, request_id: str, now: float, wall: float) -> Tracked:
        """A job xAI has, picked up again: polled at once. Its age survives the restart (the stored wall-clock
        submit time), but the verdict is xAI's: only a poll past its deadline that finds it pending times it out."""
        age = max(0.0, wall - (job.submitted_at or wall))
        started = now - age
        return Tracked(
            job.id,
            request_id,
            started,
            deadline=started + self.settings.job_timeout_s,
            next_poll_at=now,
            needs_url_only=job.status is JobStatus.DOWNLOADING,
            resumed=True,
            quiet=job.status is JobStatus.CANCELLED,
        )

    # -- the loop ------------------------------------------------------------------------------

    async def _run(self) -> None:
        while not self._stopping:
            try:
                await self._step()
            except asyncio.CancelledError:
                raise
            except Exception:  # the loop must outlive any one bad step
                log.exception("Scheduler step failed; continuing")
                await asyncio.sleep(1.0)

    async def _step(self) -> None:
        # Only hand out work when a budget slot is free and nobody is already waiting for one,
        # so each slot goes to whatever is most urgent at the moment it frees up.
        if self.budget.waiting or self.budget.delay() > 0:
            await self._sleep(max(self.budget.delay(), 0.005))
            return
        if self._admit_one() or self._poll_one():
            await asyncio.sleep(0)  # let the new task take its budget slot before choosing again
            return
        await self._sleep(self._seconds_until_next_poll())

    def _admit_one(self) -> bool:
        if self.generating >= self.settings.max_concurrent:
            return False
        job_id = self._queue.pop()
        if job_id is None:
            return False
        submission = self._submitting[job_id] = _Submission(self._gate_for(job_id))
        self.max_generating_seen = max(self.max_generating_seen, self.generating)
        self._spawn(self._submit(job_id, submission), f"submit-{job_id}")
        self._request_queue_report()
        return True

    def _gate_for(self, job_id: int) -> SubmitGate:
        """The job's gate, whose hooks keep the store's ``charged`` true exactly while a request may be at xAI:
        written before each attempt goes on the wire, cleared when xAI provably turned it away."""

        async def on_wire() -> None:
            await self._steps.set(job_id, charged=True)

        async def on_turned_away() -> None:
            await self._steps.set(job_id, charged=False)

        return SubmitGate(on_wire=on_wire, on_turned_away=on_turned_away)

    def _poll_one(self) -> bool:
        tracked = self._tracked.next_due(self._clock())  # live jobs first; a quiet one only when none is due
        if tracked is None:
            return False
        tracked.in_flight = True
        self._spawn(self._poll(tracked), f"poll-{tracked.job_id}")
        return True

    def _seconds_until_next_poll(self) -> float:
        return self._tracked.seconds_until_next(self._clock())

    async def _sleep(self, seconds: float) -> None:
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=seconds)

    # -- submit --------------------------------------------------------------------------------

    async def _submit(self, job_id: int, submission: _Submission) -> None:
        tracked = None
        try:
            tracked = await self._send(job_id, submission)
        except Exception:  # a bug or a failing store must end the job in words, never leave it "submitting"
            log.exception("Job %d: sending it to xAI failed inside the bot", job_id)
            sent = submission.gate.sent
            with contextlib.suppress(Exception):  # the store itself failing: the next start resumes the job
                ending = endings.broke_while_sending(sent)
                await self._steps.end(job_id, (JobStatus.QUEUED, JobStatus.SUBMITTING), ending, charged=sent)
        finally:
            # One step, no await: a Cancel finds the job either still submitting or already tracked.
            self._submitting.pop(job_id, None)
            if tracked is not None:
                self._tracked.add(tracked)
            submission.settled.set()
            self._wake.set()
        if tracked is not None:
            await self._steps.notify_status(job_id)

    async def _send(self, job_id: int, submission: _Submission) -> Tracked | None:
        """Send one admitted job to xAI and record how that went; the job to poll when xAI took it."""
        gate = submission.gate
        if gate.called_off:  # cancelled (or the bot is stopping) before anything happened
            await self._called_off(job_id, JobStatus.QUEUED, submission)
            return None
        # Not charged yet: the gate's hook writes that right before the request goes on the wire (so a crash
        # while it waits for a budget slot, or out a 429, leaves a job the next start puts back in line).
        if not await self._steps.move(job_id, JobStatus.QUEUED, JobStatus.SUBMITTING):
            return None  # no longer waiting (another process took it)
        job = await self.store.get(job_id)
        assert job is not None
        request = await self._build_request(job)
        if request is None:
            await self._steps.end(job_id, JobStatus.SUBMITTING, endings.MISSING_INPUT, charged=False)
            return None
        if gate.called_off:  # cancelled while the job was being read from the store
            await self._called_off(job_id, JobStatus.SUBMITTING, submission)
            return None
        submission.wire = wire = asyncio.ensure_future(self.client.submit(request, gate=gate))
        try:
            await asyncio.wait({wire})
        except asyncio.CancelledError:
            wire.cancel()  # the bot is stopping: on the wire it stays "submitting" and charged (uncertain)
            raise
        try:
            request_id = wire.result()
        except (SubmitCalledOff, asyncio.CancelledError):
            await self._called_off(job_id, JobStatus.SUBMITTING, submission)
            return None
        except XaiRateLimited as error:
            if submission.cancel_requested:
                await self._steps.move(job_id, JobStatus.SUBMITTING, JobStatus.CANCELLED, **_CANCELLED, charged=False)
                return None
            # xAI refused before doing any work: safe to wait in line again, handed back meanwhile.
            log.warning("Job %d: still rate limited after retries; back in line", job_id)
            if await self._steps.move(job_id, JobStatus.SUBMITTING, JobStatus.QUEUED, charged=False):
                if gate.called_off:  # a Cancel (or the shutdown) came while that was being written
                    await self._called_off(job_id, JobStatus.QUEUED, submission)
                else:
                    self._queue.push_front(job_id, _owner_key(job))
            self.budget.pause_for(error.retry_after or 5.0)
            return None
        except XaiError as error:
            charged = not started_nothing(error, sent=gate.sent)
            if submission.cancel_requested:
                await self._steps.move(job_id, JobStatus.SUBMITTING, JobStatus.CANCELLED, **_CANCELLED, charged=charged)
            else:
                await self._steps.end(job_id, JobStatus.SUBMITTING, endings.xai_error(error), charged=charged)
            return None
        now = self._clock()
        await self._steps.move(
            job_id, JobStatus.SUBMITTING, JobStatus.RUNNING, request_id=request_id, submitted_at=self._wall()
        )
        log.info("Job %d submitted to xAI as %s", job_id, request_id)
        if submission.cancel_requested:  # the Cancel came while the request was on the wire: xAI works on it now
            await self._steps.cancel_while_at_xai(job_id)
            log.info("Job %d cancelled while it was sent; following it quietly until xAI is done", job_id)
        deadline = now + self.settings.job_timeout_s
        return Tracked(
            job_id,
            request_id,
            now,
            deadline,
            next_poll_at=min(now + self.cadence.first_delay(), deadline),
            quiet=submission.cancel_requested,
            followed_after_restart=job.origin.kind in self.resume_origins,
        )

    async def _called_off(self, job_id: int, status: JobStatus, submission: _Submission) -> None:
        """Nothing reached xAI: the job is handed back, cancelled or (at shutdown) waiting in line again."""
        if submission.back_in_line:
            if status is not JobStatus.QUEUED:
                await self._steps.move(job_id, status, JobStatus.QUEUED, charged=False)
            return
        log.info("Job %d: cancelled before it was sent to xAI", job_id)
        await self._steps.move(job_id, status, JobStatus.CANCELLED, **_CANCELLED, charged=False)

    async def _build_request(self, job: Job) -> GenerationRequest | EditRequest | None:
        media_input = await self.store.get_input(job.id) if job.has_media else None
        if job.mode is Mode.EDIT:
            if media_input is None:
                return None
            return EditRequest(prompt=job.prompt, video=media_input)
        if job.mode is Mode.IMAGE and media_input is None:
            return None
        return GenerationRequest(prompt=job.prompt, options=job.options, image=media_input)

    # -- poll ----------------------------------------------------------------------------------

    async def _poll(self, tracked: Tracked) -> None:
        asked_at = self._clock()
        result: PollResult | XaiError | None = None
        try:
            result = await self.client.poll(tracked.request_id)
        except XaiError as error:
            result = error
        except Exception:  # a bug must neither end a job xAI may bill nor leave it unpolled: it is asked again
            log.exception("Job %d: the poll failed inside the bot; asking again later", tracked.job_id)
        finally:
            tracked.in_flight = False
            tracked.polls += 1
            self._wake.set()
        if not self._tracked.holds(tracked):
            return  # let go while the poll was on the wire
        try:
            if result is None or tracked.cancelling:  # (a Cancel being written: the next poll is acted on)
                self._ask_later(tracked)
            elif isinstance(result, XaiError):
                await self._poll_failed(tracked, result, asked_at)
            elif tracked.quiet:
                await self._quiet_answer(tracked, result, asked_at)
            else:
                await self._handle_poll_result(tracked, result, asked_at)
        except Exception:
            log.exception("Job %d: acting on xAI's answer failed inside the bot; asking again later", tracked.job_id)
            await self._track_again(tracked)

    def _ask_later(self, tracked: Tracked, *, by_deadline: bool = False) -> float:
        """Poll again after a backoff (no sooner than the deadline when ``by_deadline``); returns the delay."""
        now = self._clock()
        delay = self.cadence.next_delay(0, None, tracked.polls)
        clamp = by_deadline and now < tracked.deadline
        tracked.next_poll_at = min(now + delay, tracked.deadline) if clamp else now + delay
        return tracked.next_poll_at - now

    async def _track_again(self, tracked: Tracked) -> None:
        """After a failure inside the bot: keep following the job if the store says xAI still works on it."""
        self._ask_later(tracked)
        if self._tracked.holds(tracked):
            return
        try:
            job = await self.store.get(tracked.job_id)
        except Exception:
            log.exception("Job %d: could not read it back; the next start resumes it", tracked.job_id)
            return
        if job is not None and job.in_flight and job.status in (JobStatus.RUNNING, JobStatus.CANCELLED):
            tracked.quiet = job.status is JobStatus.CANCELLED
            self._tracked.add(tracked)

    async def _poll_failed(self, tracked: Tracked, error: XaiError, asked_at: float) -> None:
        """Polls are idempotent, so a failed one is asked again: while xAI cannot be reached, however old the job
        is; otherwise (a 401/403 for the key, a proxy's 407, a 404...) until its deadline. Only a poll made after
        the deadline that still fails ends it, in the words of what failed."""
        if error.transient or isinstance(error, XaiRateLimited) or asked_at < tracked.deadline:
            delay = self._ask_later(tracked, by_deadline=not error.transient)
            log.warning("Job %d: poll failed (%s); trying again in %.1fs", tracked.job_id, error, delay)
            return
        self._tracked.pop(tracked.job_id)
        if tracked.quiet:
            await self._let_go(tracked.job_id, None, f"xAI's answers kept failing: {error}")
        else:
            await self._steps.end(tracked.job_id, _TRACKED, endings.poll_failed(error, tracked.request_id))

    async def _quiet_answer(self, tracked: Tracked, result: PollResult, asked_at: float) -> None:
        """A cancelled job xAI goes on generating: let go once xAI says it is over (recording the cost it
        reports) or a poll past its deadline finds it still pending; nothing is ever fetched or posted."""
        if isinstance(result, Done | Moderated | Failed):
            await self._let_go(tracked.job_id, result.cost_usd_ticks, "xAI is done with it")
        elif isinstance(result, Expired):
            await self._let_go(tracked.job_id, None, "xAI says it expired")
        elif asked_at >= tracked.deadline:
            await self._let_go(tracked.job_id, None, "still in the making at its deadline")
        else:
            now = self._clock()
            progress = result.progress if isinstance(result, Pending) else None
            delay = self.cadence.next_delay(now - tracked.started, progress, tracked.polls)
            tracked.next_poll_at = min(now + delay, tracked.deadline)

    async def _let_go(self, job_id: int, cost_usd_ticks: int | None, why: str) -> None:
        """Stop following a cancelled job: it leaves the videos in the making, counted at xAI's cost if known."""
        self._tracked.pop(job_id)
        self._wake.set()
        if await patiently(lambda: self.store.settle(job_id, cost_usd_ticks), what=f"job {job_id} settled"):
            log.info("Job %d (cancelled) let go: %s", job_id, why)

    async def _handle_poll_result(self, tracked: Tracked, result: PollResult, asked_at: float) -> None:
        job_id = tracked.job_id
        if not isinstance(result, Done | Moderated | Failed | Expired):  # pending, or an answer meaning "not yet"
            progress = result.progress if isinstance(result, Pending) else None
            if asked_at >= tracked.deadline:  # xAI itself says, past the deadline, that it is not done
                self._tracked.pop(job_id)
                ending = endings.timed_out(self.settings.job_timeout_s, tracked.request_id)
                await self._steps.end(job_id, _TRACKED, ending)
                return
            now = self._clock()
            delay = self.cadence.next_delay(now - tracked.started, progress, tracked.polls)
            tracked.next_poll_at = min(now + delay, tracked.deadline)  # one poll lands right at the deadline
            if progress is not None and progress != tracked.progress:
                tracked.progress = progress
                await self._steps.set(job_id, progress=progress)
                await self._steps.notify_status(job_id)
            return
        self._tracked.pop(job_id)
        if isinstance(result, Done):
            await self._video_ready(tracked, result)
        else:
            await self._steps.ended_by_xai(job_id, result)

    async def _video_ready(self, tracked: Tracked, done: Done) -> None:
        finished_at = self._wall()
        if not tracked.needs_url_only:
            if not tracked.resumed:
                self.cadence.record(self._clock() - tracked.started)
            moved = await self._steps.move(
                tracked.job_id,
                JobStatus.RUNNING,
                JobStatus.DOWNLOADING,
                finished_at=finished_at,
                progress=100,
                cost_usd_ticks=done.cost_usd_ticks,
            )
            if not moved:
                return  # cancelled meanwhile
        self._spawn(self._steps.download(tracked.job_id, tracked.request_id, done.url), f"download-{tracked.job_id}")

    def _request_queue_report(self) -> None:
        """Tell the listener the new queue positions, once for a whole burst of changes."""
        if self._queue_report_pending:
            return
        self._queue_report_pending = True
        self._spawn(self._report_queue(), "report-queue")

    async def _report_queue(self) -> None:
        await asyncio.sleep(self.settings.queue_report_interval_s)  # let the rest of a burst land first
        self._queue_report_pending = False
        await self._steps.safely(self.listener.on_queue_changed(self._queue.positions()), "on_queue_changed")

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("Task %s crashed", task.get_name(), exc_info=task.exception())


def _owner_key(job: Job) -> tuple[str, int | None]:
    return (job.origin.kind, job.origin.user_id)
