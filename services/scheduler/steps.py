"""Each step of a job written to the store, and told to whoever shows it: the scheduler's hands.

The scheduler decides what happens next; this carries it out. Every status change is one guarded UPDATE that
waits out a locked database (``patiently``) instead of losing the step; an ending without a video is told to
the requester through the listener (retried, the store's failure outbox behind it); and the last leg of a made
video, its download and delivery, runs here, never leaving a job "downloading" when something inside the bot
breaks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

from services.jobs import endings
from services.jobs.listener import DeliveryError, JobListener
from services.jobs.models import ErrorCode, Job, JobStatus
from services.scheduler.fetching import FetchFailed, ResultFetcher
from services.store.jobstore import JobStore
from services.store.patience import patiently
from services.xai.client import PollResult

if TYPE_CHECKING:
    from services.scheduler.loop import SchedulerSettings

log = logging.getLogger(__name__)

_CANCELLED: dict[str, Any] = {"error_code": ErrorCode.CANCELLED.value}
_TRACKED = (JobStatus.RUNNING, JobStatus.DOWNLOADING)  # where a polled job can be
Spawn = Callable[[Coroutine[Any, Any, None], str], None]


class JobSteps:
    """Writes and reports a job's steps; ``spawn`` runs a background task the scheduler owns (and stops)."""

    def __init__(
        self,
        store: JobStore,
        listener: JobListener,
        fetcher: ResultFetcher,
        settings: SchedulerSettings,
        media_dir: Path,
        *,
        wall_clock: Callable[[], float],
        spawn: Spawn,
    ) -> None:
        self.store = store
        self.listener = listener
        self.settings = settings
        self.media_dir = media_dir
        self._fetcher = fetcher
        self._wall = wall_clock
        self._spawn = spawn

    async def ended_by_xai(self, job_id: int, result: PollResult) -> None:
        """xAI's own verdict on a job that will not have a video: moderated, failed or expired."""
        ending = endings.xai_verdict(result)
        if ending is not None:
            await self.end(job_id, _TRACKED, ending, cost_usd_ticks=ending.cost_usd_ticks)

    async def download(self, job_id: int, request_id: str, url: str) -> None:
        """Fetch a made video and post it (a task of its own)."""
        await self._guarded(job_id, self._fetch_and_deliver(job_id, request_id, url))

    async def resume_delivery(self, job_id: int) -> None:
        """Post a video that was already fetched when the bot stopped (a task of its own)."""
        await self._guarded(job_id, self.deliver(job_id))

    async def _guarded(self, job_id: int, work: Coroutine[Any, Any, None]) -> None:
        try:
            await work
        except asyncio.CancelledError:
            raise  # the bot is stopping: the next start carries on from the store
        except Exception:  # a bug, or the disk: the job ends in words rather than sitting "downloading"
            log.exception("Job %d: fetching or posting the video failed inside the bot", job_id)
            with contextlib.suppress(Exception):  # the store itself failing: the next start resumes the job
                await self.end(job_id, (JobStatus.DOWNLOADING, JobStatus.DELIVERING), endings.download_broke())

    async def _fetch_and_deliver(self, job_id: int, request_id: str, url: str) -> None:
        await self.notify_status(job_id)
        job = await self.store.get(job_id)
        ready_at = job.finished_at if job is not None and job.finished_at else self._wall()
        path = self.media_dir / f"job-{job_id}.mp4"
        try:
            fetched = await self._fetcher.fetch(job_id, request_id, url, path, url_age_s=self._wall() - ready_at)
        except FetchFailed as failure:
            if failure.result is not None:
                await self.ended_by_xai(job_id, failure.result)
            else:
                await self.finish(
                    job_id, JobStatus.DOWNLOADING, JobStatus.FAILED, ErrorCode.DOWNLOAD_FAILED, str(failure)
                )
            return
        await self.move(
            job_id,
            JobStatus.DOWNLOADING,
            JobStatus.DELIVERING,
            downloaded_at=self._wall(),
            output_path=str(path),
            output_bytes=fetched.size,
            video_duration_s=fetched.info.duration_s,
        )
        await self.deliver(job_id)

    async def deliver(self, job_id: int) -> None:
        for delay in (*self.settings.delivery_retry_delays_s, None):
            job = await self.store.get(job_id)
            if job is None or job.status is not JobStatus.DELIVERING:
                return
            if not job.output_path or not Path(job.output_path).is_file():
                await self.finish(
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
                    await self.finish(
                        job_id, JobStatus.DELIVERING, JobStatus.FAILED, ErrorCode.DELIVERY_FAILED, str(error)
                    )
                    return
                log.warning("Job %d: delivery failed (%s); retrying in %.0fs", job_id, error, delay)
            except Exception:
                if delay is None:
                    log.exception("Job %d: delivery kept failing; giving up", job_id)
                    await self.finish(
                        job_id,
                        JobStatus.DELIVERING,
                        JobStatus.FAILED,
                        ErrorCode.DELIVERY_FAILED,
                        "The video was made but could not be posted.",
                    )
                    return
                log.exception("Job %d: delivery failed; retrying in %.0fs", job_id, delay)
            else:
                await self.move(
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

    async def move(
        self, job_id: int, expected: JobStatus | tuple[JobStatus, ...], new: JobStatus, **fields: Any
    ) -> bool:
        """A guarded status change that waits out a locked database instead of losing the step."""
        return await patiently(
            lambda: self.store.transition(job_id, expected, new, **fields), what=f"job {job_id} to {new}"
        )

    async def cancel_while_at_xai(self, job_id: int) -> bool:
        """RUNNING to cancelled, while xAI goes on generating it (it stays in the making until ``_let_go``)."""
        return await patiently(
            lambda: self.store.cancel_while_at_xai(job_id, JobStatus.RUNNING, **_CANCELLED), what=f"job {job_id} cancel"
        )

    async def set(self, job_id: int, **fields: Any) -> None:
        await patiently(lambda: self.store.update(job_id, **fields), what=f"job {job_id} update")

    async def end(
        self, job_id: int, expected: JobStatus | tuple[JobStatus, ...], ending: endings.Ending, **fields: Any
    ) -> None:
        await self.finish(job_id, expected, ending.status, ending.code, ending.message, **fields)

    async def finish(
        self,
        job_id: int,
        expected: JobStatus | tuple[JobStatus, ...],
        status: JobStatus,
        code: ErrorCode,
        message: str,
        **fields: Any,
    ) -> None:
        """End a job without a video, and tell the listener."""
        if await self.move(job_id, expected, status, error_code=code.value, error_message=message, **fields):
            log.info("Job %d ended %s: %s", job_id, status, code)
            job = await self.store.get(job_id)
            if job is not None:
                # Its own task: Discord being slow (a long 429) must never hold up the loop or other jobs.
                self._spawn(self.notify_ending(job), f"notify-{job_id}")

    async def notify_ending(self, job: Job) -> None:
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
                await self.set(job.id, notified_at=self._wall())
                return

    async def notify_status(self, job_id: int) -> None:
        job = await self.store.get(job_id)
        if job is not None:
            await self.safely(self.listener.on_status(job), "on_status")

    async def safely(self, call: Coroutine[Any, Any, None], what: str) -> None:
        try:
            await call
        except Exception:
            log.exception("Listener %s failed", what)
