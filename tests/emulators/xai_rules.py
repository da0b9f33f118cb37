"""What the xAI emulator records, checks and answers: its records, request validation, answer bodies (the models
and their prices: xai_models.py).

Kept beside ``xai_emulator`` so the server there reads as what it does with a request, not how each answer
is spelled. Every error body is xAI's flat ``{"code", "error"}``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from .xai_emulator import Outcome


@dataclass
class DownloadRecord:
    """One request to the video host: for which job, how it was answered, and whether the copy was cut."""

    request_id: str | None
    status: int
    size: int
    damaged: bool


@dataclass
class XaiRequestRecord:
    method: str
    path: str
    body: Any
    auth_ok: bool
    status: int
    time: float


@dataclass
class EmulatedJob:
    request_id: str
    endpoint: str
    body: dict[str, Any]
    outcome: Outcome
    generation_s: float
    created_at: float
    ready_at: float | None = None
    seen_done_at: float | None = None  # when the first poll that found it done arrived
    first_download_at: float | None = None
    poll_count: int = 0
    downloads: int = 0  # copies served whole or cut
    video: bytes | None = None  # an extension's own, longer clip (tests/emulators/xai_extend.py)
    duration: int | None = None  # and its length

    def elapsed(self) -> float:
        return time.monotonic() - self.created_at


@dataclass
class Fault:
    method: str
    pattern: re.Pattern[str]
    status: int
    times: int
    body: bytes
    headers: dict[str, str]
    hang_s: float | None
    reset: bool


ASPECTS = {"1:1", "16:9", "9:16", "4:3", "3:4", "3:2", "2:3"}
RESOLUTIONS = {"480p", "720p", "1080p"}


def finished_answer(outcome: Outcome, model: str, cost: int, video_url: str, duration: Any) -> web.Response:
    """A poll's answer once the job's generation time has passed, in the shape its outcome calls for."""
    if outcome.kind == "done":
        return ok(
            {
                "status": "done",
                "progress": 100,
                "model": model,
                "usage": {"cost_in_usd_ticks": cost},
                "video": {"url": video_url, "duration": duration, "respect_moderation": True},
            }
        )
    if outcome.kind == "legacy_done":
        return ok({"model": model, "video": {"url": video_url, "duration": duration}})
    if outcome.kind == "moderated":
        return ok(
            {
                "status": "done",
                "progress": 100,
                "model": model,
                "usage": {"cost_in_usd_ticks": cost},
                "video": {"url": "", "duration": duration, "respect_moderation": False},
            }
        )
    if outcome.kind == "moderated_400":
        return error(400, "imagine:content-moderated", "Generated video rejected by content moderation.")
    if outcome.kind == "failed":
        return ok(
            {
                "status": "failed",
                "video": {"duration": 0, "respect_moderation": True},
                "error": {"code": outcome.error_code, "message": outcome.error_message},
            }
        )
    return ok({"status": "expired", "model": model})


async def read_paced(
    request: web.Request, bytes_per_s: float | None, stall_after: int | None, took_in: Callable[[int], None]
) -> bytes:
    """A body taken in over a slow link: ``bytes_per_s`` at most, and after ``stall_after`` bytes not at all
    (until the client gives up and drops the connection). ``took_in`` hears of every piece."""
    sock = request.transport.get_extra_info("socket") if request.transport is not None else None
    if sock is not None:  # a small window, so the link (not this server's buffer) sets the pace
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    chunks: list[bytes] = []
    received = 0
    while chunk := await request.content.read(16 * 1024):
        chunks.append(chunk)
        received += len(chunk)
        took_in(len(chunk))
        if stall_after is not None and received >= stall_after:
            while still_connected(sock):
                await asyncio.sleep(0.05)
            raise ConnectionResetError("the client went away mid-body")
        if bytes_per_s is not None:
            await asyncio.sleep(len(chunk) / bytes_per_s)
    return b"".join(chunks)


def still_connected(sock: socket.socket | None) -> bool:
    """Whether the client is still there. Asked of the kernel (TCP_INFO's state): a server that stopped reading
    never hears of a close through its transport."""
    if sock is None or sock.fileno() < 0:
        return False
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)
    except OSError:
        return False
    return info[0] == 1  # TCP_ESTABLISHED


def validate_generation(body: dict[str, Any]) -> str | None:
    image = body.get("image")
    if not body.get("prompt") and not image:
        return "A prompt is required."
    duration = body.get("duration")
    if duration is not None and (not isinstance(duration, int) or not 1 <= duration <= 15):
        return f"Duration must be between 1 and 15 seconds, got {duration!r}."
    if body.get("aspect_ratio") is not None and body["aspect_ratio"] not in ASPECTS:
        return f"Unsupported aspect_ratio {body['aspect_ratio']!r}."
    if body.get("resolution") is not None and body["resolution"] not in RESOLUTIONS:
        return f"Unsupported resolution {body['resolution']!r}."
    if image is not None:
        url = image.get("url") if isinstance(image, dict) else None
        if not isinstance(url, str) or not url.startswith(("data:image/", "https://", "http://")):
            return "image.url must be an https URL or a data URI."
        if url.startswith("data:") and not decodes(url):
            return "image.url is not valid base64."
    return None


def validate_edit(body: dict[str, Any]) -> str | None:
    extra = {"duration", "aspect_ratio", "resolution"} & set(body)
    if extra:
        return f"Unsupported fields for video edits: {', '.join(sorted(extra))}."
    if not body.get("prompt"):
        return "A prompt is required."
    video = body.get("video")
    url = video.get("url") if isinstance(video, dict) else None
    if not isinstance(url, str) or not url.startswith(("data:video/", "https://", "http://")):
        return "video.url must be an https URL or a data URI."
    if url.startswith("data:") and not decodes(url):
        return "video.url is not valid base64."
    return None


def decodes(uri: str) -> bool:
    try:
        base64.b64decode(uri.split(",", 1)[1], validate=True)
    except (ValueError, IndexError):
        return False
    return True


def shorten(body: Any) -> Any:
    """Data URIs cut to their first 64 characters (plus the length) so records stay readable."""
    if isinstance(body, dict):
        return {key: shorten(value) for key, value in body.items()}
    if isinstance(body, str) and body.startswith("data:") and len(body) > 64:
        return f"{body[:64]}...({len(body)} chars)"
    return body


def json_(value: Any) -> bytes:
    return json.dumps(value).encode()


def ok(value: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=json_(value), content_type="application/json")


def error(status: int, code: str, message: str, *, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status, body=json_({"code": code, "error": message}), content_type="application/json", headers=headers
    )
