"""Shrinking a finished video to a size: re-encoding it (H.264 + AAC) at the bitrate that fits.

The work runs in a thread (``asyncio.to_thread``), never on the event loop; a video that cannot be made
small enough, or re-encoded at all, is a ``MediaError`` in words.
"""

from __future__ import annotations

import asyncio
import shutil
from fractions import Fraction
from pathlib import Path

import av

from services.media.probing import MediaError, VideoInfo, probe
from services.media.sizes import describe_size

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
    info = probe(src, src.stat().st_size)
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
            return probe(dst, size)
        target = int(target * max_bytes / size * 0.9)
    temp.unlink(missing_ok=True)
    raise MediaError(f"The video could not be made smaller than {describe_size(max_bytes)}.")


async def fit_to_size(src: Path, dst: Path, max_bytes: int) -> VideoInfo:
    """A copy of ``src`` at ``dst`` no larger than ``max_bytes``, re-encoded only when needed."""
    try:
        return await asyncio.to_thread(_fit, src, dst, max_bytes)
    except (av.FFmpegError, ValueError, IndexError, OSError) as error:
        raise MediaError(f"The video could not be re-encoded ({type(error).__name__}).") from None
