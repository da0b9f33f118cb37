"""The words people see: status lines, result captions and failure explanations.

Pure functions over jobs, shared by the Discord face and the delivery adapter, so every path
explains the same thing the same way. Anything echoed from a person is escaped so it cannot
format, link or ping.
"""

from __future__ import annotations

import re

from services.jobs.models import ErrorCode, Job, JobStatus, Mode, VideoOptions

_MARKDOWN = re.compile(r"([\\*_~`|>#\[\]()<:-])")
_MENTION = re.compile(r"@(everyone|here|[!&]?\d+)")

MODE_NAMES = {
    Mode.TEXT: "text to video",
    Mode.IMAGE: "image to video",
    Mode.EDIT: "video edit",
    Mode.EXTEND: "video extension",
}


def safe_echo(text: str, limit: int = 1000) -> str:
    """A person's text made inert: markdown escaped, mentions broken, cut to ``limit`` characters."""
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    text = _MARKDOWN.sub(r"\\\1", text)
    return _MENTION.sub("@\u200b\\1", text)


def describe_options(mode: Mode, options: VideoOptions) -> str:
    parts = [MODE_NAMES[mode]]
    if options.duration:
        parts.append(f"{options.duration} s")
    if options.aspect_ratio:
        parts.append(options.aspect_ratio)
    if options.resolution:
        parts.append(options.resolution)
    return " · ".join(parts)


def clock(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


def status_line(job: Job, *, position: int | None = None, elapsed_s: float | None = None) -> str:
    """One line for the status message while a job is alive."""
    tag = f"(job #{job.id})"
    if job.status is JobStatus.QUEUED:
        if position is None:
            return f"⏳ Waiting for a free slot… {tag}"
        return f"⏳ In line: position {position}. I'll start as soon as a slot frees up. {tag}"
    if job.status is JobStatus.SUBMITTING:
        return f"📨 Sending your request to Grok… {tag}"
    if job.status is JobStatus.RUNNING:
        progress = f"{job.progress}%" if job.progress else "started"
        spent = f" · {clock(elapsed_s)} elapsed" if elapsed_s is not None else ""
        return f"🎬 Generating: {progress}{spent} {tag}"
    if job.status in (JobStatus.DOWNLOADING, JobStatus.DELIVERING):
        return f"📥 Your video is ready; uploading it now… {tag}"
    if job.status is JobStatus.DELIVERED:
        return f"✅ Done! {tag}"
    return failure_text(job)


def failure_text(job: Job) -> str:
    """Why a job ended without a video, in plain words, with what to do next."""
    reason = job.error_message or "Something went wrong."
    if job.status is JobStatus.MODERATED:
        return f"🚫 {reason} Try a different prompt. (job #{job.id})"
    if job.status is JobStatus.CANCELLED:
        # Charged: the request may have reached xAI (even when its answer, and so its id, never came back).
        tail = " The request had already reached xAI, which may still charge for it." if job.charged else ""
        return f"🛑 Cancelled.{tail} (job #{job.id})"
    if job.error_code == ErrorCode.TIMEOUT:
        return f"⌛ {reason} (job #{job.id})"
    return f"❌ {reason} (job #{job.id})"


def result_caption(job: Job, *, took_s: float | None = None) -> str:
    """The short line under a delivered video (the requester's mention is added by the caller)."""
    took = f" in {clock(took_s)}" if took_s is not None else ""
    made_with = f" · made with {job.model}" if job.model else ""  # edits and extensions say the model they went to
    return f"here is your video{took}. ({describe_options(job.mode, job.options)}{made_with} · job #{job.id})"
