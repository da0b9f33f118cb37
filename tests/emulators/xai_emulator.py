"""A loopback emulator of xAI's video API, awkward parts included.

It speaks the official wire format: submits at /v1/videos/generations, /edits and /extensions, polls at
/v1/videos/{id} answering 202 (with an empty body or a pending JSON) until the video is done, failed,
moderated (both ways xAI reports it), expired or never finishes; flat ``{"code","error"}`` error bodies;
a wrong key answered with 400; rate limits enforced per second and per minute with 429s. Finished
videos are real MP4 files served from the same server, whose addresses can go stale (``url_lifetime_s``)
and whose host can send cut-off copies with a Content-Length that matches (``Outcome.damaged_downloads``).
Everything is recorded for tests to assert on (requests, and every download in ``downloads``).
For benchmarks, generation times can vary (``generation_cv``: lognormal around ``generation_s``) and a share of
pending answers can come without a body (``empty_pending``), both drawn from ``seed``; each job records when its
video became ready (``ready_at``) and when a poll first saw it done (``seen_done_at``).
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import re
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal

from aiohttp import web

from tests.mediafactory import make_mp4

from .xai_extend import check_extension
from .xai_models import MODELS, model_problem, price_ticks
from .xai_rules import (
    DownloadRecord,
    EmulatedJob,
    Fault,
    XaiRequestRecord,
    error,
    finished_answer,
    json_,
    ok,
    read_paced,
    shorten,
    validate_edit,
    validate_generation,
)

SUBMIT_PATHS = ("/v1/videos/generations", "/v1/videos/edits", "/v1/videos/extensions")
OutcomeKind = Literal["done", "failed", "moderated", "moderated_400", "expired", "never", "legacy_done"]
# How long stopping waits for a request still being answered before cancelling it: an injected hang (or a body
# stalled on purpose) is cut off at once rather than waited out by every test that left one behind.
SHUTDOWN_GRACE_S = 0.01


@dataclass
class Outcome:
    """How one emulated job ends."""

    kind: OutcomeKind = "done"
    generation_s: float | None = None
    error_code: str = "internal_error"
    error_message: str = "The video could not be generated."
    video: bytes | None = None
    cost_usd_ticks: int | None = None
    pending_body: Literal["empty", "json", "alternate"] = "alternate"
    damaged_downloads: int = 0  # the first N downloads are cut at 2/3, with a Content-Length that matches


@dataclass
class XaiEmulator:
    api_key: str = "xai-emulated-key"
    generation_s: float = 0.3
    requests_per_minute: float | None = None
    max_concurrent: int | None = None
    retry_after_s: float | None = 1.0
    model: str = "grok-imagine-video"  # what pending answers and jobs added by hand name
    listed_models: tuple[str, ...] = ()  # what GET /video-generation-models lists (empty: every model it knows)
    submit_delay_s: float = 0.0  # an accepted submit is answered this long after it arrived (on the wire)
    poll_delay_s: float = 0.0  # a poll is answered this long after it arrived, with the job's state by then
    url_lifetime_s: float | None = None  # the video host refuses (403) an address older than this
    # A slow link: request bodies are taken in at this rate (None: at once), and after this many bytes not at all.
    upload_bytes_per_s: float | None = None
    upload_stall_after: int | None = None
    # Benchmarks: each job's generation time drawn lognormal with mean ``generation_s`` and this coefficient of
    # variation (0: all alike), and this share of pending answers sent as an empty 202 (None: as each outcome's
    # ``pending_body`` says). Both drawn from ``seed``, each from a stream of its own.
    generation_cv: float = 0.0
    empty_pending: float | None = None
    seed: int | None = None

    outcomes: list[Outcome] = field(default_factory=list)
    prompt_outcomes: dict[str, Outcome] = field(default_factory=dict)
    requests: list[XaiRequestRecord] = field(default_factory=list)
    downloads: list[DownloadRecord] = field(default_factory=list)
    jobs: dict[str, EmulatedJob] = field(default_factory=dict)
    n429: int = 0
    body_bytes_received: int = 0  # request body bytes taken in on a slow link (``upload_bytes_per_s``)
    max_active: int = 0
    output_video: bytes = b""
    base_url: str = ""
    video_host: str = ""

    def __post_init__(self) -> None:
        self.output_video = self.output_video or make_mp4(1.0)
        self._faults: list[Fault] = []
        self._recent: deque[float] = deque()
        self._violations = 0
        self._runner: web.AppRunner | None = None
        self._generation_rng = random.Random(f"{self.seed}-generation")
        self._empty_rng = random.Random(f"{self.seed}-empty")

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application(client_max_size=200 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_GRACE_S)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None and server.sockets  # type: ignore[attr-defined]
        port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        self.video_host = f"127.0.0.1:{port}"
        self.base_url = f"http://{self.video_host}/v1"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> XaiEmulator:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    # -- knobs ---------------------------------------------------------------------------------

    def fail_requests(
        self,
        method: str,
        path_pattern: str,
        *,
        status: int = 500,
        times: int = 1,
        body: bytes | str | dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        hang_s: float | None = None,
        reset: bool = False,
    ) -> None:
        """The next ``times`` matching requests get this answer (or hang, or a reset connection)."""
        if isinstance(body, dict):
            raw = json_(body)
        elif isinstance(body, str):
            raw = body.encode()
        else:
            raw = body if body is not None else json_({"code": "internal", "error": "Injected failure"})
        self._faults.append(
            Fault(method.upper(), re.compile(path_pattern), status, times, raw, headers or {}, hang_s, reset)
        )

    def add_job(
        self, outcome: Outcome | None = None, *, finished: bool = True, body: dict[str, Any] | None = None
    ) -> str:
        """A job xAI already has (as if submitted by an earlier run of the bot); returns its request id.

        ``finished``: its generation time has passed, so a poll reports its outcome at once.
        """
        outcome = outcome or Outcome()
        generation = outcome.generation_s if outcome.generation_s is not None else self.generation_s
        request_id = str(uuid.uuid4())
        created = time.monotonic() - (generation if finished else 0.0)
        body = body or {"model": self.model, "prompt": "from an earlier run", "duration": 3}
        self.jobs[request_id] = EmulatedJob(request_id, "/v1/videos/generations", body, outcome, generation, created)
        return request_id

    def submits(self) -> list[XaiRequestRecord]:
        """Every submit that reached the emulator, answered or not."""
        return [r for r in self.requests if r.method == "POST" and r.path.startswith("/v1/videos/")]

    def pending_faults(self) -> int:
        """Injected failures not used up yet (0 once every one has hit a request)."""
        return sum(fault.times for fault in self._faults)

    def rate_window_violations(self) -> int:
        """Requests that arrived when the last second already held the per-second allowance."""
        return self._violations

    def active_jobs(self) -> int:
        return sum(
            1
            for job in self.jobs.values()
            if job.ready_at is None and job.outcome.kind != "never" and job.elapsed() < job.generation_s
        )

    # -- the server ----------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        if path.startswith("/xai-vidgen-bucket/"):
            return await self._download(request)
        body: Any = None
        raw = await self._read_body(request)
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode(errors="replace")
        auth = request.headers.get("Authorization", "")
        record = XaiRequestRecord(
            request.method, path, shorten(body), auth == f"Bearer {self.api_key}", 0, time.monotonic()
        )
        self.requests.append(record)
        response = await self._answer(request, record, body, auth)
        record.status = response.status
        if response.status == 429:
            self.n429 += 1
        return response

    async def _read_body(self, request: web.Request) -> bytes:
        """The request's body, taken in as fast as the link allows (``upload_bytes_per_s``), or stalled for good
        after ``upload_stall_after`` bytes: the answer then never comes."""
        if self.upload_bytes_per_s is None and self.upload_stall_after is None:
            return await request.read()
        return await read_paced(request, self.upload_bytes_per_s, self.upload_stall_after, self._took_in)

    def _took_in(self, size: int) -> None:
        self.body_bytes_received += size

    async def _answer(self, request: web.Request, record: XaiRequestRecord, body: Any, auth: str) -> web.StreamResponse:
        fault = self._take_fault(request.method, request.path)
        if fault is not None:
            if fault.hang_s is not None:
                await asyncio.sleep(fault.hang_s)
            if fault.reset:
                transport = request.transport
                if transport is not None:
                    transport.abort()
                return web.Response(status=500)
            return web.Response(
                status=fault.status,
                body=fault.body,
                headers=fault.headers,
                content_type=None if "Content-Type" in fault.headers else "application/json",
            )
        if not auth.startswith("Bearer "):
            return error(401, "unauthenticated", "No API key provided.")
        if not record.auth_ok:
            return error(
                400,
                "Client specified an invalid argument",
                "Incorrect API key provided: xa***ey. You can obtain an API key from https://console.x.ai.",
            )
        limited = self._rate_limit()
        if limited is not None:
            return limited
        if request.method == "POST" and request.path in SUBMIT_PATHS:
            response = await self._submit(request.path, body)
            if self.submit_delay_s and response.status == 200:
                await asyncio.sleep(self.submit_delay_s)  # the job exists at xAI; its answer is still on the way
            return response
        if request.method == "GET" and request.path.startswith("/v1/videos/"):
            if self.poll_delay_s:
                await asyncio.sleep(self.poll_delay_s)
            return self._poll(request.path.removeprefix("/v1/videos/"))
        if request.method == "GET" and request.path == "/v1/video-generation-models":
            return ok({"models": [{"id": name, "object": "model"} for name in self.listed_models or MODELS]})
        return error(404, "Some requested entity was not found", f"No route {request.method} {request.path}")

    def _take_fault(self, method: str, path: str) -> Fault | None:
        for fault in self._faults:
            if fault.times > 0 and fault.method == method and fault.pattern.search(path):
                fault.times -= 1
                if fault.times == 0:
                    self._faults.remove(fault)
                return fault
        return None

    def _rate_limit(self) -> web.Response | None:
        if self.requests_per_minute is None:
            return None
        now = time.monotonic()
        while self._recent and now - self._recent[0] >= 60:
            self._recent.popleft()
        per_second = self.requests_per_minute / 60
        last_second = sum(1 for t in self._recent if now - t < 1.0)
        if last_second >= max(1.0, per_second) or len(self._recent) >= self.requests_per_minute:
            self._violations += 1
            headers = {"Retry-After": f"{self.retry_after_s:g}"} if self.retry_after_s is not None else {}
            return error(
                429,
                "resource-exhausted",
                "Too many requests for team emulated and model grok-imagine-video. Your team's rate limit "
                f"is — Requests per Second (actual/limit): {last_second + 1}/{per_second:g}.",
                headers=headers,
            )
        self._recent.append(now)
        return None

    async def _submit(self, path: str, body: Any) -> web.Response:
        if not isinstance(body, dict):
            return error(422, "invalid-argument", "The request body must be a JSON object.")
        if not body.get("model"):
            return error(422, "invalid-argument", "Missing field: model.")
        refused = model_problem(path, body)  # the models' own limits (tests/emulators/xai_models.py)
        if refused:
            return error(400, "invalid-argument", refused)
        edit = path.endswith("/edits")
        extension = None
        if path.endswith("/extensions"):
            problem, extension = await asyncio.to_thread(check_extension, body)  # PyAV: off the shared loop
        else:
            problem = validate_edit(body) if edit else validate_generation(body)
        if problem:
            return error(400, "invalid-argument", problem)
        if self.max_concurrent is not None and self.active_jobs() >= self.max_concurrent:
            return error(429, "resource-exhausted", "Too many concurrent video generations for this team.")
        outcome = self._next_outcome(str(body.get("prompt") or ""))
        request_id = str(uuid.uuid4())
        self.jobs[request_id] = EmulatedJob(
            request_id,
            path,
            body,
            outcome,
            outcome.generation_s if outcome.generation_s is not None else self._draw_generation_s(),
            time.monotonic(),
        )
        if extension is not None:  # a longer clip than its input, whatever the outcome's video
            self.jobs[request_id].video, self.jobs[request_id].duration = extension.video, extension.duration
        self.max_active = max(self.max_active, self.active_jobs())
        return ok({"request_id": request_id})

    def _draw_generation_s(self) -> float:
        if self.generation_cv <= 0:
            return self.generation_s
        sigma = math.sqrt(math.log(1 + self.generation_cv**2))
        return self._generation_rng.lognormvariate(math.log(self.generation_s) - sigma**2 / 2, sigma)

    def _next_outcome(self, prompt: str) -> Outcome:
        for key, outcome in self.prompt_outcomes.items():
            if key in prompt:
                return outcome
        return self.outcomes.pop(0) if self.outcomes else Outcome()

    def _poll(self, request_id: str) -> web.Response:
        job = self.jobs.get(request_id)
        if job is None:
            return error(404, "Some requested entity was not found", f"No deferred video with id {request_id}.")
        job.poll_count += 1
        outcome = job.outcome
        if outcome.kind == "never" or job.elapsed() < job.generation_s:
            progress = min(99, int(100 * job.elapsed() / job.generation_s)) if outcome.kind != "never" else 5
            style = outcome.pending_body
            empty = style == "empty" or (style == "alternate" and job.poll_count % 2 == 0)
            if self.empty_pending is not None:
                empty = self._empty_rng.random() < self.empty_pending
            if empty:
                return web.Response(status=202)
            return ok({"status": "pending", "progress": progress, "model": self.model}, status=202)
        if job.ready_at is None:
            job.ready_at = job.created_at + job.generation_s
            job.seen_done_at = time.monotonic()
        video_url = f"http://{self.video_host}/xai-vidgen-bucket/xai-video-{request_id}.mp4?issued={time.monotonic()!r}"
        duration = job.duration or job.body.get("duration") or 8
        billed = job.body.get("duration") if job.endpoint.endswith("/extensions") else duration  # the added seconds
        cost = price_ticks(job.endpoint, job.body, billed) if outcome.cost_usd_ticks is None else outcome.cost_usd_ticks
        return finished_answer(outcome, str(job.body.get("model") or self.model), cost, video_url, duration)

    async def _download(self, request: web.Request) -> web.StreamResponse:
        match = re.fullmatch(r"/xai-vidgen-bucket/xai-video-(.+)\.mp4", request.path)
        job = self.jobs.get(match.group(1)) if match else None
        record = DownloadRecord(job.request_id if job else None, 0, 0, damaged=False)
        self.downloads.append(record)
        response = await self._serve_video(request, job, record)
        record.status = response.status
        return response

    async def _serve_video(
        self, request: web.Request, job: EmulatedJob | None, record: DownloadRecord
    ) -> web.StreamResponse:
        fault = self._take_fault(request.method, request.path)  # the video host fails too: 5xx, hangs, resets
        if fault is not None:
            if fault.hang_s is not None:
                await asyncio.sleep(fault.hang_s)
            if fault.reset and request.transport is not None:
                request.transport.abort()
            return web.Response(status=fault.status, body=fault.body, headers=fault.headers)
        if job is None or job.ready_at is None:
            return web.Response(status=404, text="Not found")
        issued = request.query.get("issued")
        if self.url_lifetime_s is not None and issued and time.monotonic() - float(issued) > self.url_lifetime_s:
            return web.Response(status=403, text="AccessDenied: Request has expired")
        data = job.video or (job.outcome.video if job.outcome.video is not None else self.output_video)
        job.downloads += 1
        if job.downloads <= job.outcome.damaged_downloads:
            data = data[: len(data) * 2 // 3]  # cut off, yet the Content-Length matches what is sent
            record.damaged = True
        record.size = len(data)
        response = web.StreamResponse(headers={"Content-Type": "video/mp4", "Content-Length": str(len(data))})
        await response.prepare(request)
        for start in range(0, len(data), 256 * 1024):
            await response.write(data[start : start + 256 * 1024])
        await response.write_eof()
        if job.first_download_at is None:
            job.first_download_at = time.monotonic()
        return response
