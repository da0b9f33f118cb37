"""Media work with PyAV: judge inputs by their content, probe outputs, shrink videos to fit, download safely.

All decoding and encoding runs in a thread (``asyncio.to_thread``), never on the event loop. Every
problem with a person's file becomes a ``MediaError`` whose text says what is wrong and what to do.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import struct
from collections.abc import Callable
from dataclasses import dataclass, replace
from fractions import Fraction
from io import BytesIO
from pathlib import Path
from typing import NoReturn

import aiohttp
import av
import yarl

from services.jobs.models import MAX_DURATION_S, MAX_EDIT_INPUT_S
from services.media import decoding
from services.media.hosts import AllowedHosts, BadAddress, describe_address, parse_address
from services.process import proxies

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
# A result is at most MAX_DURATION_S long (an edit keeps its input's length, at most 8.7 s); a little slack
# for how encoders round. Decoding a result stops, and it is refused as damaged, past this.
MAX_RESULT_SECONDS = MAX_DURATION_S + 1.0


def _probe(
    source: Path | BytesIO,
    size: int,
    *,
    decode_all: bool = False,
    max_seconds: float | None = None,
    before_decoding: Callable[[VideoInfo], None] | None = None,
) -> VideoInfo:
    """Read a video's facts; with ``decode_all`` also decode every stream to its end, which catches cut-off files.

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
        return await asyncio.to_thread(_probe, path, path.stat().st_size, max_seconds=MAX_RESULT_SECONDS)
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


def _too_long_to_edit(long: decoding.Overlong, max_seconds: float) -> str:
    if long.too_many_frames:
        return (
            f"That video has more frames than {max_seconds:g} seconds can hold (over {decoding.MAX_FPS} a second); "
            f"xAI can edit at most {max_seconds:g} seconds. Export it again at a normal frame rate and attach it."
        )
    if long.declared_s is not None:
        length = f"is {long.declared_s:.1f} seconds long"
    else:
        length = f"runs longer than {max_seconds:g} seconds (longer than it says it does)"
    return f"That video {length}; xAI can edit at most {max_seconds:g} seconds. Trim it and attach it again."


def _longer_than_xai_makes(long: decoding.Overlong) -> str:
    return f"The video file runs past {long.limit_s:g} seconds, longer than any video xAI makes; it is damaged."


def _check_result(path: Path) -> VideoInfo:
    if not decoding.mp4_file_complete(path):
        raise MediaError("The video file is cut off (it ends inside one of its parts).")
    try:
        return _probe(path, path.stat().st_size, decode_all=True, max_seconds=MAX_RESULT_SECONDS)
    except MediaError:
        raise MediaError("The video file is damaged or cut off (it stops before its end).") from None


async def check_edit_video(
    data: bytes, *, max_seconds: float = MAX_EDIT_INPUT_S, max_bytes: int = 50 * 1024 * 1024
) -> VideoInfo:
    """An MP4 (H.264, H.265 or AV1) no longer than ``max_seconds``, judged by its content.

    Decoding (which catches a cut-off file) never goes past ``max_seconds``: a file that says it is longer is
    refused before any decoding, one that only turns out longer the moment its frames pass the limit.
    """
    advice = f"Attach an MP4 video up to {max_seconds:g} seconds long."
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
                f"That video uses the {facts.video_codec} codec; xAI edits H.264, H.265 or AV1 MP4s. {advice}"
            )

    limit = max_seconds + 0.05
    try:
        info = await asyncio.to_thread(
            _probe, BytesIO(data), len(data), decode_all=True, max_seconds=limit, before_decoding=judge
        )
    except decoding.Overlong as long:
        raise MediaError(_too_long_to_edit(long, max_seconds)) from None
    except MediaError:
        raise
    except (av.FFmpegError, ValueError, IndexError):
        raise MediaError(f"That file is not a video I can read, or it is cut off. {advice}") from None
    if info.duration_s <= 0:
        raise MediaError(f"That video has no frames. {advice}")
    if info.duration_s > limit:
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
RETRYABLE_STATUSES = frozenset({408, 425, 429})  # and every 5xx: the server may answer next time


def _check_address(url: object, rules: AllowedHosts | None) -> yarl.URL:
    """The URL to fetch, read once (what is judged is what is fetched); DownloadError when the bot may not."""
    try:
        address = parse_address(url)
    except BadAddress as bad:
        _refuse(url, str(bad))
    refusal = rules.refusal_of(address) if rules is not None else None
    if refusal is not None:
        _refuse(url, refusal)
    return address


def _refuse(url: object, reason: str) -> NoReturn:
    log.warning("Refused to download %s: %s", _safe_url(url), reason)
    raise DownloadError(reason, transient=False)


def _safe_url(url: object) -> str:
    """scheme://host/path only: query strings of signed URLs are bearer secrets."""
    return describe_address(url)


def _next_address(current: yarl.URL, location: str, rules: AllowedHosts | None) -> yarl.URL:
    """Where a redirect points, judged exactly like the first address; a garbled Location is refused."""
    try:
        target = current.join(yarl.URL(location))
    except (ValueError, TypeError):
        _refuse(current, "the server redirected to an address that is not a valid URL")
    return _check_address(str(target), rules)


async def _follow(
    session: aiohttp.ClientSession, address: yarl.URL, timeout: aiohttp.ClientTimeout, rules: AllowedHosts | None
) -> aiohttp.ClientResponse:
    """GET ``address``, following at most ``MAX_REDIRECTS`` redirects, each checked before it is requested.

    Each hop goes through the proxy for its own host (or direct, by NO_PROXY): the session has none of its own.
    """
    for _ in range(MAX_REDIRECTS + 1):
        proxy = proxies.address_for(address)
        response = await session.get(address, timeout=timeout, allow_redirects=False, proxy=proxy)
        location = response.headers.get("Location") if response.status in REDIRECT_STATUSES else None
        if location is None:
            return response
        response.release()
        address = _next_address(response.url, location, rules)
    raise DownloadError("the address redirects too many times", transient=False)


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
    before each request is made. Every problem with the address, the server or the connection is a
    ``DownloadError`` (a full disk stays an ``OSError``); no other exception comes out."""
    address = _check_address(url, allowed_hosts)
    partial = dest.with_name(dest.name + ".part")
    try:
        size = await _fetch(session, address, partial, max_bytes, timeout_s, allowed_hosts)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    partial.replace(dest)
    log.debug("Downloaded %s (%d bytes)", _safe_url(address), size)
    return size


async def _fetch(
    session: aiohttp.ClientSession,
    address: yarl.URL,
    partial: Path,
    max_bytes: int,
    timeout_s: float,
    rules: AllowedHosts | None,
) -> int:
    """The download itself, with every library error turned into a DownloadError."""
    size = 0
    try:
        response = await _follow(session, address, aiohttp.ClientTimeout(total=timeout_s), rules)
        async with response:
            status = response.status
            if not 200 <= status < 300:
                raise DownloadError(
                    f"the server answered HTTP {status}", transient=status >= 500 or status in RETRYABLE_STATUSES
                )
            declared = _declared_length(response)
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
    except TimeoutError:
        raise DownloadError("the download timed out", transient=True) from None
    except aiohttp.ClientPayloadError:
        raise DownloadError("the download was cut short", transient=True) from None
    except aiohttp.InvalidURL:
        _refuse(address, "the address is not a valid URL")
    except aiohttp.ClientConnectorError as error:
        log.info("Download of %s failed: %s", _safe_url(address), type(error).__name__)
        raise DownloadError("the bot could not connect to the server that has the file", transient=True) from None
    except aiohttp.ClientError as error:
        log.info("Download of %s failed: %s", _safe_url(address), type(error).__name__)
        raise DownloadError("the connection broke during the download", transient=True) from None
    except (ValueError, UnicodeError) as error:  # the library refused something in the URL or the answer's headers
        log.info("Download of %s failed: %s", _safe_url(address), type(error).__name__)
        raise DownloadError("the server's answer could not be read", transient=False) from None
    return size


def _declared_length(response: aiohttp.ClientResponse) -> int | None:
    """The Content-Length, when there is a sane one (it is only a claim: the bytes are counted too)."""
    try:
        declared = response.content_length
    except ValueError:
        return None
    return declared if declared is not None and declared >= 0 else None
