"""Judging files by their content with PyAV: inputs (images, videos to edit) and finished results.

Names and declared types can lie, so a file is judged by its bytes: its magic, its header and, for a
video, every stream decoded to its end (bounded by ``services.media.decoding``). All decoding runs in a
thread (``asyncio.to_thread``), never on the event loop. Every problem with a person's file becomes a
``MediaError`` whose text says what is wrong and what to do.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable
from dataclasses import dataclass, replace
from io import BytesIO
from pathlib import Path

import av

from services.jobs.models import MAX_DURATION_S, MAX_EDIT_INPUT_S
from services.media import decoding
from services.media.sizes import describe_size

EDIT_CODECS = frozenset({"h264", "hevc", "av1"})
MP4_FORMATS = ("mov", "mp4")


class MediaError(Exception):
    """A file cannot be used. ``str()`` is the sentence for the person."""


@dataclass(frozen=True, slots=True)
class VideoInfo:
    duration_s: float
    width: int
    height: int
    video_codec: str
    audio_codec: str | None
    container: str
    size_bytes: int


@dataclass(frozen=True, slots=True)
class ImageInfo:
    mime_type: str
    width: int
    height: int


# -- images ------------------------------------------------------------------------------------


def sniff_image_type(data: bytes) -> str | None:
    """The image type by its magic bytes (names and declared types can lie)."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def _header_dimensions(data: bytes, mime: str) -> tuple[int, int] | None:
    """Width and height read from the header alone, so a decompression bomb is refused before decoding."""
    if mime == "image/png" and len(data) >= 24 and data[12:16] == b"IHDR":
        width, height = struct.unpack(">II", data[16:24])
        return int(width), int(height)
    if mime == "image/webp" and len(data) >= 30:
        chunk = data[12:16]
        if chunk == b"VP8X":
            return 1 + int.from_bytes(data[24:27], "little"), 1 + int.from_bytes(data[27:30], "little")
        if chunk == b"VP8 " and data[23:26] == b"\x9d\x01\x2a":
            width, height = struct.unpack("<HH", data[26:30])
            return width & 0x3FFF, height & 0x3FFF
        if chunk == b"VP8L" and data[20] == 0x2F:
            bits = int.from_bytes(data[21:25], "little")
            return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if mime == "image/jpeg":
        index = 2
        while index + 9 < len(data):
            if data[index] != 0xFF:
                index += 1
                continue
            marker = data[index + 1]
            if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
                height, width = struct.unpack(">HH", data[index + 5 : index + 9])
                return int(width), int(height)
            if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
                index += 2
                continue
            index += 2 + int.from_bytes(data[index + 2 : index + 4], "big")
    return None


def _image_complete(data: bytes, mime: str) -> bool:
    """Whether the file reaches its format's end marker: decoders happily show a cut-off image's top part."""
    if mime == "image/png":
        return data.rfind(b"IEND") > 0
    if mime == "image/jpeg":
        return data.rfind(b"\xff\xd9") > data.rfind(b"\xff\xda") > 0  # end-of-image after the last scan
    if mime == "image/webp":
        return len(data) >= int.from_bytes(data[4:8], "little") + 8
    return True


def _decode_one_frame(data: bytes) -> tuple[int, int]:
    with av.open(BytesIO(data), "r") as container:
        for frame in container.decode(video=0):
            return frame.width, frame.height
    raise MediaError("That image is empty or cut off. Attach the full PNG, JPEG or WebP file.")


async def check_image(data: bytes, *, max_bytes: int = 10 * 1024 * 1024, max_pixels: int = 40_000_000) -> ImageInfo:
    """A PNG, JPEG or WebP, by content, complete, within the byte and pixel caps."""
    if not data:
        raise MediaError("That image is empty. Attach a PNG, JPEG or WebP file.")
    if len(data) > max_bytes:
        raise MediaError(
            f"That image is {describe_size(len(data))}; the limit is {describe_size(max_bytes)}. Attach a smaller one."
        )
    mime = sniff_image_type(data)
    if mime is None:
        raise MediaError("That file is not a PNG, JPEG or WebP image. Attach an image in one of those formats.")
    dimensions = _header_dimensions(data, mime)
    if dimensions is not None and dimensions[0] * dimensions[1] > max_pixels:
        raise MediaError(
            f"That image is {dimensions[0]}x{dimensions[1]} pixels, which is too large. Attach one under 40 megapixels."
        )
    if not _image_complete(data, mime):
        raise MediaError(
            "That image is damaged or cut off (the file ends too early). Attach the full PNG, JPEG or WebP file."
        )
    try:
        width, height = await asyncio.to_thread(_decode_one_frame, data)
    except (av.FFmpegError, ValueError, IndexError, StopIteration):
        raise MediaError("That image is damaged or cut off. Attach the full PNG, JPEG or WebP file.") from None
    if width * height > max_pixels:
        raise MediaError(f"That image is {width}x{height} pixels, which is too large. Attach one under 40 megapixels.")
    return ImageInfo(mime, width, height)


# -- videos ------------------------------------------------------------------------------------


CUT_OFF = "That video is cut off (it ends before it says it does). Attach the whole file."
# A result is at most MAX_DURATION_S long (an edit keeps its input's length, at most 8.7 s), and an extension
# at most its input (15 s) and the 10 s it adds; a little slack for how encoders round. Decoding a result
# stops, and it is refused as damaged, past this.
MAX_EXTENSION_RESULT_S = 15 + 10
MAX_RESULT_SECONDS = max(MAX_DURATION_S, MAX_EXTENSION_RESULT_S) + 1.0


def probe(
    source: Path | BytesIO,
    size: int,
    *,
    decode_all: bool = False,
    max_seconds: float | None = None,
    before_decoding: Callable[[VideoInfo], None] | None = None,
) -> VideoInfo:
    """Read a video's facts (in a thread: this decodes); with ``decode_all`` every stream is decoded to its end,
    which catches cut-off files.

    With ``max_seconds`` no more than that much is ever decoded: a file that says it is longer is refused
    (Overlong) before decoding starts, and one that turns out longer as soon as decoding passes it.
    ``before_decoding`` sees the facts first (duration as declared, 0 when not), to refuse cheaply what it can.
    """
    with av.open(source, "r") as container:
        if not container.streams.video:
            raise MediaError("That file has no video in it. Attach an MP4 video.")
        stream = container.streams.video[0]
        audio = container.streams.audio[0].codec_context.name if container.streams.audio else None
        info = VideoInfo(
            duration_s=0.0,
            width=stream.codec_context.width,
            height=stream.codec_context.height,
            video_codec=stream.codec_context.name,
            audio_codec=audio,
            container=container.format.name,
            size_bytes=size,
        )
        declared = decoding.declared_duration(stream, container)
        if before_decoding is not None:
            before_decoding(replace(info, duration_s=declared or 0.0))
        decoding.refuse_declared(container, max_seconds)
        if decode_all:
            try:
                decoded = decoding.decode_every_stream(container, max_seconds)
            except decoding.CutOff:
                raise MediaError(CUT_OFF) from None
            duration = declared or decoded
        else:
            duration = declared or decoding.decoded_duration(container, max_seconds)
        return replace(info, duration_s=duration)


async def probe_video(path: Path) -> VideoInfo:
    """What a finished video is; MediaError when it is not a playable video."""
    try:
        return await asyncio.to_thread(probe, path, path.stat().st_size, max_seconds=MAX_RESULT_SECONDS)
    except decoding.Overlong as long:
        raise MediaError(_longer_than_xai_makes(long)) from None
    except (av.FFmpegError, ValueError, IndexError, OSError):
        raise MediaError("The video file is damaged and cannot be played.") from None


async def check_result_video(path: Path) -> VideoInfo:
    """A downloaded result, checked as strictly as an edit input before anyone sees it: every top-level box
    inside the file, and every stream (video and audio) decodable to its end. MediaError when it is damaged.
    No more than ``MAX_RESULT_SECONDS`` is decoded, whatever the file claims."""
    try:
        return await asyncio.to_thread(_check_result, path)
    except decoding.Overlong as long:
        raise MediaError(_longer_than_xai_makes(long)) from None
    except MediaError:
        raise
    except (av.FFmpegError, ValueError, IndexError, OSError):
        raise MediaError("The video file is damaged and cannot be played.") from None


def _too_long_to_edit(long: decoding.Overlong, max_seconds: float, verb: str = "edit") -> str:
    if long.too_many_frames:
        return (
            f"That video has more frames than {max_seconds:g} seconds can hold (over {decoding.MAX_FPS} a second); "
            f"xAI can {verb} at most {max_seconds:g} seconds. Export it again at a normal frame rate and attach it."
        )
    if long.declared_s is not None:
        length = f"is {long.declared_s:.1f} seconds long"
    else:
        length = f"runs longer than {max_seconds:g} seconds (longer than it says it does)"
    return f"That video {length}; xAI can {verb} at most {max_seconds:g} seconds. Trim it and attach it again."


def _longer_than_xai_makes(long: decoding.Overlong) -> str:
    return f"The video file runs past {long.limit_s:g} seconds, longer than any video xAI makes; it is damaged."


def _check_result(path: Path) -> VideoInfo:
    if not decoding.mp4_file_complete(path):
        raise MediaError("The video file is cut off (it ends inside one of its parts).")
    try:
        return probe(path, path.stat().st_size, decode_all=True, max_seconds=MAX_RESULT_SECONDS)
    except MediaError:
        raise MediaError("The video file is damaged or cut off (it stops before its end).") from None


async def check_edit_video(
    data: bytes, *, max_seconds: float = MAX_EDIT_INPUT_S, max_bytes: int = 50 * 1024 * 1024
) -> VideoInfo:
    """An MP4 (H.264, H.265 or AV1) no longer than ``max_seconds``, judged by its content.

    Decoding (which catches a cut-off file) never goes past ``max_seconds``: a file that says it is longer is
    refused before any decoding, one that only turns out longer the moment its frames pass the limit.
    """
    return await _check_input_video(
        data, max_seconds=max_seconds, max_bytes=max_bytes, verb="edit", advice=f"up to {max_seconds:g} seconds long"
    )


async def check_extend_video(
    data: bytes, *, min_seconds: float, max_seconds: float, max_bytes: int = 50 * 1024 * 1024
) -> VideoInfo:
    """A video xAI can extend: an MP4 like an edit's, from ``min_seconds`` to ``max_seconds`` long."""
    info = await _check_input_video(
        data,
        max_seconds=max_seconds,
        max_bytes=max_bytes,
        verb="extend",
        advice=f"{min_seconds:g} to {max_seconds:g} seconds long",
    )
    if info.duration_s < min_seconds - 0.05:
        raise MediaError(
            f"That video is {info.duration_s:.1f} seconds long; xAI can only extend a video of at least "
            f"{min_seconds:g} seconds. Use a longer clip."
        )
    return info


async def _check_input_video(data: bytes, *, max_seconds: float, max_bytes: int, verb: str, advice: str) -> VideoInfo:
    """An input video for an edit or an extension (``verb``), at most ``max_seconds``; ``advice`` is its length."""
    advice = f"Attach an MP4 video {advice}."
    if not data:
        raise MediaError(f"That video is empty. {advice}")
    if len(data) > max_bytes:
        raise MediaError(f"That video is {describe_size(len(data))}; the limit is {describe_size(max_bytes)}. {advice}")
    if sniff_image_type(data) is not None:
        raise MediaError(f"That file is an image, not a video. {advice} (To animate an image, attach it as image.)")

    def judge(facts: VideoInfo) -> None:
        """What the header alone shows, refused before any decoding."""
        if not any(name in facts.container.split(",") for name in MP4_FORMATS):
            raise MediaError(f"That video is not an MP4. {advice}")
        if not decoding.mp4_complete(data):
            raise MediaError("That video is cut off (the file ends too early). Attach the whole file again.")
        if facts.video_codec not in EDIT_CODECS:
            raise MediaError(
                f"That video uses the {facts.video_codec} codec; xAI {verb}s H.264, H.265 or AV1 MP4s. {advice}"
            )

    limit = max_seconds + 0.05
    try:
        info = await asyncio.to_thread(
            probe, BytesIO(data), len(data), decode_all=True, max_seconds=limit, before_decoding=judge
        )
    except decoding.Overlong as long:
        raise MediaError(_too_long_to_edit(long, max_seconds, verb)) from None
    except MediaError:
        raise
    except (av.FFmpegError, ValueError, IndexError):
        raise MediaError(f"That file is not a video I can read, or it is cut off. {advice}") from None
    if info.duration_s <= 0:
        raise MediaError(f"That video has no frames. {advice}")
    if info.duration_s > limit:
        raise MediaError(
            f"That video is {info.duration_s:.1f} seconds long; xAI can {verb} at most {max_seconds:g} seconds. "
            "Trim it and attach it again."
        )
    return info
