"""The scheduler: one background loop per process that moves every job through xAI.

It admits waiting jobs while fewer than ``max_concurrent`` are generating, spends the one shared
request budget on submits and polls together (always serving the job that is due soonest), downloads
each finished video at once, hands it to the listener, and writes every step to the store first.
On start it picks up every job the store says was in flight, so a restart loses nothing.

Every admitted job has a ``SubmitGate``: a Cancel stops it for free until the request goes on the wire.
A job's age is kept on the monotonic clock (taken from the stored, wall-clock ``submitted_at`` when it is
resumed), and a job is only ever called timed out by a poll, made after its deadline, that finds it
still pending: never on age alone.
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

from services import endings
from services.budget import RequestBudget
from services.cadence import PollCadence
from services.charging import started_nothing
from services.fairqueue import FairQueue
from services.fetching import URL_LIFETIME_S, FetchFailed, FetchSettings, ResultFetcher
from services.hosts import AllowedHosts
from services.listener import DeliveryError, JobListener
from services.models import CancelResult, ErrorCode, Job, JobStatus, Mode
from services.patience import patiently
from services.store import JobStore
from services.xai import (
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
class _Tracked:
    """A job that xAI is working on (or that needs one more poll to learn its video's address).

    Times are on the scheduler's monotonic clock, so a wall-clock jump during a run changes nothing.
    """

    job_id: int
    request_id: str
    started: float  # when xAI got the job (before this run began, for a resumed job)
    deadline: float  # a poll made after this that finds the job pending ends it as timed out
    next_poll_at: float
    polls: int = 0
    progress: int | None = None
    in_flight: bool = False
    needs_url_only: bool = False  # resumed in DOWNLOADING: already done at xAI, not using a slot
    resumed: bool = False  # its age includes time the bot was down: not a generation time to learn from


@dataclass(slots=True)
class _Submission:
    """An admitted job on its way to xAI: the gate a Cancel closes, and the request while it is being sent."""

    gate: SubmitGate = field(default_factory=SubmitGate)
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
        self.listener = listener
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
        self._queue = FairQueue()
        self._queue_report_pending = False
        self._tracked: dict[int, _Tracked] = {}
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

    # -- what the rest of the bot calls --------------------------------------------------------

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
        return len(self._submitting) + sum(1 for t in self._tracked.values() if not t.needs_url_only)

    @property
    def waiting(self) -> int:
        return len(self._queue)

    async def cancel(self, job_id: int) -> CancelResult | None:
        """Stop a job; None when it is past stopping (finished, or its video is already on its way).

        ``BEFORE_SENDING``: nothing reached xAI and the job is handed back (the store says so on return).
        ``AFTER_SENDING``: the request had gone to xAI, which may bill it; the job counts, and ends cancelled
        (now, or as soon as xAI answers the submit that is on the wire).
        """
        if self._queue.remove(job_id):
            self._request_queue_report()
            if await self._move(job_id, JobStatus.QUEUED, JobStatus.CANCELLED, **_CANCELLED, charged=False):
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
        if tracked is not None and not tracked.needs_url_only:
            del self._tracked[job_id]  # first, so a poll answer arriving meanwhile is ignored
            self._wake.set()
            if await self._move(job_id, JobStatus.RUNNING, JobStatus.CANCELLED, **_CANCELLED):
                return CancelResult.AFTER_SENDING
        return None

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
            elif job.status is JobStatus.SUBMITTING:
                # We cannot know whether xAI received it; sending it again could bill twice. It stays charged.
                await self._end(job.id, JobStatus.SUBMITTING, endings.SUBMIT_UNCERTAIN)
            elif job.status in (JobStatus.RUNNING, JobStatus.DOWNLOADING) and job.request_id:
                # Its age survives the restart (the stored wall-clock submit time), but the verdict is xAI's:
                # it is polled at once, and only a poll past its deadline that finds it pending times it out.
                age = max(0.0, wall - (job.submitted_at or wall))
                started = now - age
                self._tracked[job.id] = _Tracked(
                    job.id,
                    job.request_id,
                    started,
                    deadline=started + self.settings.job_timeout_s,
                    next_poll_at=now,
                    needs_url_only=job.status is JobStatus.DOWNLOADING,
                    resumed=True,
                )
            elif job.status is JobStatus.DELIVERING:
                self._spawn(self._deliver(job.id), f"deliver-{job.id}")
            else:
                resumed -= 1
                log.warning("Job %d is %s without a request id; marking it failed", job.id, job.status)
                await self._end(job.id, job.status, endings.LOST_REQUEST_ID)
        if resumed:
            log.info("Resumed %d job(s) from the store", resumed)
        for job in untold:
            self._spawn(self._notify_ending(job), f"notify-{job.id}")

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
        submission = self._submitting[job_id] = _Submission()
        self.max_generating_seen = max(self.max_generating_seen, self.generating)
        self._spawn(self._submit(job_id, submission), f"submit-{job_id}")
        self._request_queue_report()
        return True

    def _poll_one(self) -> bool:
        now = self._clock()
        due = [t for t in self._tracked.values() if not t.in_flight and t.next_poll_at <= now]
        if not due:
            return False
        tracked = min(due, key=lambda t: t.next_poll_at)
        tracked.in_flight = True
        self._spawn(self._poll(tracked), f"poll-{tracked.job_id}")
        return True

    def _seconds_until_next_poll(self) -> float:
        times = [t.next_poll_at for t in self._tracked.values() if not t.in_flight]
        if not times:
            return 60.0
        return max(0.0, min(times) - self._clock())

    async def _sleep(self, seconds: float) -> None:
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=seconds)

    # -- submit --------------------------------------------------------------------------------

    async def _submit(self, job_id: int, submission: _Submission) -> None:
        tracked = None
        try:
            tracked = await self._send(job_id, submission)
        finally:
            # One step, no await: a Cancel finds the job either still submitting or already tracked.
            self._submitting.pop(job_id, None)
            if tracked is not None:
                self._tracked[job_id] = tracked
            submission.settled.set()
            self._wake.set()
        if tracked is not None:
            await self._notify_status(job_id)

    async def _send(self, job_id: int, submission: _Submission) -> _Tracked | None:
        """Send one admitted job to xAI and record how that went; the job to poll when xAI took it."""
        gate = submission.gate
        if gate.called_off:  # cancelled (or the bot is stopping) before anything happened
            await self._called_off(job_id, JobStatus.QUEUED, submission)
            return None
        # Charged from here on (pessimistic: its request may reach xAI); cleared only with proof it did not.
        if not await self._move(job_id, JobStatus.QUEUED, JobStatus.SUBMITTING, charged=True):
            return None  # no longer waiting (another process took it)
        job = await self.store.get(job_id)
        assert job is not None
        request = await self._build_request(job)
        if request is None:
            await self._end(job_id, JobStatus.SUBMITTING, endings.MISSING_INPUT, charged=False)
            return None
        if gate.called_off:  # cancelled while the job was being read from the store
            await self._called_off(job_id, JobStatus.SUBMITTING, submission)
            return None
        submission.wire = wire = asyncio.ensure_future(self.client.submit(request, gate=gate))
        try:
            await asyncio.wait({wire})
        except asyncio.CancelledError:
            wire.cancel()  # the bot is stopping: whatever is on the wire stays "submitting" (uncertain)
            raise
        try:
            request_id = wire.result()
        except (SubmitCalledOff, asyncio.CancelledError):
            await self._called_off(job_id, JobStatus.SUBMITTING, submission)
            return None
        except XaiRateLimited as error:
            if submission.cancel_requested:
                await self._move(job_id, JobStatus.SUBMITTING, JobStatus.CANCELLED, **_CANCELLED, charged=False)
                return None
            # xAI refused before doing any work: safe to wait in line again, handed back meanwhile.
            log.warning("Job %d: still rate limited after retries; back in line", job_id)
            if await self._move(job_id, JobStatus.SUBMITTING, JobStatus.QUEUED, charged=False):
                if gate.called_off:  # a Cancel (or the shutdown) came while that was being written
                    await self._called_off(job_id, JobStatus.QUEUED, submission)
                else:
                    self._queue.push_front(job_id, _owner_key(job))
            self.budget.pause_for(error.retry_after or 5.0)
            return None
        except XaiError as error:
            charged = not started_nothing(error, sent=gate.sent)
            if submission.cancel_requested:
                await self._move(job_id, JobStatus.SUBMITTING, JobStatus.CANCELLED, **_CANCELLED, charged=charged)
            else:
                await self._end(job_id, JobStatus.SUBMITTING, endings.xai_error(error), charged=charged)
            return None
        now = self._clock()
        await self._move(
            job_id, JobStatus.SUBMITTING, JobStatus.RUNNING, request_id=request_id, submitted_at=self._wall()
        )
        log.info("Job %d submitted to xAI as %s", job_id, request_id)
        if submission.cancel_requested:  # the Cancel came while the request was on the wire
            await self._move(job_id, JobStatus.RUNNING, JobStatus.CANCELLED, **_CANCELLED)
            return None
        deadline = now + self.settings.job_timeout_s
        return _Tracked(job_id, request_id, now, deadline, next_poll_at=min(now + self.cadence.first_delay(), deadline))

    async def _called_off(self, job_id: int, status: JobStatus, submission: _Submission) -> None:
        """Nothing reached xAI: the job is handed back, cancelled or (at shutdown) waiting in line again."""
        if submission.back_in_line:
            if status is not JobStatus.QUEUED:
                await self._move(job_id, status, JobStatus.QUEUED, charged=False)
            return
        log.info("Job %d: cancelled before it was sent to xAI", job_id)
        await self._move(job_id, status, JobStatus.CANCELLED, **_CANCELLED, charged=False)

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

    async def _poll(self, tracked: _Tracked) -> None:
        asked_at = self._clock()
        try:
            result = await self.client.poll(tracked.request_id)
        except XaiError as error:
            await self._poll_failed(tracked, error)
            return
        finally:
            tracked.in_flight = False
            tracked.polls += 1
            self._wake.set()
        if self._tracked.get(tracked.job_id) is not tracked:
            return  # cancelled while the poll was on the wire
        await self._handle_poll_result(tracked, result, asked_at)

    async def _poll_failed(self, tracked: _Tracked, error: XaiError) -> None:
        if getattr(error, "transient", False) or isinstance(error, XaiRateLimited):
            # xAI could not be asked: the job waits (however old it is) and is asked again later.
            delay = self.cadence.next_delay(0, None, tracked.polls)
            log.warning("Job %d: poll failed (%s); trying again in %.1fs", tracked.job_id, error, delay)
            tracked.next_poll_at = self._clock() + delay
            return
        self._tracked.pop(tracked.job_id, None)
        await self._end(tracked.job_id, _TRACKED, endings.xai_error(error))

    async def _handle_poll_result(self, tracked: _Tracked, result: PollResult, asked_at: float) -> None:
        job_id = tracked.job_id
        if not isinstance(result, Done | Moderated | Failed | Expired):  # pending, or an answer meaning "not yet"
            progress = result.progress if isinstance(result, Pending) else None
            if asked_at >= tracked.deadline:  # xAI itself says, past the deadline, that it is not done
                self._tracked.pop(job_id, None)
                await self._end(job_id, _TRACKED, endings.timed_out(self.settings.job_timeout_s, tracked.request_id))
                return
            now = self._clock()
            delay = self.cadence.next_delay(now - tracked.started, progress, tracked.polls)
            tracked.next_poll_at = min(now + delay, tracked.deadline)  # one poll lands right at the deadline
            if progress is not None and progress != tracked.progress:
                tracked.progress = progress
                await self._set(job_id, progress=progress)
                await self._notify_status(job_id)
            return
        self._tracked.pop(job_id, None)
        if isinstance(result, Done):
            await self._video_ready(tracked, result)
        else:
            await self._ended_by_xai(job_id, result)

    async def _ended_by_xai(self, job_id: int, result: PollResult) -> None:
        """xAI's own verdict on a job that will not have a video: moderated, failed or expired."""
        ending = endings.xai_verdict(result)
        if ending is not None:
            await self._end(job_id, _TRACKED, ending, cost_usd_ticks=ending.cost_usd_ticks)

    async def _video_ready(self, tracked: _Tracked, done: Done) -> None:
        finished_at = self._wall()
        if not tracked.needs_url_only:
            if not tracked.resumed:
                self.cadence.record(self._clock() - tracked.started)
            moved = await self._move(
                tracked.job_id,
                JobStatus.RUNNING,
                JobStatus.DOWNLOADING,
                finished_at=finished_at,
                progress=100,
                cost_usd_ticks=done.cost_usd_ticks,
            )
            if not moved:
                return  # cancelled meanwhile
        self._spawn(self._download(tracked.job_id, tracked.request_id, done.url), f"download-{tracked.job_id}")

    # -- download and delivery -----------------------------------------------------------------

    async def _download(self, job_id: int, request_id: str, url: str) -> None:
        await self._notify_status(job_id)
        job = await self.store.get(job_id)
        ready_at = job.finished_at if job is not None and job.finished_at else self._wall()
        path = self.media_dir / f"job-{job_id}.mp4"
        try:
            fetched = await self._fetcher.fetch(job_id, request_id, url, path, url_age_s=self._wall() - ready_at)
        except FetchFailed as failure:
            if failure.result is not None:
                await self._ended_by_xai(job_id, failure.result)
            else:
                await self._finish(
                    job_id, JobStatus.DOWNLOADING, JobStatus.FAILED, ErrorCode.DOWNLOAD_FAILED, str(failure)
                )
            return
        await self._move(
            job_id,
            JobStatus.DOWNLOADING,
            JobStatus.DELIVERING,
            downloaded_at=self._wall(),
            output_path=str(path),
            output_bytes=fetched.size,
            video_duration_s=fetched.info.duration_s,
        )
        await self._deliver(job_id)

    async def _deliver(self, job_id: int) -> None:
        for delay in (*self.settings.delivery_retry_delays_s, None):
            job = await self.store.get(job_id)
            if job is None or job.status is not JobStatus.DELIVERING:
                return
            if not job.output_path or not Path(job.output_path).is_file():
                await self._finish(
                    job_id,
                    JobStatus.DELIVERING,
                    JobStatus.FAILED,
                    ErrorCode.DOWNLOAD_FAILED,
                    "The finished video file went missing before it could be posted; please try again.",
                )
                return
            try:
                receipt = await self.listener.deliver(job, Path(job.output_path))
            except DeliveryError as error:
                if error.permanent or delay is None:
                    await self._finish(
                        job_id, JobStatus.DELIVERING, JobStatus.FAILED, ErrorCode.DELIVERY_FAILED, str(error)
                    )
                    return
                log.warning("Job %d: delivery failed (%s); retrying in %.0fs", job_id, error, delay)
            except Exception:
                if delay is None:
                    log.exception("Job %d: delivery kept failing; giving up", job_id)
                    await self._finish(
                        job_id,
                        JobStatus.DELIVERING,
                        JobStatus.FAILED,
                        ErrorCode.DELIVERY_FAILED,
                        "The video was made but could not be posted.",
                    )
                    return
                log.exception("Job %d: delivery failed; retrying in %.0fs", job_id, delay)
            else:
                await self._move(
                    job_id,
                    JobStatus.DELIVERING,
                    JobStatus.DELIVERED,
                    delivered_at=self._wall(),
                    delivery_method=receipt.method,
                    delivered_channel_id=receipt.channel_id,
                    delivered_message_id=receipt.message_id,
                )
                log.info("Job %d delivered (%s)", job_id, receipt.method)
                return
            await asyncio.sleep(delay)

    # -- recording steps -----------------------------------------------------------------------

    async def _move(
        self, job_id: int, expected: JobStatus | tuple[JobStatus, ...], new: JobStatus, **fields: Any
    ) -> bool:
        """A guarded status change that waits out a locked database instead of losing the step."""
        return await patiently(
            lambda: self.store.transition(job_id, expected, new, **fields), what=f"job {job_id} to {new}"
        )

    async def _set(self, job_id: int, **fields: Any) -> None:
        await patiently(lambda: self.store.update(job_id, **fields), what=f"job {job_id} update")

    # -- endings and reports -------------------------------------------------------------------

    async def _end(
        self, job_id: int, expected: JobStatus | tuple[JobStatus, ...], ending: endings.Ending, **fields: Any
    ) -> None:
        await self._finish(job_id, expected, ending.status, ending.code, ending.message, **fields)

    async def _finish(
        self,
        job_id: int,
        expected: JobStatus | tuple[JobStatus, ...],
        status: JobStatus,
        code: ErrorCode,
        message: str,
        **fields: Any,
    ) -> None:
        """End a job without a video, and tell the listener."""
        if await self._move(
            job_id, expected, status, error_code=code.value, error_message=message, **fields
        ):
            log.info("Job %d ended %s: %s", job_id, status, code)
            job = await self.store.get(job_id)
            if job is not None:
                # Its own task: Discord being slow (a long 429) must never hold up the loop or other jobs.
                self._spawn(self._notify_ending(job), f"notify-{job_id}")

    async def _notify_ending(self, job: Job) -> None:
        """Tell the requester, retrying a while; the job is marked notified only once they are told.

        If Discord stays unreachable, the next start tries again (the store's failure outbox).
        """
        for delay in (*self.settings.notify_retry_delays_s, None):
            try:
                await self.listener.on_finished_without_video(job)
            except Exception:
                if delay is None:
                    log.exception("Job %d: could not tell the requester how it ended; the next start will", job.id)
                    return
                log.warning("Job %d: could not tell the requester how it ended; retrying in %.0fs", job.id, delay)
                await asyncio.sleep(delay)
            else:
                await self._set(job.id, notified_at=self._wall())
                return

    async def _notify_status(self, job_id: int) -> None:
        job = await self.store.get(job_id)
        if job is not None:
            await self._safely(self.listener.on_status(job), "on_status")

    def _request_queue_report(self) -> None:
        """Tell the listener the new queue positions, once for a whole burst of changes."""
        if self._queue_report_pending:
            return
        self._queue_report_pending = True
        self._spawn(self._report_queue(), "report-queue")

    async def _report_queue(self) -> None:
        await asyncio.sleep(self.settings.queue_report_interval_s)  # let the rest of a burst land first
        self._queue_report_pending = False
        await self._safely(self.listener.on_queue_changed(self._queue.positions()), "on_queue_changed")

    async def _safely(self, call: Coroutine[Any, Any, None], what: str) -> None:
        try:
            await call
        except Exception:
            log.exception("Listener %s failed", what)

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
