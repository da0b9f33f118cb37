"""The bodies the bot sends to xAI: a request in the official shape (``image: {url}``, edits apart), streamable.

Pure functions and plain types, no I/O, so each can be tested (and fuzzed) alone.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

from services.jobs.models import MediaInput, VideoOptions
from services.xai.catalog import CLASSIC as CLASSIC_MODEL  # the only model that edits and extends

MEDIA_SLICE = 3 * 128 * 1024  # media bytes per base64 piece: a multiple of 3, so the pieces join exactly


@dataclass(frozen=True, slots=True)
class GenerationRequest:
    """Text to video, or image to video when ``image`` / ``image_url`` is given."""

    prompt: str
    options: VideoOptions
    image: MediaInput | None = None
    image_url: str | None = None
    model: str = CLASSIC_MODEL  # each job goes to its own model (services/xai/catalog.py)
    user: str | None = None  # a salted hash of the requester (services/jobs/attribution.py), never their id


@dataclass(frozen=True, slots=True)
class EditRequest:
    """Edit a video; xAI keeps its length, shape and resolution, so there are no options."""

    prompt: str
    video: MediaInput | None = None
    video_url: str | None = None
    model: str = CLASSIC_MODEL
    user: str | None = None


@dataclass(frozen=True, slots=True)
class ExtendRequest:
    """Continue a video from its last frame by ``duration`` seconds (2 to 10); the prompt may be empty.
    Like an edit, it keeps the input's shape and resolution, so there are no other options."""

    prompt: str
    duration: int
    video: MediaInput | None = None
    video_url: str | None = None
    model: str = CLASSIC_MODEL
    user: str | None = None


SubmitRequest = GenerationRequest | EditRequest | ExtendRequest
_WITH_VIDEO = (EditRequest, ExtendRequest)  # the requests whose media is a video


def data_uri(media: MediaInput) -> str:
    return f"data:{media.mime_type};base64,{base64.b64encode(media.data).decode('ascii')}"


def _opening(request: SubmitRequest) -> dict[str, Any]:
    """What every body starts with: the request's model, its prompt and (when known) whom it is for."""
    body: dict[str, Any] = {"model": request.model, "prompt": request.prompt}
    if request.user is not None:
        body["user"] = request.user
    return body


def submission(request: SubmitRequest) -> tuple[str, dict[str, Any]]:
    """The path and JSON body for a submit, in the official shape (``image: {url}``, edits and extensions apart)."""
    body = _opening(request)
    if isinstance(request, _WITH_VIDEO):
        url = data_uri(request.video) if request.video is not None else request.video_url
        if not url:
            raise ValueError("an edit or an extension needs a video")
        if isinstance(request, EditRequest):
            return "/videos/edits", {**body, "video": {"url": url}}
        # ExtendVideoRequest: the added seconds only (2 to 10); the input's shape and resolution carry on.
        if not request.prompt:
            del body["prompt"]  # optional: the clip simply goes on
        return "/videos/extensions", {**body, "video": {"url": url}, "duration": request.duration}
    options = request.options
    image = data_uri(request.image) if request.image is not None else request.image_url
    if options.duration is not None:
        body["duration"] = options.duration
    # With an image the output takes the image's shape; xAI ignores (or once stretched to) an aspect ratio.
    if options.aspect_ratio is not None and not image:
        body["aspect_ratio"] = options.aspect_ratio
    if options.resolution is not None:
        body["resolution"] = options.resolution
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


def encoded_submission(request: SubmitRequest) -> tuple[str, Body]:
    """``submission``'s path, and its body ready to stream (see ``Body``)."""
    media = request.video if isinstance(request, _WITH_VIDEO) else request.image
    if media is None:
        path, body = submission(request)
        return path, Body(json.dumps(body).encode())
    marker = f"media-{uuid.uuid4().hex}"
    if isinstance(request, _WITH_VIDEO):
        path, body = submission(replace(request, video=None, video_url=marker))
    else:
        path, body = submission(replace(request, image=None, image_url=marker))
    head, tail = json.dumps(body).split(json.dumps(marker), 1)
    opening = json.dumps(f"data:{media.mime_type};base64,")[:-1]  # the opening quote and the escaped prefix
    return path, Body((head + opening).encode(), media.data, ('"' + tail).encode())
