"""What a job's status message says once its interaction token can no longer keep it up to date.

An interaction token lives 15 minutes; a job in line or at xAI may outlive it. The status message
then stays as it was last left until the job ends, and a message left standing must stay true: it
says where the video will go (the channel, or a DM when the bot cannot post there), keeps the
Cancel button while a Cancel can still help, and, once the job is over, says how it ended. Pure
functions, shared by the delivery adapter and the Cancel button.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from services.jobs.models import ErrorCode, Job, JobRequest, JobStatus
from services.jobs.wording import failure_text, status_line
from services.policy.limits import usd
from services.scheduler.loop import Scheduler
from services.xai.catalog import Catalog

# While a job is in one of these, a Cancel still stops it (before or during generation); once the
# video is made and on its way, a Cancel could only say it is too late.
CANCELLABLE = frozenset({JobStatus.QUEUED, JobStatus.SUBMITTING, JobStatus.RUNNING})


def handover_text(job_id: int, *, posts_here: bool) -> str:
    """The note left on the status message when its token is about to die; true wherever the video will go."""
    if posts_here:
        return f"⏳ Still working on it. I'll post the video in this channel when it's ready. (job #{job_id})"
    return (
        "⏳ Still working on it. I can't post in this channel, so I'll send you the video in a DM when it's "
        f"ready; if your DMs from this server are closed, open them to get it. (job #{job_id})"
    )


def done_text(job_id: int, method: str | None) -> str:
    """The status message of a delivered job: where the video went (``method``: channel, followup or dm)."""
    if method == "dm":
        return f"✅ Done! I couldn't post here, so I sent the video to you in a DM. (job #{job_id})"
    return f"✅ Done! Your video is below. (job #{job_id})"


def ended_text(job: Job, told: str | None) -> str:
    """The status message of a job that failed after its token died, once the requester was told
    elsewhere (``told``: "channel" or "dm"), so the reason is said once, where it pinged them. Told
    nowhere (channel and DMs closed), the status message is the one place left to give it."""
    if told is None:
        return failure_text(job)
    icon = "🚫" if job.status is JobStatus.MODERATED else "⌛" if job.error_code == ErrorCode.TIMEOUT else "❌"
    where = "I sent you why in a DM" if told == "dm" else "my message below says why"
    return f"{icon} This job ended without a video; {where}. (job #{job.id})"


def ending_text(job: Job) -> str:
    """How a finished job ended, for a status message that was left showing an earlier state."""
    if job.status is JobStatus.DELIVERED:
        if job.deleted_at is not None:
            return f"✅ Done. The video was posted and has since been deleted. (job #{job.id})"
        return done_text(job.id, job.delivery_method)
    return failure_text(job)


# -- the price and the wait, on every status message while the job is alive -------------------------


def expected_wait_s(position: int, scheduler: Scheduler) -> float:
    """How long until the job at ``position`` (1: next) starts: once the free slots are filled, each round of
    ``max_concurrent`` jobs ahead of it takes a typical generation (the median of recent ones, all kinds)."""
    most = scheduler.settings.max_concurrent
    free = max(0, most - scheduler.generating)
    if position <= free:
        return 0.0
    typical = scheduler.policy.history.belief().time_at_survival(0.5)
    return math.ceil((position - free) / most) * typical


def estimate_line(catalog: Catalog, request: JobRequest | Job) -> str:
    """The model's price for it, before xAI says: "💵 About $0.12 on grok-imagine-video-1.5-lite"."""
    options, model = request.options, request.model
    ticks = catalog.price_ticks(model, request.mode, options.duration, options.resolution)
    return f"💵 About {usd(ticks)} on {catalog.spec(model).name}"


def wait_words(wait_s: float, now: float) -> str:
    if wait_s <= 0:
        return "🕒 should start at once"
    moment = int(now + wait_s) + 1
    return f"🕒 expected to start <t:{moment}:R> (at <t:{moment}:t>)"


class StatusTexts:
    """The status line with the job's estimate (and, in line, when it should start) on a second line."""

    def __init__(self, catalog: Catalog, scheduler: Scheduler, wall: Callable[[], float] = time.time) -> None:
        self._catalog = catalog
        self._scheduler = scheduler
        self._wall = wall

    def line(self, job: Job, *, position: int | None = None, elapsed_s: float | None = None) -> str:
        text = status_line(job, position=position, elapsed_s=elapsed_s)
        if job.status.is_terminal:
            return text
        extra = estimate_line(self._catalog, job)
        if job.status is JobStatus.QUEUED and position is not None:
            extra += " · " + wait_words(expected_wait_s(position, self._scheduler), self._wall())
        return f"{text}\n{extra}"
