"""Real media files for the tests, made with PyAV: MP4s of any length and size, and still images.

Encoding costs real CPU (a minute of audio takes seconds), and the same few clips serve hundreds of tests,
so each file is made once per test process and handed out again: bytes cannot be changed by the taker.
"""

from __future__ import annotations

import functools
import tempfile
from fractions import Fraction
from pathlib import Path
from typing import cast

import av
import numpy as np


@functools.cache
def make_mp4(
    seconds: float = 1.0,
    *,
    width: int = 64,
    height: int = 48,
    fps: int = 12,
    audio: bool = True,
    noise: bool = False,
    seed: int = 0,
) -> bytes:
    """An H.264 (+ AAC) MP4 of ``seconds``. ``noise=True`` makes frames incompressible (big files)."""
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "clip.mp4"
        _encode(path, seconds, width, height, fps, audio, noise, rng)
        return path.read_bytes()


def _encode(
    path: Path, seconds: float, width: int, height: int, fps: int, audio: bool, noise: bool, rng: np.random.Generator
) -> None:
    # faststart rewrites the file at the end, which needs a real path rather than a buffer
    with av.open(str(path), "w", format="mp4", options={"movflags": "+faststart"}) as container:
        video = container.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        if noise:
            video.options = {"crf": "0", "preset": "ultrafast"}
        sound = container.add_stream("aac", rate=44100) if audio else None
        frames = max(1, round(seconds * fps))
        for index in range(frames):
            if noise:
                pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
            else:
                pixels = np.full((height, width, 3), (index * 7) % 256, dtype=np.uint8)
                pixels[:, : (index * 3) % width, 1] = 200
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts = index
            frame.time_base = Fraction(1, fps)
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        if sound is not None:
            samples_total = int(seconds * 44100)
            step = 1024
            for start in range(0, samples_total, step):
                count = min(step, samples_total - start)
                tone = np.sin(2 * np.pi * 440 * np.arange(start, start + count) / 44100).astype(np.float32)
                chunk = av.AudioFrame.from_ndarray(tone.reshape(1, -1) * 0.1, format="fltp", layout="mono")
                chunk.sample_rate = 44100
                chunk.pts = start
                container.mux(sound.encode(chunk))
            container.mux(sound.encode(None))


@functools.cache
def make_image(fmt: str = "PNG", *, width: int = 32, height: int = 24) -> bytes:
    """A small still image in ``fmt`` ("PNG", "JPEG" or "WEBP"), encoded by FFmpeg through PyAV."""
    codec = {"PNG": "png", "JPEG": "mjpeg", "WEBP": "libwebp"}[fmt.upper()]
    pix_fmt = {"png": "rgb24", "mjpeg": "yuvj420p", "libwebp": "yuv420p"}[codec]
    context = cast(av.VideoCodecContext, av.CodecContext.create(codec, "w"))
    context.width, context.height, context.pix_fmt = width, height, pix_fmt
    context.time_base = Fraction(1, 1)
    pixels = np.zeros((height, width, 3), dtype=np.uint8)
    pixels[:, :, 0] = 180
    frame = av.VideoFrame.from_ndarray(pixels, format="rgb24").reformat(format=pix_fmt)
    frame.pts = 0
    packets = list(context.encode(frame)) + list(context.encode(None))
    return b"".join(bytes(p) for p in packets)


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path
