"""The emulator's extensions (``POST /v1/videos/extensions``): what xAI checks, and the longer clip it makes.

As xAI does (which models extend at all is xai_models.py's: the classic one only): ``duration`` 2 to 10 (6 when
left out), and a ``video`` whose clip is 2 to 15 s long, judged here by decoding it with PyAV. The result is a real
MP4 as long as the input and the added seconds together (made by tests/mediafactory.py).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from io import BytesIO
from typing import Any

import av

from tests.mediafactory import make_mp4

MIN_INPUT_S, MAX_INPUT_S = 2.0, 15.0
MIN_ADDED_S, MAX_ADDED_S, DEFAULT_ADDED_S = 2, 10, 6


@dataclass(frozen=True)
class Extension:
    """What an accepted extension makes: the clip, and its length as the poll reports it."""

    video: bytes
    duration: int


def check_extension(body: dict[str, Any]) -> tuple[str | None, Extension | None]:
    """xAI's refusal of an extension request (None when it is fine), and what it will make."""
    extra = {"aspect_ratio", "resolution", "image"} & set(body)
    if extra:
        return f"Unsupported fields for video extensions: {', '.join(sorted(extra))}.", None
    added = body.get("duration", DEFAULT_ADDED_S)
    if not isinstance(added, int) or isinstance(added, bool) or not MIN_ADDED_S <= added <= MAX_ADDED_S:
        return f"Extension duration must be between {MIN_ADDED_S} and {MAX_ADDED_S} seconds, got {added!r}.", None
    video = body.get("video")
    url = video.get("url") if isinstance(video, dict) else None
    if not isinstance(url, str) or not url.startswith("data:video/"):
        return "video.url must be a data URI of an MP4 (this emulator fetches no URLs).", None
    try:
        data = base64.b64decode(url.split(",", 1)[1], validate=True)
    except (ValueError, IndexError, binascii.Error):
        return "video.url is not valid base64.", None
    seconds = clip_seconds(data)
    if seconds is None:
        return "The input video could not be decoded.", None
    if not MIN_INPUT_S <= seconds <= MAX_INPUT_S + 0.05:
        return f"Input video must be between 2 and 15 seconds long, got {seconds:.1f}s.", None
    total = round(seconds) + added
    return None, Extension(make_mp4(float(total)), total)


def clip_seconds(data: bytes) -> float | None:
    """How long a clip plays, by decoding its video stream (None when it is not a video)."""
    try:
        with av.open(BytesIO(data), "r") as container:
            stream = container.streams.video[0]
            last = 0.0
            for frame in container.decode(stream):
                if frame.time is not None:
                    last = max(last, frame.time + float(1 / (stream.average_rate or 1)))
            return last
    except (av.FFmpegError, IndexError, ValueError):
        return None
