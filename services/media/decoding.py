"""Decoding a video's streams to their end, with the work bounded whatever the file claims.

Only decoding tells a cut-off video from a whole one (a file cut short still opens and shows its first
part), so inputs and results are decoded in full. But a file's own claims bound nothing: a 2 MB upload
can hold five minutes of 720p (seconds of CPU, an executor thread held), and its header can say it lasts
two seconds. So decoding stops, and the file is refused, as soon as any stream runs past ``limit_s`` or the
video has more frames than ``limit_s`` could hold at ``MAX_FPS`` (timestamps can lie too).
The MP4 box walk, which catches a file cut inside one of its top-level boxes without decoding, is here too.
Everything here is synchronous: callers run it in a thread.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import av

# No real video has more frames a second than this; more means its timestamps are not to be believed.
MAX_FPS = 240


class Overlong(Exception):
    """The video runs past the limit (``declared_s`` is its own claim, when that is what gave it away)."""

    def __init__(self, limit_s: float, *, declared_s: float | None = None, frames: int = 0) -> None:
        super().__init__(limit_s, declared_s, frames)
        self.limit_s = limit_s
        self.declared_s = declared_s
        self.frames = frames  # how many video frames were decoded before decoding stopped

    @property
    def too_many_frames(self) -> bool:
        """More frames than ``limit_s`` can hold at MAX_FPS (its timestamps say it is shorter than that)."""
        return self.frames > self.limit_s * MAX_FPS


class CutOff(Exception):
    """A stream stops well before its declared length: the file was cut short or lost samples."""


def declared_duration(stream: av.stream.Stream, container: av.container.InputContainer | None) -> float | None:
    """How long the file says a stream is (falling back to the whole file's length when a container is given)."""
    duration = None
    if stream.duration is not None and stream.time_base is not None:
        duration = float(stream.duration * stream.time_base)
    elif container is not None and container.duration is not None:
        duration = container.duration / av.time_base
    return duration if duration is not None and duration > 0 else None


def refuse_declared(container: av.container.InputContainer, limit_s: float | None) -> float | None:
    """The video stream's declared length; Overlong at once, before any decoding, when it says more than the limit."""
    declared = declared_duration(container.streams.video[0], container)
    if limit_s is not None and declared is not None and declared > limit_s:
        raise Overlong(limit_s, declared_s=declared)
    return declared


def decode_every_stream(container: av.container.InputContainer, limit_s: float | None = None) -> float:
    """Decode every video and audio stream to its end, or until the video runs past ``limit_s`` (Overlong).

    Sound that runs past the limit is not a reason to refuse (it is often a little longer than the picture):
    it is simply decoded no further. CutOff when a stream stops well before its declared length. Returns how
    far the first video stream decoded, in seconds.
    """
    streams = [*container.streams.video, *container.streams.audio]
    video = container.streams.video[0].index
    reached = dict.fromkeys((s.index for s in streams), 0.0)
    past_limit: set[int] = set()  # sound streams decoded as far as the limit, and no further
    frames = 0
    for packet in container.demux(*streams):
        index = packet.stream.index
        if index in past_limit:
            continue
        for frame in packet.decode():
            picture = isinstance(frame, av.VideoFrame)
            if isinstance(frame, av.AudioFrame):
                span = frame.samples / (frame.sample_rate or 1)
            elif isinstance(frame, av.VideoFrame):
                rate = packet.stream.average_rate
                span = 1 / float(rate) if rate else 0.0
                frames += 1
            else:
                continue
            if frame.time is not None:
                reached[index] = max(reached[index], float(frame.time) + span)
            if limit_s is None:
                continue
            if picture and (reached[index] > limit_s or frames > limit_s * MAX_FPS):
                raise Overlong(limit_s, frames=frames)
            if not picture and reached[index] > limit_s:
                past_limit.add(index)
    for stream in streams:
        declared = declared_duration(stream, None)  # each stream against its own length (sound may be shorter)
        if stream.index not in past_limit and declared is not None and reached[stream.index] < declared * 0.9:
            raise CutOff
    return reached[video]


def decoded_duration(container: av.container.InputContainer, limit_s: float | None = None) -> float:
    """The video stream's length by decoding it (for a file that does not say), stopping past ``limit_s``."""
    last = 0.0
    for frames, frame in enumerate(container.decode(video=0), start=1):
        if frame.time is not None:
            last = max(last, float(frame.time))
        if limit_s is not None and (last > limit_s or frames > limit_s * MAX_FPS):
            raise Overlong(limit_s, frames=frames)
    return last


def mp4_complete(data: bytes) -> bool:
    """Whether the top-level MP4 boxes fill the file exactly: a cut-off upload ends inside its last box."""
    return _boxes_fill(lambda offset: data[offset : offset + 16], len(data))


def mp4_file_complete(path: Path) -> bool:
    """``mp4_complete`` for a file on disk, reading only the box headers (a finished video may be 200 MiB)."""
    with path.open("rb") as file:

        def header_at(offset: int) -> bytes:
            file.seek(offset)
            return file.read(16)

        return _boxes_fill(header_at, path.stat().st_size)


def _boxes_fill(header_at: Callable[[int], bytes], size: int) -> bool:
    offset = 0
    while offset < size:
        if offset + 8 > size:
            return False
        header = header_at(offset)
        box = int.from_bytes(header[:4], "big")
        if box == 1:
            if offset + 16 > size:
                return False
            box = int.from_bytes(header[8:16], "big")
        elif box == 0:  # the last box runs to the end of the file
            return True
        if box < 8 or offset + box > size:
            return False
        offset += box
    return True
