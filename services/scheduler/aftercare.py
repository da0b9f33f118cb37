"""The last leg of a made video: fetched whole onto the bot's disk, then handed to the listener to post.

Each video runs in a task of its own (spawned by tracking, or by a start that finds it half done) and never
leaves a job "downloading" or "delivering" when something inside the bot breaks: the job then ends in words.
A delivery that fails is tried again after each of ``delivery_retry_delays_s``; one the listener calls
permanent, or one that keeps failing, ends the job failed, its reason in the requester's words.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from services.jobs import endings
from services.jobs.listener import DeliveryError, JobListener
from services.jobs.models import ErrorCode, JobStatus
from services.media.hosts import shareable_link
from services.scheduler.context import Context
from services.scheduler.fetching import FetchFailed, ResultFetcher
from services.scheduler.retrying import retrying
from services.store.patience import patiently

log = logging.getLogger(__name__)

_MISSING = "The finished video file went missing before it could be posted; please try again."
_NOT_POSTED = "The video was made but could not be posted."


class Aftercare:
    """Download and delivery of finished videos; ``fetcher`` gets each copy, ``listener`` posts it."""

    def __init__(self, context: Context, listener: JobListener, fetcher: ResultFetcher, media_dir: Path) -> None:
        self.fetcher = fetcher
        self._c = context
        self._listener = listener
        self._media_dir = media_dir

    async def download(self, job_id: int, request_id: str, url: str) -> None:
        """Fetch a made video and post it (a task of its own)."""
        await self._guarded(job_id, self._fetch_and_deliver(job_id, request_id, url))

    async def resume_delivery(self, job_id: int) -> None:
        """Post a video that was already fetched when the bot stopped (a task of its own)."""
        await self._guarded(job_id, self._deliver(job_id))

    async def _guarded(self, job_id: int, work: Coroutine[Any, Any, None]) -> None:
        try:
            await work
        except asyncio.CancelledError:
            raise  # the bot is stopping: the next start carries on from the store
        except Exception:  # a bug, or the disk: the job ends in words rather than sitting "downloading"
            log.exception("Job %d: fetching or posting the video failed inside the bot", job_id)
            with contextlib.suppress(Exception):  # the store itself failing: the next start resumes the job
                await self._c.steps.end(job_id, (JobStatus.DOWNLOADING, JobStatus.DELIVERING), endings.download_broke())

    async def _fetch_and_deliver(self, job_id: int, request_id: str, url: str) -> None:
        steps, wall = self._c.steps, self._c.clocks.wall
        await self._c.notices.status(job_id)
        job = await self._c.store.jobs.get(job_id)
        ready_at = job.finished_at if job is not None and job.finished_at else wall()
        await self._keep_link(job_id, url, ready_at)
        path = self._media_dir / f"job-{job_id}.mp4"
        try:
            fetched = await self.fetcher.fetch(job_id, request_id, url, path, url_age_s=wall() - ready_at)
        except FetchFailed as failure:
            if failure.result is not None:
                await steps.ended_by_xai(job_id, failure.result)
            else:
                await self._failed(job_id, ErrorCode.DOWNLOAD_FAILED, str(failure), JobStatus.DOWNLOADING)
            return
        await steps.move(
            job_id,
            JobStatus.DOWNLOADING,
            JobStatus.DELIVERING,
            downloaded_at=wall(),
            output_path=str(path),
            output_bytes=fetched.size,
            video_duration_s=fetched.info.duration_s,
        )
        await self._deliver(job_id)

    async def _keep_link(self, job_id: int, url: str, ready_at: float) -> None:
        """Keep xAI's address of the video (when it may be shown to people) with its expiry, about a day after
        xAI made it: the delivery posts it when the file is too big to upload (services/delivery/posting.py)."""
        link = shareable_link(url, self._c.settings.download_hosts)
        if link is None:
            return
        expires_at = ready_at + self._c.settings.video_url_lifetime_s
        await patiently(
            lambda: self._c.store.jobs.keep_result_link(job_id, link, expires_at), what=f"job {job_id} link"
        )

    async def _deliver(self, job_id: int) -> None:
        delays_s = self._c.settings.delivery_retry_delays_s
        async for attempt in retrying(delays_s, sleep=self._c.clocks.sleep):
            job = await self._c.store.jobs.get(job_id)
            if job is None or job.status is not JobStatus.DELIVERING:
                return
            if not job.output_path or not Path(job.output_path).is_file():
                await self._failed(job_id, ErrorCode.DOWNLOAD_FAILED, _MISSING)
                return
            try:
                receipt = await self._listener.deliver(job, Path(job.output_path))
            except DeliveryError as error:
                if error.permanent or attempt.last:
                    await self._failed(job_id, ErrorCode.DELIVERY_FAILED, str(error))
                    return
                log.warning("Job %d: delivery failed (%s); retrying in %.0fs", job_id, error, attempt.next_delay_s)
            except Exception:
                if attempt.last:
                    log.exception("Job %d: delivery kept failing; giving up", job_id)
                    await self._failed(job_id, ErrorCode.DELIVERY_FAILED, _NOT_POSTED)
                    return
                log.exception("Job %d: delivery failed; retrying in %.0fs", job_id, attempt.next_delay_s)
            else:
                await self._c.steps.move(
                    job_id,
                    JobStatus.DELIVERING,
                    JobStatus.DELIVERED,
                    delivered_at=self._c.clocks.wall(),
                    delivery_method=receipt.method,
                    delivered_channel_id=receipt.channel_id,
                    delivered_message_id=receipt.message_id,
                )
                log.info("Job %d delivered (%s)", job_id, receipt.method)
                return

    async def _failed(
        self, job_id: int, code: ErrorCode, message: str, expected: JobStatus = JobStatus.DELIVERING
    ) -> None:
        await self._c.steps.finish(job_id, expected, JobStatus.FAILED, code, message)
