"""xAI's video API on the wire: the bodies the bot sends, and what it makes of every answer.

Pure functions and plain types, no I/O, so each can be tested (and fuzzed) alone. An answer is data
from outside: any field may be missing, of another type, NaN, huge, negative or garbled text, and each
becomes a typed outcome (returned) or an ``XaiError`` (raised) whose ``str()`` is a true sentence for a
person, never a stray ValueError. Text from xAI is cleaned before it can reach a message or the store.
"""

from __future__ import annotations

import base64
import email.utils
import json
import logging
import math
import re
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

from services.jobs.models import ErrorCode, MediaInput, VideoOptions

log = logging.getLogger(__name__)

MAX_RETRY_AFTER_S = 60.0
MAX_TEXT_CHARS = 300  # xAI's words in a message: enough for a reason, never a wall of text
MAX_COST_TICKS = 10**14  # $10,000: far above any one video, so a bigger figure is garbage, not a bill
MAX_VIDEO_SECONDS = 3600.0
MEDIA_SLICE = 3 * 128 * 1024  # media bytes per base64 piece: a multiple of 3, so the pieces join exactly

# -- requests ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GenerationRequest:
    """Text to video, or image to video when ``image`` / ``image_url`` is given."""

    prompt: str
    options: VideoOptions
    image: MediaInput | None = None
    image_url: str | None = None


@dataclass(frozen=True, slots=True)
class EditRequest:
    """Edit a video; xAI keeps its length, shape and resolution, so there are no options."""

    prompt: str
    video: MediaInput | None = None
    video_url: str | None = None


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

# -- errors ------------------------------------------------------------------------------------


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


FAILURE_WORDS = {
    "invalid_argument": "xAI could not use the request",
    "permission_denied": "xAI refused the request for this account",
    "failed_precondition": "xAI could not start the video",
    "service_unavailable": "xAI was overloaded while making the video; try again in a while",
    "internal_error": "xAI had an internal error while making the video",
}

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


# -- bodies ------------------------------------------------------------------------------------


def data_uri(media: MediaInput) -> str:
    return f"data:{media.mime_type};base64,{base64.b64encode(media.data).decode('ascii')}"


def submission(request: GenerationRequest | EditRequest, model: str) -> tuple[str, dict[str, Any]]:
    """The path and JSON body for a submit, in the official shape (``image: {url}``, edits apart)."""
    if isinstance(request, EditRequest):
        url = data_uri(request.video) if request.video is not None else request.video_url
        if not url:
            raise ValueError("an edit needs a video")
        return "/videos/edits", {"model": model, "prompt": request.prompt, "video": {"url": url}}
    body: dict[str, Any] = {"model": model, "prompt": request.prompt}
    options = request.options
    if options.duration is not None:
        body["duration"] = options.duration
    if options.aspect_ratio is not None:
        body["aspect_ratio"] = options.aspect_ratio
    if options.resolution is not None:
        body["resolution"] = options.resolution
    image = data_uri(request.image) if request.image is not None else request.image_url
    if image:
        body["image"] = {"url": image}
    return "/videos/generations", body


@dataclass(frozen=True, slots=True)
class Body:
    """A submit's JSON body, ``head + base64(media) + tail``: exactly the bytes of ``json.dumps(body)``.

    The media (up to 50 MiB, ~70 MB as base64) is encoded slice by slice as it is sent, never all at
    once: one ``b64encode`` or ``json.dumps`` of it is one long C call that holds the GIL, and stalls
    the event loop even from a thread. The JSON around it comes from a stand-in, as base64 needs no
    escaping in JSON."""

    head: bytes
    media: bytes = b""
    tail: bytes = b""

    @property
    def size(self) -> int:
        return len(self.head) + 4 * ((len(self.media) + 2) // 3) + len(self.tail)

    def pieces(self) -> Iterator[bytes]:
        """The body in order, each base64 piece made only when it is asked for (about a millisecond each)."""
        yield self.head
        view = memoryview(self.media)
        for start in range(0, len(view), MEDIA_SLICE):
            yield base64.b64encode(view[start : start + MEDIA_SLICE])
        if self.tail:
            yield self.tail


def encoded_submission(request: GenerationRequest | EditRequest, model: str) -> tuple[str, Body]:
    """``submission``'s path, and its body ready to stream (see ``Body``)."""
    media = request.video if isinstance(request, EditRequest) else request.image
    if media is None:
        path, body = submission(request, model)
        return path, Body(json.dumps(body).encode())
    marker = f"media-{uuid.uuid4().hex}"
    if isinstance(request, EditRequest):
        path, body = submission(replace(request, video=None, video_url=marker), model)
    else:
        path, body = submission(replace(request, image=None, image_url=marker), model)
    head, tail = json.dumps(body).split(json.dumps(marker), 1)
    opening = json.dumps(f"data:{media.mime_type};base64,")[:-1]  # the opening quote and the escaped prefix
    return path, Body((head + opening).encode(), media.data, ('"' + tail).encode())


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
