"""How a job ends without a video: its status, error code, and the sentence its requester reads.

Kept in one place so every ending the scheduler writes can be read (and checked for truth) together.
Each sentence says what happened and, where it is so, that xAI may still charge for the work.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.jobs.models import ErrorCode, JobStatus
from services.xai.answers import Expired, Failed, Moderated, PollResult
from services.xai.errors import XaiError


@dataclass(frozen=True, slots=True)
class Ending:
    status: JobStatus
    code: ErrorCode
    message: str
    cost_usd_ticks: int | None = None


SUBMIT_UNCERTAIN = Ending(
    JobStatus.FAILED,
    ErrorCode.SUBMIT_UNCERTAIN,
    "The bot restarted while sending this job to xAI, so it cannot tell whether xAI received it. "
    "It was not sent again to avoid a double charge; please try again.",
)
MISSING_INPUT = Ending(
    JobStatus.FAILED,
    ErrorCode.MISSING_INPUT,
    "The attachment for this job could not be found; please send it again.",
)
LOST_REQUEST_ID = Ending(
    JobStatus.FAILED,
    ErrorCode.XAI_UNAVAILABLE,
    "xAI took this job, but the bot lost the id it needs to ask about it, so its video cannot be fetched. "
    "xAI may still charge for it; please try again.",
)


def broke_while_sending(sent: bool) -> Ending:
    """Something failed inside the bot (not at xAI) while a job was being sent: true to whether it went out."""
    where = (
        "after its request had gone out, so xAI may still charge for it"
        if sent
        else "before its request went out, so nothing reached xAI and it costs nothing"
    )
    return Ending(
        JobStatus.FAILED,
        ErrorCode.XAI_UNAVAILABLE,
        f"Something went wrong inside the bot while sending this job to xAI, {where}. Please try again; "
        "if it keeps happening, the bot's admin will find the details in its log.",
    )


def download_broke() -> Ending:
    """Something failed inside the bot (not at xAI, its video host or Discord) while a made video was fetched
    or posted."""
    return Ending(
        JobStatus.FAILED,
        ErrorCode.DOWNLOAD_FAILED,
        "xAI made this video, but something went wrong inside the bot before it could be posted. xAI may still "
        "charge for it. Please try again; the bot's admin will find the details in its log.",
    )


def timed_out(timeout_s: float, request_id: str) -> Ending:
    """Only ever written after a poll made past the deadline found the job still pending."""
    return Ending(
        JobStatus.FAILED,
        ErrorCode.TIMEOUT,
        f"xAI did not finish this video within {_duration_words(timeout_s)}, so the bot stopped waiting. "
        f"xAI may still charge for it (xAI request id {request_id}).",
    )


def poll_failed(error: XaiError, request_id: str) -> Ending:
    """A poll made past the job's deadline still failed (every earlier one was asked again): the bot stops.

    ``error`` names the real cause (the key, a proxy asking for a login, xAI not knowing the job...); xAI may
    have made, and billed, the video all the same."""
    return Ending(
        JobStatus.FAILED,
        error.error_code,
        f"The bot kept asking xAI about this video until it stopped waiting, and could not get an answer: {error} "
        f"xAI may still charge for it (xAI request id {request_id}).",
    )


def xai_error(error: XaiError) -> Ending:
    """A submit or poll that ended in an error: xAI's refusal (or trouble reaching it), in the client's words."""
    status = JobStatus.MODERATED if error.moderated else JobStatus.FAILED
    return Ending(status, error.error_code, str(error))


def xai_verdict(result: PollResult) -> Ending | None:
    """xAI's own verdict on a job that will have no video; None for an answer that is not one (done, pending)."""
    if isinstance(result, Moderated):
        return Ending(
            JobStatus.MODERATED,
            ErrorCode.MODERATED,
            "xAI's content moderation rejected this video, so it cannot be shown. xAI may still charge for it.",
            result.cost_usd_ticks,
        )
    if isinstance(result, Failed):
        message = f"xAI could not make this video: {result.message}"
        return Ending(JobStatus.FAILED, ErrorCode.XAI_FAILED, message, result.cost_usd_ticks)
    if isinstance(result, Expired):
        message = "xAI says this video has expired and is no longer available."
        return Ending(JobStatus.EXPIRED, ErrorCode.EXPIRED, message)
    return None


def _duration_words(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:g} second{'s' if seconds != 1 else ''}"
    return f"{seconds / 60:g} minutes"
