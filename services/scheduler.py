"""The scheduler: one background loop per process that moves every job through xAI.

It admits waiting jobs while fewer than ``max_concurrent`` are generating, spends the one shared
request budget on submits and polls together (always serving the job that is due soonest), downloads
each finished video at once, hands it to the listener, and writes every step to the store first.
On start it picks up every job the store says was in flight, so a restart loses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from services import media
from services.budget import RequestBudget
from services.cadence import PollCadence
from services.fairqueue import FairQueue
from services.hosts import AllowedHosts
from services.listener import DeliveryError, JobListener
from services.models import ErrorCode, Job, JobStatus, Mode
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
    XaiClient,
    XaiError,
    XaiRateLimited,
)

log = logging.getLogger(__name__)

DELIVERY_RETRY_DELAYS_S = (2.0, 10.0, 30.0, 60.0)
DOWNLOAD_RETRY_DELAYS_S = (1.0, 5.0, 15.0)
NOTIFY_RETRY_DELAYS_S = (2.0, 10.0, 30.0, 60.0, 300.0)


@dataclass(frozen=True, slots=True)
class SchedulerSettings:
    max_concurrent: int = 15
    job_timeout_s: float = 600.0
    max_download_bytes: int = 200 * 1024 * 1024
    download_timeout_s: float = 120.0
    download_hosts: AllowedHosts | None = None  # where finished videos may come from (None: anywhere)
    # Queue positions go out at most this often: a burst of requests then costs one recount, not one each.
    queue_report_interval_s: float = 0.5


@dataclass(slots=True)
class _Tracked:
    """A job that xAI is working on (or that needs one more poll to learn its video's address)."""

    job_id: int
    request_id: str
    submitted_at: float  # wall clock, as stored
    next_poll_at: float  # monotonic
    polls: int = 0
    progress: int | None = None
    in_flight: bool = False
    needs_url_only: bool = False  # resumed in DOWNLOADING: already done at xAI, not using a slot


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
    ) -> None:
        self.store = store
        self.client = client
        self.budget = budget
        self.listener = listener
        self.session = session
        self.media_dir = media_dir
        self.settings = settings or SchedulerSettings()
        self.cadence = cadence or PollCadence()
        self._clock = clock
        self.resume_origins = resume_origins  # the terminal resumes nothing; the bot resumes Discord jobs
        self._queue = FairQueue()
        self._queue_report_pending = False
        self._tracked: dict[int, _Tracked] = {}
        self._submitting: set[int] = set()
        self._cancel_requested: set[int] = set()
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

    async def cancel(self, job_id: int) -> JobStatus | None:
        """Stop a job. Returns the status it was in when cancelled, or None if it could not be (already done)."""
        if self._queue.remove(job_id):
            if await self._move(
                job_id, JobStatus.QUEUED, JobStatus.CANCELLED, error_code=ErrorCode.CANCELLED.value
            ):
                self._request_queue_report()
                return JobStatus.QUEUED
            return None
        tracked = self._tracked.get(job_id)
        if tracked is not None and not tracked.needs_url_only:
            if await self._move(
                job_id, JobStatus.RUNNING, JobStatus.CANCELLED, error_code=ErrorCode.CANCELLED.value
            ):
                self._tracked.pop(job_id, None)
                self._wake.set()
                return JobStatus.RUNNING
            return None
        if job_id in self._submitting:
            self._cancel_requested.add(job_id)
            return JobStatus.SUBMITTING
        return None

    # -- resume --------------------------------------------------------------------------------

    async def _resume(self) -> None:
        now = self._clock()
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
                # We cannot know whether xAI received it; sending it again could bill twice.
                await self._finish(
                    job.id,
                    JobStatus.SUBMITTING,
                    JobStatus.FAILED,
                    ErrorCode.SUBMIT_UNCERTAIN,
                    "The bot restarted while sending this job to xAI, so it cannot tell whether xAI received it. "
                    "It was not sent again to avoid a double charge; please try again.",
                )
            elif job.status in (JobStatus.RUNNING, JobStatus.DOWNLOADING) and job.request_id:
                self._tracked[job.id] = _Tracked(
                    job.id,
                    job.request_id,
                    job.submitted_at or time.time(),
                    next_poll_at=now,
                    needs_url_only=job.status is JobStatus.DOWNLOADING,
                )
            elif job.status is JobStatus.DELIVERING:
                self._spawn(self._deliver(job.id), f"deliver-{job.id}")
            else:
                resumed -= 1
                log.warning("Job %d is %s without a request id; marking it failed", job.id, job.status)
                await self._finish(
                    job.id, job.status, JobStatus.FAILED, ErrorCode.XAI_UNAVAILABLE, "The job's xAI id was lost."
                )
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
        await self._expire_overdue()
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
        self._submitting.add(job_id)
        self.max_generating_seen = max(self.max_generating_seen, self.generating)
        self._spawn(self._submit(job_id), f"submit-{job_id}")
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

    async def _expire_overdue(self) -> None:
        deadline = time.time() - self.settings.job_timeout_s
        for tracked in [t for t in self._tracked.values() if t.submitted_at < deadline and not t.in_flight]:
            self._tracked.pop(tracked.job_id, None)
            await self._finish(
                tracked.job_id,
                (JobStatus.RUNNING, JobStatus.DOWNLOADING),
                JobStatus.FAILED,
                ErrorCode.TIMEOUT,
                f"xAI did not finish this video within {_duration_words(self.settings.job_timeout_s)}, "
                "so the bot stopped waiting "
                f"(xAI request id {tracked.request_id}).",
            )

    # -- submit --------------------------------------------------------------------------------

    async def _submit(self, job_id: int) -> None:
        try:
            if not await self._move(job_id, JobStatus.QUEUED, JobStatus.SUBMITTING):
                return  # cancelled while waiting
            job = await self.store.get(job_id)
            assert job is not None
            request = await self._build_request(job)
            if request is None:
                await self._finish(
                    job_id,
                    JobStatus.SUBMITTING,
                    JobStatus.FAILED,
                    ErrorCode.MISSING_INPUT,
                    "The attachment for this job could not be found; please send it again.",
                )
                return
            try:
                request_id = await self.client.submit(request)
            except XaiRateLimited as error:
                # xAI refused before doing any work: safe to wait in line again.
                log.warning("Job %d: still rate limited after retries; back in line", job_id)
                if await self._move(job_id, JobStatus.SUBMITTING, JobStatus.QUEUED):
                    self._queue.push_front(job_id, _owner_key(job))
                self.budget.pause_for(error.retry_after or 5.0)
                return
            except XaiError as error:
                await self._finish(job_id, JobStatus.SUBMITTING, _status_for(error), error.error_code, str(error))
                return
            submitted_at = time.time()
            await self._move(
                job_id, JobStatus.SUBMITTING, JobStatus.RUNNING, request_id=request_id, submitted_at=submitted_at
            )
            log.info("Job %d submitted to xAI as %s", job_id, request_id)
            self._tracked[job_id] = _Tracked(
                job_id, request_id, submitted_at, next_poll_at=self._clock() + self.cadence.first_delay()
            )
        finally:
            self._submitting.discard(job_id)
            self._wake.set()
        if job_id in self._cancel_requested:
            self._cancel_requested.discard(job_id)
            await self.cancel(job_id)
            return
        await self._notify_status(job_id)

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
            return  # cancelled or timed out while the poll was on the wire
        await self._handle_poll_result(tracked, result)

    async def _poll_failed(self, tracked: _Tracked, error: XaiError) -> None:
        if getattr(error, "transient", False) or isinstance(error, XaiRateLimited):
            delay = self.cadence.next_delay(0, None, tracked.polls)
            log.warning("Job %d: poll failed (%s); trying again in %.1fs", tracked.job_id, error, delay)
            tracked.next_poll_at = self._clock() + delay
            return
        self._tracked.pop(tracked.job_id, None)
        await self._finish(
            tracked.job_id,
            (JobStatus.RUNNING, JobStatus.DOWNLOADING),
            _status_for(error),
            error.error_code,
            str(error),
        )

    async def _handle_poll_result(self, tracked: _Tracked, result: PollResult) -> None:
        job_id = tracked.job_id
        if isinstance(result, Pending):
            elapsed = time.time() - tracked.submitted_at
            tracked.next_poll_at = self._clock() + self.cadence.next_delay(elapsed, result.progress, tracked.polls)
            if result.progress is not None and result.progress != tracked.progress:
                tracked.progress = result.progress
                await self._set(job_id, progress=result.progress)
                await self._notify_status(job_id)
            return
        self._tracked.pop(job_id, None)
        if isinstance(result, Done):
            await self._video_ready(tracked, result)
        elif isinstance(result, Moderated):
            await self._finish(
                job_id,
                (JobStatus.RUNNING, JobStatus.DOWNLOADING),
                JobStatus.MODERATED,
                ErrorCode.MODERATED,
                "xAI's content moderation rejected this video, so it cannot be shown. xAI may still charge for it.",
                cost_usd_ticks=result.cost_usd_ticks,
            )
        elif isinstance(result, Failed):
            await self._finish(
                job_id,
                (JobStatus.RUNNING, JobStatus.DOWNLOADING),
                JobStatus.FAILED,
                ErrorCode.XAI_FAILED,
                f"xAI could not make this video: {result.message}",
                cost_usd_ticks=result.cost_usd_ticks,
            )
        elif isinstance(result, Expired):
            await self._finish(
                job_id,
                (JobStatus.RUNNING, JobStatus.DOWNLOADING),
                JobStatus.EXPIRED,
                ErrorCode.EXPIRED,
                "xAI says this video has expired and is no longer available.",
            )

    async def _video_ready(self, tracked: _Tracked, done: Done) -> None:
        finished_at = time.time()
        if not tracked.needs_url_only:
            self.cadence.record(finished_at - tracked.submitted_at)
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
        self._spawn(self._download(tracked.job_id, done.url), f"download-{tracked.job_id}")

    # -- download and delivery -----------------------------------------------------------------

    async def _download(self, job_id: int, url: str) -> None:
        await self._notify_status(job_id)
        path = self.media_dir / f"job-{job_id}.mp4"
        for attempt, delay in enumerate((*DOWNLOAD_RETRY_DELAYS_S, None)):
            try:
                size = await media.download(
                    self.session,
                    url,
                    path,
                    max_bytes=self.settings.max_download_bytes,
                    timeout_s=self.settings.download_timeout_s,
                    allowed_hosts=self.settings.download_hosts,
                )
                info = await media.probe_video(path)
                break
            except (media.DownloadError, media.MediaError, OSError) as error:
                transient = getattr(error, "transient", isinstance(error, OSError))
                if isinstance(error, OSError) and error.errno == errno.EFBIG:
                    transient = False  # the file can never fit (a file-size limit), unlike a disk that may be cleared
                if delay is None or not transient:
                    path.unlink(missing_ok=True)
                    path.with_name(path.name + ".part").unlink(missing_ok=True)  # a write that failed midway
                    await self._finish(
                        job_id,
                        JobStatus.DOWNLOADING,
                        JobStatus.FAILED,
                        ErrorCode.DOWNLOAD_FAILED,
                        f"xAI made the video, but the bot could not download it: {_download_problem(error)}",
                    )
                    return
                log.warning("Job %d: download attempt %d failed (%s); retrying", job_id, attempt + 1, error)
                await asyncio.sleep(delay)
        await self._move(
            job_id,
            JobStatus.DOWNLOADING,
            JobStatus.DELIVERING,
            downloaded_at=time.time(),
            output_path=str(path),
            output_bytes=size,
            video_duration_s=info.duration_s,
        )
        await self._deliver(job_id)

    async def _deliver(self, job_id: int) -> None:
        for delay in (*DELIVERY_RETRY_DELAYS_S, None):
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
                    delivered_at=time.time(),
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
        for delay in (*NOTIFY_RETRY_DELAYS_S, None):
            try:
                await self.listener.on_finished_without_video(job)
            except Exception:
                if delay is None:
                    log.exception("Job %d: could not tell the requester how it ended; the next start will", job.id)
                    return
                log.warning("Job %d: could not tell the requester how it ended; retrying in %.0fs", job.id, delay)
                await asyncio.sleep(delay)
            else:
                await self._set(job.id, notified_at=time.time())
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


def _duration_words(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:g} second{'s' if seconds != 1 else ''}"
    return f"{seconds / 60:g} minutes"


def _download_problem(error: Exception) -> str:
    """Words for the requester; a disk problem never shows the server's file paths."""
    if isinstance(error, OSError):
        if error.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
            return "the bot's disk is full. Ask whoever runs the bot to free some space, then try again."
        return "the bot could not save the file on its disk. Ask whoever runs the bot to check its storage."
    return str(error)


def _owner_key(job: Job) -> tuple[str, int | None]:
    return (job.origin.kind, job.origin.user_id)


def _status_for(error: XaiError) -> JobStatus:
    return JobStatus.MODERATED if getattr(error, "moderated", False) else JobStatus.FAILED
