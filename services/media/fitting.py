"""Fitting a finished video to what a destination accepts, and tidying the shrunk copies afterwards.

Discord takes uploads up to a size that depends on the destination (a server's boost level, an
interaction's own limit, 10 MiB for a DM). A video over it is re-encoded beside the original
(``job-N-fit-LIMIT.mp4``), or, when it cannot be shrunk enough, the delivery fails with words saying
so. The original is never touched: the buttons edit from it and retention decides when it goes.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from services.jobs.listener import DeliveryError
from services.jobs.models import Job
from services.media import probing, shrinking, sizes

log = logging.getLogger(__name__)


async def fit(job: Job, video: Path, limit: int, *, where: str = "post here") -> Path:
    """``video`` if it is within ``limit``, else a shrunk copy beside it (deleted after the post)."""
    if video.stat().st_size <= limit:
        return video
    target = video.with_name(f"job-{job.id}-fit-{limit}.mp4")
    log.info(
        "Job %d: video is %s, over the %s upload limit; re-encoding",
        job.id,
        sizes.describe_size(video.stat().st_size),
        sizes.describe_size(limit),
    )
    try:
        await shrinking.fit_to_size(video, target, limit)
    except probing.MediaError as error:
        raise DeliveryError(
            f"The video is too large to {where} ({sizes.describe_size(video.stat().st_size)}, the limit is "
            f"{sizes.describe_size(limit)}) and could not be shrunk to fit: {error}",
            permanent=True,
        ) from None
    return target


async def fit_either(job: Job, video: Path, upload: Path, limit: int, *, where: str) -> Path:
    """``upload`` (a copy already fitted for somewhere else) if it is within ``limit``, else ``video`` fitted."""
    if upload.stat().st_size <= limit:
        return upload
    return await fit(job, video, limit, where=where)


async def discard_shrunk_copies(job: Job, video: Path) -> None:
    """Delete the job's shrunk copies (``job-N-fit-LIMIT.mp4``), never the original."""

    def discard() -> None:
        for copy in video.parent.glob(f"job-{job.id}-fit-*.mp4"):
            if copy != video:
                copy.unlink(missing_ok=True)

    try:
        await asyncio.to_thread(discard)
    except OSError as error:
        log.warning("Job %d: could not delete a shrunk copy of the video (%s)", job.id, error.strerror)
