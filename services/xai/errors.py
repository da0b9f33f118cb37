"""What can go wrong talking to xAI: the ``XaiError`` kinds, and the sentences they carry.

Each kind says whether trying again may help (``transient``) and which ``ErrorCode`` a job ends with;
``str()`` is one plain sentence for a person, never the key.
"""

from __future__ import annotations

from services.jobs.models import ErrorCode


class XaiError(Exception):
    """Something went wrong talking to xAI. ``str()`` is one plain sentence; never the key."""

    error_code: ErrorCode = ErrorCode.XAI_UNAVAILABLE
    transient = False
    moderated = False

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class XaiAuthError(XaiError):
    error_code = ErrorCode.XAI_AUTH


class XaiCreditsExhausted(XaiError):
    error_code = ErrorCode.XAI_CREDITS


class XaiRateLimited(XaiError):
    def __init__(self, message: str, *, status: int | None = 429, retry_after: float | None = None) -> None:
        super().__init__(message, status=status)
        self.retry_after = retry_after


class XaiRejected(XaiError):
    error_code = ErrorCode.XAI_REJECTED


class XaiServerError(XaiError):
    transient = True


class XaiUnavailable(XaiError):
    transient = True


class XaiProtocolError(XaiError):
    transient = True


class XaiProxyRefused(XaiError):
    """A proxy between the bot and xAI turned the request away (a login it wants, a CONNECT it refused): xAI never
    saw it. Not transient: only the admin can fix it."""

    error_code = ErrorCode.XAI_UNAVAILABLE


UNREACHABLE = "The bot could not reach xAI, so nothing was sent; please try again in a few minutes."
RATE_LIMITED = "xAI is turning requests away for now (too many for this account); try again in a minute."
NOT_ALL_SENT = (
    "The request could not be sent to xAI completely (the connection was too slow or broke while it went out), "
    "so xAI started nothing; please try again."
)


def proxy_refused(status: int | None) -> str:
    """Words for a proxy's refusal: what it wants, and the setting the admin must look at."""
    if status == 407:
        return (
            "A proxy between the bot and xAI asked for a login (HTTP 407), so the request never reached xAI; "
            "the bot's admin must check HTTPS_PROXY (the proxy's user and password go in its URL)."
        )
    code = f" (HTTP {status})" if status else ""
    return (
        f"The proxy between the bot and xAI refused to connect to xAI{code}, so the request never reached it; "
        "the bot's admin must check HTTPS_PROXY and NO_PROXY."
    )


def unsure(problem: str) -> str:
    """Words for a submit that may have reached xAI but gave no job id: the bot cannot tell, and says so."""
    return (
        f"{problem}, so the bot cannot tell whether xAI started the video (xAI may charge for it). "
        "It was not sent again, to avoid a double charge; please try again later."
    )
