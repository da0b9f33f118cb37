"""The HTTP client of xAI's video API, in the official wire format.

Shaped like a small SDK: an injected aiohttp session, one ``_request`` path that every call goes
through (budget slot, retries, error mapping), and pure functions that build bodies and read answers.
Answers become a handful of typed outcomes (returned) and errors (raised) whose ``str()`` is a
sentence a person understands. The API key is sent in one place and never appears anywhere else.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import json
import logging
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp

from services.budget import RequestBudget
from services.config import Secret
from services.models import ErrorCode, MediaInput, VideoOptions

log = logging.getLogger(__name__)

USER_AGENT = "grok-video-bot/0.1"
MAX_RETRY_AFTER_S = 60.0

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
    progress: int | None


@dataclass(frozen=True, slots=True)
class Done:
    url: str
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

# -- calling a submit off ---------------------------------------------------------------------


class SubmitGate:
    """Lets a submit be called off up to the moment it goes on the wire.

    xAI has no cancel endpoint, so a Cancel can only keep a request from being sent. ``sent`` is true
    while a request may be on its way to xAI or past it (xAI may then be working on it, and billing);
    it falls back to false when xAI provably did not take it (the connection never opened, or a 429),
    so a Cancel between retries still stops it.
    """

    __slots__ = ("called_off", "sent")

    def __init__(self) -> None:
        self.called_off = False
        self.sent = False

    def call_off(self) -> bool:
        """Stop the submit if nothing is on the wire; True when that was in time."""
        if self.sent:
            return False
        self.called_off = True
        return True


class SubmitCalledOff(Exception):
    """The submit was called off before anything was sent to xAI."""


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


FAILURE_WORDS = {
    "invalid_argument": "xAI could not use the request",
    "permission_denied": "xAI refused the request for this account",
    "failed_precondition": "xAI could not start the video",
    "service_unavailable": "xAI was overloaded while making the video; try again in a while",
    "internal_error": "xAI had an internal error while making the video",
}

# -- pure helpers: bodies and answers ----------------------------------------------------------


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


def error_text(payload: Any, raw: str) -> tuple[str, str]:
    """(code, message) from a flat ``{"code","error"}``, an OpenAI-style ``{"error":{...}}`` or plain text."""
    if isinstance(payload, Mapping):
        error = payload.get("error")
        if isinstance(error, Mapping):
            return str(error.get("code") or error.get("type") or ""), str(error.get("message") or "")
        return str(payload.get("code") or ""), str(error or payload.get("message") or "")
    return "", raw.strip()[:300]


def _cost(payload: Mapping[str, Any]) -> int | None:
    usage = payload.get("usage")
    if isinstance(usage, Mapping) and isinstance(usage.get("cost_in_usd_ticks"), int | float):
        return int(usage["cost_in_usd_ticks"])
    return None


def _is_moderation(code: str, message: str) -> bool:
    text = f"{code} {message}".lower()
    return "moderat" in text


def read_poll(status: int, payload: Any) -> PollResult:
    """Turn a successful poll answer (200 or 202) into an outcome."""
    if status == 202 or payload is None:
        progress = payload.get("progress") if isinstance(payload, Mapping) else None
        return Pending(int(progress) if isinstance(progress, int | float) else None)
    if not isinstance(payload, Mapping):
        raise XaiProtocolError("xAI sent an answer the bot could not read.", status=status)
    state = payload.get("status")
    video = payload.get("video") if isinstance(payload.get("video"), Mapping) else {}
    assert isinstance(video, Mapping)
    cost = _cost(payload)
    if state == "done" or (state is None and video.get("url")):
        url = str(video.get("url") or "")
        if video.get("respect_moderation") is False or not url:
            return Moderated("xAI's moderation withheld the video.", cost)
        duration = video.get("duration")
        return Done(url, float(duration) if isinstance(duration, int | float) else None, cost)
    if state == "failed":
        error = payload.get("error") if isinstance(payload.get("error"), Mapping) else {}
        assert isinstance(error, Mapping)
        code = str(error.get("code") or "internal_error")
        message = str(error.get("message") or FAILURE_WORDS.get(code, "xAI could not make the video"))
        if _is_moderation(code, message):
            return Moderated(message, cost)
        return Failed(code, message, cost)
    if state == "expired":
        return Expired()
    if state != "pending":
        log.warning("xAI reported an unknown status %r; treating it as pending", state)
    progress = payload.get("progress")
    return Pending(int(progress) if isinstance(progress, int | float) else None)


def retry_after_seconds(value: str | None) -> float | None:
    """``Retry-After`` in seconds or as an HTTP date, capped at a minute."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - time.time()
    return min(MAX_RETRY_AFTER_S, max(0.0, seconds))


def _rate_limit_error(message: str, retry_after: float | None) -> XaiError:
    lowered = message.lower()
    if "credit" in lowered or "spending limit" in lowered:
        return XaiCreditsExhausted(
            "xAI says the account has used all its credits or reached its spending limit; "
            "the bot's admin must add credits at https://console.x.ai/.",
            status=429,
        )
    return XaiRateLimited("xAI is busy (too many requests); the job will wait and try again.", retry_after=retry_after)


def http_error(status: int, payload: Any, raw: str, *, polling: bool) -> XaiError | Moderated:
    """Map a non-success HTTP answer to an error (or, on a poll, a moderation verdict)."""
    code, message = error_text(payload, raw)
    if status == 429:
        return _rate_limit_error(message, None)
    if status in (401, 403) or (status == 400 and "api key" in message.lower()):
        # xAI echoes a redacted key in its message; our own words never carry it.
        return XaiAuthError("xAI rejected the bot's API key; the bot's admin must check XAI_API_KEY.", status=status)
    if status >= 500 or status in (408, 409):
        return XaiServerError(f"xAI had a server error (HTTP {status}); please try again later.", status=status)
    if polling and status == 400 and _is_moderation(code, message):
        return Moderated(message or "Generated video rejected by content moderation.", _cost(payload or {}))
    if polling and status == 404:
        return XaiRejected("xAI no longer knows this job (it may have been removed).", status=status)
    detail = f": {message}" if message else f" (HTTP {status})"
    rejected = XaiRejected(f"xAI refused the request{detail}", status=status)
    rejected.moderated = _is_moderation(code, message)  # a prompt refused by moderation at submit
    return rejected


# -- the client --------------------------------------------------------------------------------

Sleep = Callable[[float], Awaitable[None]]


class XaiClient:
    """Submit, poll and check the key. Retries: 429 always (honouring Retry-After); 5xx, timeouts,
    resets and broken JSON only on reads, never on a submit (a repeated submit could bill twice)."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        api_key: Secret,
        base_url: str = "https://api.x.ai/v1",
        model: str = "grok-imagine-video",
        budget: RequestBudget | None = None,
        request_timeout_s: float = 30.0,
        max_retries: int = 2,
        max_rate_limit_retries: int = 5,
        rate_limit_backoff_s: float = 1.0,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._session = session
        self._api_key = api_key
        self.base_url = base_url.rstrip("/")
        self.model = model
        self._budget = budget
        self._timeout = aiohttp.ClientTimeout(total=request_timeout_s)
        self._max_retries = max_retries
        self._max_rate_limit_retries = max_rate_limit_retries
        self._rate_limit_backoff_s = rate_limit_backoff_s  # first wait after a 429 without Retry-After
        self._sleep = sleep

    def __repr__(self) -> str:
        return f"XaiClient(base_url={self.base_url!r}, model={self.model!r})"

    async def submit(self, request: GenerationRequest | EditRequest, *, gate: SubmitGate | None = None) -> str:
        """Start a job at xAI and return its request id. Raises ``SubmitCalledOff`` if ``gate`` was
        called off before the request was sent."""
        path, body = submission(request, self.model)
        status, payload, _ = await self._request("POST", path, body, idempotent=False, gate=gate)
        request_id = payload.get("request_id") if isinstance(payload, Mapping) else None
        if not request_id:
            raise XaiProtocolError("xAI accepted the request but sent no job id.", status=status)
        return str(request_id)

    async def poll(self, request_id: str) -> PollResult:
        try:
            status, payload, _ = await self._request(
                "GET", f"/videos/{quote(request_id, safe='')}", None, idempotent=True
            )
        except _ModeratedAnswer as answer:
            return answer.result
        return read_poll(status, payload)

    async def check_key(self) -> list[str]:
        """The video models this key may use (proves the key works)."""
        _, payload, _ = await self._request("GET", "/video-generation-models", None, idempotent=True)
        if not isinstance(payload, Mapping):
            raise XaiProtocolError("xAI sent an answer the bot could not read.")
        models = payload.get("models") or payload.get("data") or []
        return [str(m.get("id")) for m in models if isinstance(m, Mapping) and m.get("id")]

    async def _request(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None,
        *,
        idempotent: bool,
        gate: SubmitGate | None = None,
    ) -> tuple[int, Any, str]:
        """One logical call: budget slot per attempt, retries by policy, errors mapped."""
        headers = {
            "Authorization": f"Bearer {self._api_key.reveal()}",
            "User-Agent": USER_AGENT,
            "x-client-request-id": str(uuid.uuid4()),
        }
        rate_limited = transient = 0
        while True:
            if self._budget is not None:
                await self._budget.acquire()
            if gate is not None:
                if gate.called_off:
                    raise SubmitCalledOff
                gate.sent = True  # from here on xAI may receive it
            try:
                status, payload, raw, retry_after = await self._attempt(method, path, body, headers)
            except aiohttp.ClientConnectorError:
                # Nothing was sent: safe to try again even for a submit.
                if gate is not None:
                    gate.sent = False
                error: XaiError = XaiUnavailable("The bot could not reach xAI; it will try again.")
                if transient < self._max_retries:
                    transient += 1
                    await self._sleep(_backoff(transient, 0.25, 8.0))
                    continue
                raise error from None
            except (TimeoutError, aiohttp.ClientError, _BrokenJson) as problem:
                error = (
                    XaiProtocolError("xAI sent an answer the bot could not read.")
                    if isinstance(problem, _BrokenJson)
                    else XaiUnavailable("xAI did not answer in time.")
                    if isinstance(problem, TimeoutError)
                    else XaiUnavailable("The connection to xAI broke.")
                )
                if idempotent and transient < self._max_retries:
                    transient += 1
                    log.info("%s %s: %s; retrying", method, path, error)
                    await self._sleep(_backoff(transient, 0.25, 8.0))
                    continue
                raise error from None
            if status in (200, 201, 202):
                return status, payload, raw
            mapped = http_error(status, payload, raw, polling=method == "GET" and path.startswith("/videos/"))
            if isinstance(mapped, Moderated):
                raise _ModeratedAnswer(mapped)
            if isinstance(mapped, XaiRateLimited):
                if gate is not None:
                    gate.sent = False  # xAI turned it away without starting anything
                mapped.retry_after = retry_after
                wait = (
                    retry_after
                    if retry_after is not None
                    else _backoff(rate_limited + 1, self._rate_limit_backoff_s, 30.0)
                )
                if self._budget is not None:
                    self._budget.pause_for(wait)
                if rate_limited < self._max_rate_limit_retries:
                    rate_limited += 1
                    log.warning("xAI rate limit on %s %s; waiting %.1fs", method, path, wait)
                    if self._budget is None:
                        await self._sleep(wait)
                    continue
                raise mapped
            if mapped.transient and idempotent and transient < self._max_retries:
                transient += 1
                log.info("%s %s: HTTP %s; retrying", method, path, status)
                await self._sleep(_backoff(transient, 0.25, 8.0))
                continue
            raise mapped

    async def _attempt(
        self, method: str, path: str, body: dict[str, Any] | None, headers: dict[str, str]
    ) -> tuple[int, Any, str, float | None]:
        async with self._session.request(
            method, self.base_url + path, json=body, headers=headers, timeout=self._timeout
        ) as response:
            raw = await response.text()
            retry_after = retry_after_seconds(response.headers.get("Retry-After"))
            status = response.status
        log.debug("%s %s -> %s (%d bytes)", method, path, status, len(raw))
        if not raw.strip():
            return status, None, raw, retry_after
        try:
            payload = json.loads(raw)
        except ValueError:
            if status in (200, 201, 202):
                raise _BrokenJson from None
            payload = None  # error bodies may be plain text
        return status, payload, raw, retry_after


class _BrokenJson(Exception):
    pass


class _ModeratedAnswer(Exception):
    def __init__(self, result: Moderated) -> None:
        super().__init__("moderated")
        self.result = result


def _backoff(attempt: int, base: float, cap: float) -> float:
    return float(min(cap, base * 2.0 ** (attempt - 1)) * random.uniform(0.8, 1.2))
