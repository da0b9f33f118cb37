"""The words of a job's ending, and the rule for when a job is handed back, on their own."""

from __future__ import annotations

import pytest

from services.jobs import endings
from services.jobs.charging import started_nothing
from services.jobs.models import ErrorCode, Job, JobStatus, Mode, Origin, VideoOptions
from services.jobs.wording import failure_text
from services.xai.errors import (
    XaiAuthError,
    XaiCreditsExhausted,
    XaiError,
    XaiProtocolError,
    XaiRejected,
    XaiServerError,
    XaiUnavailable,
)


def _cancelled(*, charged: bool) -> Job:
    return Job(
        id=7,
        mode=Mode.TEXT,
        prompt="p",
        options=VideoOptions(),
        origin=Origin(),
        status=JobStatus.CANCELLED,
        created_at=0,
        updated_at=0,
        error_code=ErrorCode.CANCELLED,
        charged=charged,
    )


def test_a_cancelled_job_says_whether_xai_may_charge() -> None:
    """Only a job whose request may have reached xAI mentions a charge; one stopped before sending does not."""
    assert "may still charge" in failure_text(_cancelled(charged=True))
    assert "charge" not in failure_text(_cancelled(charged=False))


def test_a_timeout_names_the_request_and_the_possible_charge() -> None:
    """The honest timeout sentence: how long, that xAI may still bill, and the id to look it up."""
    ending = endings.timed_out(600, "req-1")
    assert (ending.status, ending.code) == (JobStatus.FAILED, ErrorCode.TIMEOUT)
    assert "10 minutes" in ending.message and "may still charge" in ending.message and "req-1" in ending.message


def _moderated() -> XaiError:
    error = XaiRejected("xAI refused the request: moderated", status=400)
    error.moderated = True
    return error


@pytest.mark.parametrize(
    ("error", "sent", "nothing"),
    [
        (None, False, True),  # called off before the wire
        (XaiUnavailable("could not reach xAI"), False, True),  # the connection never opened
        (XaiRejected("invalid argument", status=400), True, True),
        (XaiAuthError("bad key", status=401), True, True),
        (XaiCreditsExhausted("no credits", status=429), True, True),
        (XaiRejected("unprocessable", status=422), True, True),
        (_moderated(), True, False),  # xAI bills moderated work
        (XaiServerError("500", status=500), True, False),
        (XaiRejected("timeout", status=408), True, False),
        (XaiUnavailable("timed out"), True, False),  # on the wire, no answer
        (XaiProtocolError("no job id", status=200), True, False),
    ],
)
def test_only_proof_that_xai_started_nothing_hands_a_job_back(
    error: XaiError | None, sent: bool, nothing: bool
) -> None:
    """Never sent, or a clear 4xx refusal (not moderation): handed back. Anything unclear stays counted."""
    assert started_nothing(error, sent=sent) is nothing
