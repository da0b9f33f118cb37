"""Media work with PyAV: judge inputs by their content, probe outputs, shrink videos to fit, download safely.

All decoding and encoding runs in a thread (``asyncio.to_thread``), never on the event loop. Every
problem with a person's file becomes a ``MediaError`` whose text says what is wrong and what to do.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import struct
from dataclasses import dataclass
from fractions import Fraction
from io import BytesIO
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import av
import yarl

from services.hosts import AllowedHosts

log = logging.getLogger(__name__)

EDIT_CODECS = frozenset({"h264", "hevc", "av1"})
MP4_FORMATS = ("mov", "mp4")


class MediaError(Exception):
    """A file cannot be used. ``str()`` is the sentence for the person."""


class DownloadError(Exception):
    """A download failed. ``transient`` says whether trying again may help."""

    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


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


def describe_size(n: int) -> str:
    if n < 1024 * 1024:
        return f"{n / 1024:.0f} KiB"
    return f"{n / 1024 / 1024:.1f} MiB"


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


def _mp4_complete(data: bytes) -> bool:
    """Whether the top-level MP4 boxes fill the file exactly: a cut-off upload ends inside its last box."""
    offset = 0
    while offset < len(data):
        if offset + 8 > len(data):
            return False
        size = int.from_bytes(data[offset : offset + 4], "big")
        if size == 1:
            if offset + 16 > len(data):
                return False
            size = int.from_bytes(data[offset + 8 : offset + 16], "big")
        elif size == 0:  # the last box runs to the end of the file
            return True
        if size < 8 or offset + size > len(data):
            return False
        offset += size
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


def _probe(source: Path | BytesIO, size: int, *, decode_all: bool = False) -> VideoInfo:
    """Read a video's facts; with ``decode_all`` also decode every frame, which catches cut-off files."""
    with av.open(source, "r") as container:
        if not container.streams.video:
            raise MediaError("That file has no video in it. Attach an MP4 video.")
        stream = container.streams.video[0]
        duration = None
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / av.time_base
        if duration is None or duration <= 0:
            duration = _decoded_duration(container)
        elif decode_all:
            frame_rate = float(stream.average_rate or 24)
            decoded = _decoded_duration(container) + 1 / frame_rate
            if decoded < duration * 0.9:
                raise MediaError("That video is cut off (it ends before it says it does). Attach the whole file.")
        audio = container.streams.audio[0].codec_context.name if container.streams.audio else None
        return VideoInfo(
            duration_s=duration,
            width=stream.codec_context.width,
            height=stream.codec_context.height,
            video_codec=stream.codec_context.name,
            audio_codec=audio,
            container=container.format.name,
            size_bytes=size,
        )


def _decoded_duration(container: av.container.InputContainer) -> float:
    last = 0.0
    for frame in container.decode(video=0):
        if frame.time is not None:
            last = max(last, float(frame.time))
    return last


async def probe_video(path: Path) -> VideoInfo:
    """What a finished video is; MediaError when it is not a playable video."""
    try:
        return await asyncio.to_thread(_probe, path, path.stat().st_size)
    except (av.FFmpegError, ValueError, IndexError, OSError):
        raise MediaError("The video file is damaged and cannot be played.") from None


async def check_edit_video(data: bytes, *, max_seconds: float = 8.7, max_bytes: int = 50 * 1024 * 1024) -> VideoInfo:
    """An MP4 (H.264, H.265 or AV1) no longer than ``max_seconds``, judged by its content."""
    advice = f"Attach an MP4 video up to {max_seconds:g} seconds long."
    if not data:
        raise MediaError(f"That video is empty. {advice}")
    if len(data) > max_bytes:
        raise MediaError(f"That video is {describe_size(len(data))}; the limit is {describe_size(max_bytes)}. {advice}")
    if sniff_image_type(data) is not None:
        raise MediaError(f"That file is an image, not a video. {advice} (To animate an image, attach it as image.)")
    try:
        info = await asyncio.to_thread(_probe, BytesIO(data), len(data), decode_all=True)
    except MediaError:
        raise
    except (av.FFmpegError, ValueError, IndexError):
        raise MediaError(f"That file is not a video I can read, or it is cut off. {advice}") from None
    if not any(name in info.container.split(",") for name in MP4_FORMATS):
        raise MediaError(f"That video is not an MP4. {advice}")
    if not _mp4_complete(data):
        raise MediaError("That video is cut off (the file ends too early). Attach the whole file again.")
    if info.video_codec not in EDIT_CODECS:
        raise MediaError(f"That video uses the {info.video_codec} codec; xAI edits H.264, H.265 or AV1 MP4s. {advice}")
    if info.duration_s <= 0:
        raise MediaError(f"That video has no frames. {advice}")
    if info.duration_s > max_seconds + 0.05:
        raise MediaError(
            f"That video is {info.duration_s:.1f} seconds long; xAI can edit at most {max_seconds:g} seconds. "
            "Trim it and attach it again."
        )
    return info


# -- making a video fit ------------------------------------------------------------------------

AUDIO_BITRATE = 128_000
CONTAINER_HEADROOM = 0.92


def _reencode(src: Path, dst: Path, total_bitrate: int) -> None:
    """H.264 + AAC MP4 with faststart at roughly ``total_bitrate`` bits per second, downscaled if need be."""
    with av.open(str(src), "r") as source:
        in_video = source.streams.video[0]
        in_audio = source.streams.audio[0] if source.streams.audio else None
        video_bitrate = max(100_000, total_bitrate - (AUDIO_BITRATE if in_audio else 0))
        width, height = in_video.codec_context.width, in_video.codec_context.height
        # Below ~0.08 bits per pixel per frame, a smaller picture looks better than a blocky one.
        rate = in_video.average_rate or Fraction(24)
        while width * height * float(rate) * 0.08 > video_bitrate and min(width, height) > 240:
            width, height = int(width * 0.75), int(height * 0.75)
        width, height = width - width % 2, height - height % 2
        with av.open(str(dst), "w", format="mp4", options={"movflags": "+faststart"}) as out:
            out_video = out.add_stream("libx264", rate=rate)
            out_video.width, out_video.height, out_video.pix_fmt = width, height, "yuv420p"
            out_video.bit_rate = video_bitrate
            out_video.options = {
                "preset": "veryfast",
                "maxrate": str(video_bitrate),
                "bufsize": str(video_bitrate * 2),
            }
            out_audio = None
            if in_audio is not None:
                out_audio = out.add_stream("aac", rate=in_audio.codec_context.sample_rate or 44100)
                out_audio.bit_rate = AUDIO_BITRATE
            streams = [in_video] + ([in_audio] if in_audio is not None else [])
            for packet in source.demux(*streams):
                for frame in packet.decode():
                    if isinstance(frame, av.VideoFrame):
                        scaled = frame.reformat(width=width, height=height, format="yuv420p")
                        scaled.pts, scaled.time_base = frame.pts, frame.time_base
                        out.mux(out_video.encode(scaled))
                    elif isinstance(frame, av.AudioFrame) and out_audio is not None:
                        frame.pts = None
                        out.mux(out_audio.encode(frame))
            out.mux(out_video.encode(None))
            if out_audio is not None:
                out.mux(out_audio.encode(None))


def _fit(src: Path, dst: Path, max_bytes: int) -> VideoInfo:
    info = _probe(src, src.stat().st_size)
    if info.size_bytes <= max_bytes:
        shutil.copyfile(src, dst)
        return info
    seconds = max(info.duration_s, 0.5)
    target = int(max_bytes * 8 * CONTAINER_HEADROOM / seconds)
    temp = dst.with_name(dst.name + ".part.mp4")
    for _ in range(3):
        _reencode(src, temp, target)
        size = temp.stat().st_size
        if size <= max_bytes:
            temp.replace(dst)
            return _probe(dst, size)
        target = int(target * max_bytes / size * 0.9)
    temp.unlink(missing_ok=True)
    raise MediaError(f"The video could not be made smaller than {describe_size(max_bytes)}.")


async def fit_to_size(src: Path, dst: Path, max_bytes: int) -> VideoInfo:
    """A copy of ``src`` at ``dst`` no larger than ``max_bytes``, re-encoded only when needed."""
    try:
        return await asyncio.to_thread(_fit, src, dst, max_bytes)
    except (av.FFmpegError, ValueError, IndexError, OSError) as error:
        raise MediaError(f"The video could not be re-encoded ({type(error).__name__}).") from None


# -- downloads ---------------------------------------------------------------------------------


MAX_REDIRECTS = 5
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


def _check_address(url: str, rules: AllowedHosts | None) -> None:
    """Refuse a URL that is not http(s), or not on an allowed host, before any request is made."""
    if rules is not None:
        refusal = rules.refusal(url)
    else:
        parts = urlsplit(url)
        refusal = None if parts.scheme in ("http", "https") and parts.hostname else "the address is not an http(s) URL"
    if refusal is not None:
        log.warning("Refused to download %s: %s", _safe_url(url), refusal)
        raise DownloadError(refusal, transient=False)


def _safe_url(url: str) -> str:
    """scheme://host/path only: query strings of signed URLs are bearer secrets."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


async def download(
    session: aiohttp.ClientSession,
    url: str,
    dest: Path,
    *,
    max_bytes: int,
    timeout_s: float = 120.0,
    allowed_hosts: AllowedHosts | None = None,
) -> int:
    """Stream ``url`` into ``dest`` (via a .part file), refusing more than ``max_bytes``; returns the size.

    With ``allowed_hosts``, the URL and every redirect it leads to must be on an allowed host, checked
    before each request is made."""
    _check_address(url, allowed_hosts)
    partial = dest.with_name(dest.name + ".part")
    size = 0
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    try:
        for _ in range(MAX_REDIRECTS):
            response = await session.get(url, timeout=timeout, allow_redirects=False)
            location = response.headers.get("Location") if response.status in REDIRECT_STATUSES else None
            if location is None:
                break
            response.release()
            url = str(response.url.join(yarl.URL(location)))
            _check_address(url, allowed_hosts)
        else:
            raise DownloadError("the address redirects too many times", transient=False)
        async with response:
            if response.status >= 400:
                raise DownloadError(f"the server answered HTTP {response.status}", transient=response.status >= 500)
            declared = response.content_length
            if declared is not None and declared > max_bytes:
                raise DownloadError(
                    f"the file is {describe_size(declared)}, over the {describe_size(max_bytes)} limit", transient=False
                )
            with partial.open("wb") as sink:
                async for chunk in response.content.iter_chunked(256 * 1024):
                    size += len(chunk)
                    if size > max_bytes:
                        raise DownloadError(f"the file is over the {describe_size(max_bytes)} limit", transient=False)
                    await asyncio.to_thread(sink.write, chunk)
            if declared is not None and size < declared:
                raise DownloadError("the download was cut short", transient=True)
    except DownloadError:
        partial.unlink(missing_ok=True)
        raise
    except TimeoutError:
        partial.unlink(missing_ok=True)
        raise DownloadError("the download timed out", transient=True) from None
    except aiohttp.ClientPayloadError:
        partial.unlink(missing_ok=True)
        raise DownloadError("the download was cut short", transient=True) from None
    except aiohttp.ClientError as error:
        partial.unlink(missing_ok=True)
        log.info("Download of %s failed: %s", _safe_url(url), type(error).__name__)
        raise DownloadError("the connection broke during the download", transient=True) from None
    partial.replace(dest)
    log.debug("Downloaded %s (%d bytes)", _safe_url(url), size)
    return size
