"""``python bot.py generate``: one video from the terminal, through the same store, scheduler and client.

Useful to check an xAI key and see the service work before inviting the bot anywhere. Every
failure ends with one clear line on stderr and a non-zero exit status; never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import TextIO

from services.config import Settings
from services.jobs.listener import DeliveryReceipt
from services.jobs.models import (
    CancelResult,
    ErrorCode,
    Job,
    JobRequest,
    JobStatus,
    MediaInput,
    Mode,
    Origin,
    VideoOptions,
)
from services.jobs.validation import (
    InputError,
    check_media,
    choose_mode,
    clean_prompt,
    parse_extend_seconds,
    parse_options,
)
from services.media import downloading, sizes
from services.policy.limits import Refused, usd
from services.process import proxies
from services.process.startup import open_store
from services.runtime import open_runtime

MAX_INPUT_DOWNLOAD_BYTES = 50 * 1024 * 1024


class Exit(IntEnum):
    OK = 0
    FAILED = 1
    BAD_INPUT = 2
    MODERATED = 3
    EXPIRED = 4
    TIMED_OUT = 5
    BAD_KEY = 6
    INTERRUPTED = 130


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "prompt",
        nargs="?",
        default="",
        help="what the video should show (how to change the --video, how the --extend goes on)",
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--image", metavar="PATH_OR_URL", help="animate this PNG, JPEG or WebP image")
    source.add_argument("--video", metavar="PATH_OR_URL", help="edit this MP4 (at most 8.7 seconds)")
    source.add_argument("--extend", metavar="PATH_OR_URL", help="continue this MP4 (2 to 15 seconds long)")
    parser.add_argument(
        "--duration", metavar="N", help="length in seconds, 1-15; with --extend the seconds added, 2-10"
    )
    parser.add_argument("--aspect-ratio", metavar="R", help="16:9, 9:16, 1:1, 4:3, 3:4, 3:2 or 2:3 (not for edits)")
    parser.add_argument("--resolution", metavar="R", help="480p, 720p, or 1080p on the 1.5 models (not for edits)")
    parser.add_argument(
        "--model",
        metavar="NAME",
        help="an offered model (XAI_MODELS; default: the first); edits use grok-imagine-video",
    )
    parser.add_argument("--out", metavar="FILE", default="video.mp4", help="where to save the MP4 (video.mp4)")


@dataclass
class _Outcome:
    job: Job
    saved_to: Path | None = None


class TerminalListener:
    """Prints progress to stderr and saves the finished video to ``--out``."""

    def __init__(self, out: Path, stream: TextIO = sys.stderr) -> None:
        self.out = out
        self.stream = stream
        self.started = time.monotonic()
        self.finished: asyncio.Future[_Outcome] = asyncio.get_running_loop().create_future()
        self._last_line = ""

    def _say(self, text: str) -> None:
        line = f"[{time.monotonic() - self.started:5.1f}s] {text}"
        if text != self._last_line:
            print(line, file=self.stream, flush=True)
            self._last_line = text

    async def on_queue_changed(self, positions: Mapping[int, int]) -> None:
        return None

    async def on_status(self, job: Job) -> None:
        if job.status is JobStatus.RUNNING:
            progress = f"{job.progress}%" if job.progress is not None else "started"
            self._say(f"xAI is generating ({progress}), request {job.request_id}")
        elif job.status is JobStatus.DOWNLOADING:
            self._say("Video ready; downloading")

    async def deliver(self, job: Job, video: Path) -> DeliveryReceipt:
        await asyncio.to_thread(_copy, video, self.out)
        if not self.finished.done():
            self.finished.set_result(_Outcome(job, self.out))
        return DeliveryReceipt(method="file")

    async def on_finished_without_video(self, job: Job) -> None:
        if not self.finished.done():
            self.finished.set_result(_Outcome(job))


def _copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)


async def _read_input(location: str) -> tuple[bytes, str]:
    """The bytes of a local file or an http(s) URL, with a name for it."""
    if location.startswith(("http://", "https://")):
        name = location.split("?")[0].rstrip("/").rsplit("/", 1)[-1] or "input"
        async with proxies.session() as session:  # HTTPS_PROXY / NO_PROXY apply, netrc does not
            folder = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="grok-video-input-"))
            target = folder / "input"
            try:
                await downloading.download(session, location, target, max_bytes=MAX_INPUT_DOWNLOAD_BYTES, timeout_s=60)
                return await asyncio.to_thread(target.read_bytes), name
            except downloading.DownloadError as error:
                raise InputError(f"Could not fetch {name}: {error}") from None
            finally:
                await asyncio.to_thread(shutil.rmtree, folder, True)
    path = Path(location).expanduser()
    if not path.is_file():
        raise InputError(f"There is no file at {location}. Check the path and try again.")
    return await asyncio.to_thread(path.read_bytes), path.name


async def build_request(args: argparse.Namespace) -> JobRequest:
    """Validate everything the person typed; nothing is sent to xAI before this succeeds."""
    extending = bool(getattr(args, "extend", None))
    mode = Mode.EXTEND if extending else choose_mode(has_image=bool(args.image), has_video=bool(args.video))
    prompt = clean_prompt(args.prompt, mode)
    if extending:
        options = _extension_options(args)
    else:
        options = parse_options(
            mode, duration=args.duration, aspect_ratio=args.aspect_ratio, resolution=args.resolution
        )
    media_input: MediaInput | None = None
    location = args.image or args.video or getattr(args, "extend", None)
    if location:
        data, name = await _read_input(location)
        media_input = await check_media(mode, data, name)
    model = getattr(args, "model", None) or None
    return JobRequest(
        mode=mode, prompt=prompt, options=options, origin=Origin(kind="cli"), media=media_input, model=model
    )


def _extension_options(args: argparse.Namespace) -> VideoOptions:
    """``--extend``: only ``--duration`` (the seconds added); the input's shape and resolution carry on."""
    if args.aspect_ratio or args.resolution:
        raise InputError(
            "An extension keeps the video's shape and resolution, so --aspect-ratio and --resolution cannot be set. "
            "Leave them out and try again."
        )
    return VideoOptions(duration=parse_extend_seconds(args.duration))


async def generate(args: argparse.Namespace, settings: Settings, stream: TextIO = sys.stderr) -> int:
    """Run one job to the end and return the process exit status."""
    try:
        request = await build_request(args)
    except InputError as error:
        print(f"error: {error}", file=stream)
        return Exit.BAD_INPUT
    out = Path(args.out)
    listener = TerminalListener(out, stream)
    async with (
        await open_store(settings.database_path, settings.database_url) as store,
        open_runtime(
            settings.xai, store, listener=listener, limits=settings.limits, resume_origins=frozenset()
        ) as runtime,
    ):
        try:
            quote = await runtime.jobs.quote(request)  # the model it runs on, checked, and its price
            accepted = await runtime.jobs.accept(request)
        except Refused as refused:
            print(f"error: {refused.refusal.reason}", file=stream)
            return Exit.BAD_INPUT
        kind = "an extension" if request.mode is Mode.EXTEND else f"{request.mode.value} to video"
        model = accepted.job.model or quote.request.model
        listener._say(f"Job {accepted.job.id} accepted ({kind}) on {model}, about {usd(quote.ticks)}")
        try:
            await runtime.scheduler.start()
            outcome = await listener.finished
        except asyncio.CancelledError:
            cancelled = await runtime.scheduler.cancel(accepted.job.id)
            print(f"error: interrupted; {cancelled_words(cancelled)}", file=stream)
            return Exit.INTERRUPTED
    return _report(outcome, stream)


def cancelled_words(result: CancelResult | None) -> str:
    """What Ctrl-C did to the job, truthfully: only a request that reached xAI may be charged."""
    if result is None:
        return "the job had already ended"
    if result is CancelResult.BEFORE_SENDING:
        return "the job was cancelled before it was sent to xAI, so it costs nothing"
    return "the job was cancelled, but its request had already reached xAI, which may still charge for it"


def _report(outcome: _Outcome, stream: TextIO) -> int:
    job = outcome.job
    if outcome.saved_to is not None:
        size = sizes.describe_size(outcome.saved_to.stat().st_size)
        print(f"Saved {outcome.saved_to} ({size}) in {job.elapsed_s:.0f} s", file=stream)
        return Exit.OK
    reason = job.error_message or "the job did not finish"
    print(f"error: {reason}", file=stream)
    if job.status is JobStatus.MODERATED:
        return Exit.MODERATED
    if job.status is JobStatus.EXPIRED:
        return Exit.EXPIRED
    if job.error_code == ErrorCode.TIMEOUT:
        return Exit.TIMED_OUT
    if job.error_code in (ErrorCode.XAI_AUTH, ErrorCode.XAI_CREDITS):
        return Exit.BAD_KEY
    if job.error_code == ErrorCode.BAD_INPUT:
        return Exit.BAD_INPUT
    return Exit.FAILED
