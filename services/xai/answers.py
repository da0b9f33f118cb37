"""What the bot makes of xAI's answers: a poll's outcome, a job id, a Retry-After, an error's words.

Pure functions and plain types, no I/O, so each can be tested (and fuzzed) alone. An answer is data
from outside: any field may be missing, of another type, NaN, huge, negative or garbled text, and each
becomes a typed outcome (returned) or an ``XaiError`` (raised) whose ``str()`` is a true sentence for a
person, never a stray ValueError. Text from xAI is cleaned before it can reach a message or the store.
"""

from __future__ import annotations

import email.utils
import logging
import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from services.xai.errors import (
    RATE_LIMITED,
    XaiAuthError,
    XaiCreditsExhausted,
    XaiError,
    XaiProtocolError,
    XaiProxyRefused,
    XaiRateLimited,
    XaiRejected,
    XaiServerError,
    proxy_refused,
)

log = logging.getLogger(__name__)

MAX_RETRY_AFTER_S = 60.0
MAX_TEXT_CHARS = 300  # xAI's words in a message: enough for a reason, never a wall of text
MAX_COST_TICKS = 10**14  # $10,000: far above any one video, so a bigger figure is garbage, not a bill
MAX_VIDEO_SECONDS = 3600.0

# -- outcomes of a poll ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Pending:
    progress: int | None  # 0..100, or None when xAI gave no usable figure


@dataclass(frozen=True, slots=True)
class Done:
    url: str  # as xAI sent it ("" when it sent none); the download judges whether it may be fetched
    duration_s: float | None
    cost_usd_ticks: int | None


@dataclass(frozen=True, slots=True)
class Failed:
    code: str
    message: str
    cost_usd_ticks: int | None


@dataclass(frozen=True, slots=True)
class Moderated:
    message: str
    cost_usd_ticks: int | None


@dataclass(frozen=True, slots=True)
class Expired:
    pass


PollResult = Pending | Done | Failed | Moderated | Expired

FAILURE_WORDS = {
    "invalid_argument": "xAI could not use the request",
    "permission_denied": "xAI refused the request for this account",
    "failed_precondition": "xAI could not start the video",
    "service_unavailable": "xAI was overloaded while making the video; try again in a while",
    "internal_error": "xAI had an internal error while making the video",
}

# -- reading answers ---------------------------------------------------------------------------

_REQUEST_ID = re.compile(r"^[\x21-\x7e]{1,200}$")
_SECONDS = re.compile(r"^\d{1,10}(\.\d{1,6})?$")
_TICKS = re.compile(r"^\d{1,19}$")
_unknown_states: set[str] = set()


def clean_text(value: Any, limit: int = MAX_TEXT_CHARS) -> str:
    """Text from xAI fit to show a person: a string (or number), one line, printable, at most ``limit`` long."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)[:limit]
    if not isinstance(value, str):
        return ""
    # Control, format and invisible characters go, and lone surrogates: JSON can carry them, SQLite cannot store them.
    text = " ".join("".join(ch if ch.isprintable() else " " for ch in value[: limit * 4]).split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _progress(value: Any) -> int | None:
    """xAI's progress clamped to 0..100; None for anything that is not a finite number."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return int(min(100, max(0, value)))


def _seconds(value: Any) -> float | None:
    """A video length that makes sense (0 < s <= an hour), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if 0 < value <= MAX_VIDEO_SECONDS else None  # NaN compares false


def cost_ticks(payload: Any) -> int | None:
    """``usage.cost_in_usd_ticks`` when it is a plausible bill (a number or a digit string, as int64s
    often come in JSON); None otherwise, so the job's estimate counts instead of garbage."""
    usage = payload.get("usage") if isinstance(payload, Mapping) else None
    ticks = usage.get("cost_in_usd_ticks") if isinstance(usage, Mapping) else None
    if isinstance(ticks, str) and _TICKS.match(ticks.strip()):
        ticks = int(ticks.strip())
    if ticks is None or isinstance(ticks, bool) or not isinstance(ticks, int | float):
        return None
    if not 0 <= ticks <= MAX_COST_TICKS:  # NaN, infinities, negative and absurd figures
        log.warning("xAI reported a cost the bot cannot use (%s); counting the estimate instead", clean_text(ticks, 40))
        return None
    return int(ticks)


def request_id_of(payload: Any) -> str | None:
    """The job id in a submit's answer: a short printable string (or a number); None when unusable."""
    value = payload.get("request_id") if isinstance(payload, Mapping) else None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        value = str(value)
    if not isinstance(value, str):
        return None
    value = value.strip()
    return value if _REQUEST_ID.match(value) else None


def _state(value: Any) -> str | None:
    return value.strip().lower() if isinstance(value, str) else None


def _note_unknown_state(value: Any) -> None:
    """Log each strange status once per process (a job polled a hundred times must not log a hundred lines)."""
    key = clean_text(repr(value), 60)
    if key not in _unknown_states and len(_unknown_states) < 100:
        _unknown_states.add(key)
        log.warning("xAI reported an unknown status %s; treating the job as still pending", key)


def is_moderation(code: str, message: str) -> bool:
    text = f"{code} {message}".lower()
    return "moderat" in text or "content policy" in text


def read_poll(status: int, payload: Any) -> PollResult:
    """Turn a successful poll answer (2xx) into an outcome, whatever its fields hold.

    Raises only ``XaiProtocolError`` (transient: ask again later), for a 200 whose body is not a JSON
    object. An unknown status is still pending, so the job carries on and times out honestly."""
    if status == 202 or payload is None:
        return Pending(_progress(payload.get("progress")) if isinstance(payload, Mapping) else None)
    if not isinstance(payload, Mapping):
        raise XaiProtocolError("xAI sent an answer the bot could not read.", status=status)
    state = _state(payload.get("status"))
    video = payload.get("video")
    video = video if isinstance(video, Mapping) else {}
    url = video.get("url")
    url = url.strip() if isinstance(url, str) else ""
    cost = cost_ticks(payload)
    if state == "done" or (payload.get("status") is None and url):  # older answers carry no status
        if video.get("respect_moderation") is False:
            return Moderated("xAI's moderation withheld the video.", cost)
        return Done(url, _seconds(video.get("duration")), cost)
    if state == "failed":
        error = payload.get("error")
        error = error if isinstance(error, Mapping) else {}
        code = clean_text(error.get("code"), 60) or "internal_error"
        default = FAILURE_WORDS.get(code.lower().replace("-", "_"), "xAI could not make the video")
        message = clean_text(error.get("message")) or default
        if is_moderation(code, message):
            return Moderated(message, cost)
        return Failed(code, message, cost)
    if state == "expired":
        return Expired()
    if state != "pending":
        _note_unknown_state(payload.get("status"))
    return Pending(_progress(payload.get("progress")))


def retry_after_seconds(value: str | None) -> float | None:
    """``Retry-After`` as seconds (``5``, ``0.2``) or an HTTP date, capped at a minute; None when unusable."""
    if not isinstance(value, str) or not value.strip():
        return None
    value = value.strip()
    if _SECONDS.match(value):
        seconds = float(value)
    else:
        try:
            seconds = max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError, OverflowError, IndexError):
            return None
    return min(MAX_RETRY_AFTER_S, seconds)


def error_text(payload: Any, raw: str) -> tuple[str, str]:
    """(code, message) from a flat ``{"code","error"}``, an OpenAI-style ``{"error":{...}}`` or plain text."""
    if isinstance(payload, Mapping):
        error = payload.get("error")
        if isinstance(error, Mapping):
            code = clean_text(error.get("code"), 60) or clean_text(error.get("type"), 60)
            return code, clean_text(error.get("message"))
        return clean_text(payload.get("code"), 60), clean_text(error) or clean_text(payload.get("message"))
    if isinstance(payload, str):
        return "", clean_text(payload)
    text = raw.strip()
    if text.startswith("<"):
        return "", ""  # an HTML error page (a proxy's, usually) says nothing a person can use
    return "", clean_text(text)


def _rate_limit_error(message: str, retry_after: float | None) -> XaiError:
    lowered = message.lower()
    if "credit" in lowered or "spending limit" in lowered:
        return XaiCreditsExhausted(
            "xAI says the account has used all its credits or reached its spending limit; "
            "the bot's admin must add credits at https://console.x.ai/.",
            status=429,
        )
    return XaiRateLimited(RATE_LIMITED, retry_after=retry_after)


def http_error(status: int, payload: Any, raw: str, *, polling: bool) -> XaiError | Moderated:
    """Map a non-success HTTP answer to an error (or, on a poll, a moderation verdict)."""
    code, message = error_text(payload, raw)
    if status == 429:
        return _rate_limit_error(message, None)
    if status == 407:  # only a proxy answers 407: xAI never saw the request
        return XaiProxyRefused(proxy_refused(status), status=status)
    if status in (401, 403) or (status == 400 and "api key" in message.lower()):
        # xAI echoes a redacted key in its message; our own words never carry it.
        return XaiAuthError("xAI rejected the bot's API key; the bot's admin must check XAI_API_KEY.", status=status)
    if status >= 500 or status in (408, 409):
        return XaiServerError(f"xAI had a server error (HTTP {status}); please try again later.", status=status)
    if 300 <= status < 400:
        return XaiRejected(
            f"xAI's address answered with a redirect (HTTP {status}); the bot's admin must check XAI_BASE_URL.",
            status=status,
        )
    if polling and status == 400 and is_moderation(code, message):
        return Moderated(message or "Generated video rejected by content moderation.", cost_ticks(payload))
    if polling and status == 404:
        return XaiRejected(
            "xAI no longer knows this job (it may have been removed), so its video cannot be fetched; "
            "please ask for it again.",
            status=status,
        )
    detail = f": {message}" if message else f" (HTTP {status})"
    rejected = XaiRejected(f"xAI refused the request{detail}", status=status)
    rejected.moderated = is_moderation(code, message)  # a prompt refused by moderation at submit
    return rejected
