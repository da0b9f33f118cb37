"""The HTTP client of xAI's video API, in the official wire format.

Shaped like a small SDK: an injected aiohttp session, one ``_request`` path that every call goes
through (budget slot, retries, error mapping), the pure bodies of ``services.xai.bodies`` and the answer
readers of ``services.xai.answers``. Answers become a handful of typed outcomes (returned) and errors
(``services.xai.errors``, raised) whose ``str()`` is a true sentence a person understands.
The API key is sent in one place and never appears anywhere else. A submit's body is ``services.xai.upload``'s:
only xAI's answer is timed by ``request_timeout_s``, sending the body gets a deadline by its size, and a body
that never went out whole is a request xAI provably did not take. A submit may be called off until it goes on
the wire (``services.xai.gate``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import quote

import aiohttp

from services.config import Secret
from services.xai.answers import Moderated, PollResult, http_error, read_poll, request_id_of, retry_after_seconds
from services.xai.bodies import Body, SubmitRequest, encoded_submission
from services.xai.budget import RequestBudget
from services.xai.errors import (
    NOT_ALL_SENT,
    UNREACHABLE,
    XaiError,
    XaiProtocolError,
    XaiProxyRefused,
    XaiRateLimited,
    XaiServerError,
    XaiUnavailable,
    proxy_refused,
    unsure,
)
from services.xai.gate import SubmitGate
from services.xai.upload import MIN_UPLOAD_BYTES_PER_S, JsonBody

log = logging.getLogger(__name__)

USER_AGENT = "grok-video-bot/0.1"
MAX_ANSWER_BYTES = 1024 * 1024  # xAI's answers are a few hundred bytes; a megabyte is not one of them
THREAD_JSON_BYTES = 64 * 1024  # answers larger than this are parsed in a thread

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
        budget: RequestBudget | None = None,
        request_timeout_s: float = 30.0,
        min_upload_bytes_per_s: float = MIN_UPLOAD_BYTES_PER_S,
        max_retries: int = 2,
        max_rate_limit_retries: int = 5,
        rate_limit_backoff_s: float = 1.0,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._session = session
        self._api_key = api_key
        self.base_url = base_url.rstrip("/")
        self._budget = budget
        # The answer is timed, not the upload: no total limit (a 70 MB edit body on a modest uplink takes minutes
        # to send), a limit on connecting and on each wait for the answer, and a deadline of our own for sending
        # the body that grows with its size (``_deadline_for``).
        self._answer_s = request_timeout_s
        self._timeout = aiohttp.ClientTimeout(total=None, sock_connect=request_timeout_s, sock_read=request_timeout_s)
        self._min_upload_rate = min_upload_bytes_per_s
        self._max_retries = max_retries
        self._max_rate_limit_retries = max_rate_limit_retries
        self._rate_limit_backoff_s = rate_limit_backoff_s  # first wait after a 429 without Retry-After
        self._sleep = sleep
        self.rate_limited = 0  # 429s received, for /metrics

    def __repr__(self) -> str:
        return f"XaiClient(base_url={self.base_url!r})"

    async def submit(self, request: SubmitRequest, *, gate: SubmitGate | None = None) -> str:
        """Start a job at xAI and return its request id. Raises ``SubmitCalledOff`` if ``gate`` was
        called off before the request was sent."""
        path, body = encoded_submission(request)  # to the request's own model; the media is encoded while it is sent
        status, payload, _ = await self._request("POST", path, body, idempotent=False, gate=gate)
        request_id = request_id_of(payload)
        if request_id is None:
            raise XaiProtocolError(unsure("xAI accepted the request but sent no usable job id"), status=status)
        return request_id

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
        models = payload.get("models") or payload.get("data")
        if not isinstance(models, list):
            return []
        return [m["id"] for m in models if isinstance(m, Mapping) and isinstance(m.get("id"), str) and m["id"]]

    async def _request(
        self,
        method: str,
        path: str,
        body: Body | None,
        *,
        idempotent: bool,
        gate: SubmitGate | None = None,
    ) -> tuple[int, Any, str]:
        """One logical call: budget slot per attempt, retries by policy, errors mapped.

        Only submits are not idempotent; their errors say whether xAI may have the request."""
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
                await gate.going_out()  # from here on xAI may receive it (raises SubmitCalledOff when called off)
            payload_out = JsonBody(body) if body is not None else None
            try:
                status, payload, raw, retry_after = await self._attempt(method, path, payload_out, headers)
            except aiohttp.ClientConnectorError:
                # Nothing was sent: safe to try again even for a submit.
                if gate is not None:
                    await gate.turned_away()
                if transient < self._max_retries:
                    transient += 1
                    await self._sleep(_backoff(transient, 0.25, 8.0))
                    continue
                raise XaiUnavailable(UNREACHABLE) from None
            except aiohttp.ClientHttpProxyError as refused:
                # The proxy said no to the tunnel: the request never reached xAI, and only the admin can fix it.
                if gate is not None:
                    await gate.turned_away()
                raise XaiProxyRefused(proxy_refused(refused.status), status=refused.status) from None
            except (TimeoutError, aiohttp.ClientError, _BrokenJson) as problem:
                if payload_out is not None and not payload_out.complete:
                    # The body never went out whole, so xAI started nothing: handed back, and safe to send again
                    # unless it was the link's slowness (another try would be as slow).
                    if gate is not None:
                        await gate.turned_away()
                    if isinstance(problem, aiohttp.ClientError) and transient < self._max_retries:
                        transient += 1
                        log.info("%s %s: the connection broke while the body went out; sending it again", method, path)
                        await self._sleep(_backoff(transient, 0.25, 8.0))
                        continue
                    log.warning("%s %s: the body could not be sent whole (%s)", method, path, type(problem).__name__)
                    raise XaiUnavailable(NOT_ALL_SENT) from None
                what = (
                    "xAI sent an answer the bot could not read"
                    if isinstance(problem, _BrokenJson)
                    else "xAI did not answer in time"
                    if isinstance(problem, TimeoutError)
                    else "The connection to xAI broke"
                )
                if idempotent and transient < self._max_retries:
                    transient += 1
                    log.info("%s %s: %s; retrying", method, path, what)
                    await self._sleep(_backoff(transient, 0.25, 8.0))
                    continue
                kind = XaiProtocolError if isinstance(problem, _BrokenJson) else XaiUnavailable
                raise kind(f"{what}." if idempotent else unsure(what)) from None
            answered_early = payload_out is not None and not payload_out.complete  # before it had the whole body
            if 200 <= status < 300:
                return status, payload, raw
            mapped = http_error(status, payload, raw, polling=method == "GET" and path.startswith("/videos/"))
            if isinstance(mapped, Moderated):
                raise _ModeratedAnswer(mapped)
            if gate is not None and (answered_early or isinstance(mapped, XaiRateLimited)):
                await gate.turned_away()  # xAI turned it away (or answered before it had it all): nothing started
            if isinstance(mapped, XaiRateLimited):
                self.rate_limited += 1
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
            if not idempotent and not answered_early and isinstance(mapped, XaiServerError):
                mapped = XaiServerError(unsure(f"xAI had a server error (HTTP {status})"), status=status)
            raise self._scrubbed(mapped)

    def _scrubbed(self, error: XaiError) -> XaiError:
        """xAI's own words go into messages; a proxy that echoes the Authorization header must not leak the key."""
        key = self._api_key.reveal()
        if key and key in str(error):
            error.args = (str(error).replace(key, "[redacted]"),)
        return error

    def _deadline_for(self, body: JsonBody | None) -> float:
        """Seconds a request may take until its answer starts to be timed: the answer's limit, plus the body's
        size at ``min_upload_bytes_per_s`` (a 70 MB edit is allowed about 18 minutes at the default)."""
        return self._answer_s + (body.size / self._min_upload_rate if body is not None and body.size else 0.0)

    async def _attempt(
        self, method: str, path: str, body: JsonBody | None, headers: dict[str, str]
    ) -> tuple[int, Any, str, float | None]:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(self._deadline_for(body)) as limit:
            if body is not None:  # once the body is out, the answer has the usual time to come
                body.on_complete = lambda: limit.reschedule(loop.time() + self._answer_s)
            async with self._session.request(
                method,
                self.base_url + path,
                data=body,
                headers=headers,
                timeout=self._timeout,
                allow_redirects=False,  # the key goes to xAI's address only, never where a redirect points
            ) as response:
                data, whole = await _read_capped(response.content, MAX_ANSWER_BYTES)
                retry_after = retry_after_seconds(response.headers.get("Retry-After"))
                status = response.status
        raw = data.decode("utf-8", errors="replace")
        log.debug("%s %s -> %s (%d bytes)", method, path, status, len(data))
        success = 200 <= status < 300
        if success and not whole:
            raise _BrokenJson
        if not raw.strip():
            return status, None, raw, retry_after
        try:
            payload = json.loads(raw) if len(data) <= THREAD_JSON_BYTES else await asyncio.to_thread(json.loads, raw)
        except (ValueError, RecursionError):  # RecursionError: a deeply nested answer
            if success:
                raise _BrokenJson from None
            payload = None  # error bodies may be plain text
        return status, payload, raw, retry_after


async def _read_capped(content: aiohttp.StreamReader, limit: int) -> tuple[bytes, bool]:
    """At most ``limit`` bytes of an answer, and whether that was all of it."""
    chunks: list[bytes] = []
    total = 0
    async for chunk in content.iter_chunked(64 * 1024):
        chunks.append(chunk)
        total += len(chunk)
        if total > limit:
            return b"".join(chunks)[:limit], False
    return b"".join(chunks), True


class _BrokenJson(Exception):
    pass


class _ModeratedAnswer(Exception):
    def __init__(self, result: Moderated) -> None:
        super().__init__("moderated")
        self.result = result


def _backoff(attempt: int, base: float, cap: float) -> float:
    return float(min(cap, base * 2.0 ** (attempt - 1)) * random.uniform(0.8, 1.2))
