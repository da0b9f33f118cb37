"""The Extend button under a delivered video: a form asks for the seconds to add, and the clip goes on.

xAI extends a video 2 to 15 seconds long by 2 to 10 seconds (``POST /v1/videos/extensions``, on the classic
model only). The result's own file is the input: it is checked like any input and stored with the new job when
it is accepted, so a restart, or a sweep of the parent's files while the extension waits in line, loses nothing.
The extension is delivered like any result, with its own buttons, so clips chain. As for Edit, a form must be
the first answer, so only a quick look at the store comes before it; a form sent after a restart is answered
by ``ResultsCog`` from its id.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import discord

from cogs.forms import ExtendResultModal
from cogs.kept import gone_reason
from cogs.result_forms import FormButton, FormFacts
from services.jobs.models import Job, Mode, VideoOptions
from services.jobs.validation import (
    MAX_EXTEND_INPUT_S,
    MIN_EXTEND_INPUT_S,
    clean_prompt,
    parse_extend_seconds,
)
from services.xai.catalog import BUILT_IN, CLASSIC

if TYPE_CHECKING:
    from bot import GrokVideoBot

NO_FILE_TO_EXTEND = "I no longer have this video's file, so I can't extend it."
CLASSIC_RESOLUTIONS = BUILT_IN[CLASSIC].resolutions_for(Mode.EXTEND)  # 480p, 720p: what the model that extends makes


def extension_answers(job: Job, values: dict[str, str]) -> tuple[str, VideoOptions]:
    """The Extend form: the seconds to add (2 to 10) and an optional prompt."""
    seconds = parse_extend_seconds(values.get("seconds"))
    return clean_prompt(values.get("prompt"), Mode.EXTEND), extension_options(job, seconds)


def extension_options(parent: Job, seconds: int) -> VideoOptions:
    """The added seconds, and the resolution the extension is priced at: its input's (the classic model makes
    at most 720p, so a 1080p input is priced as 720p; a video made with none chosen was xAI's 480p, but an
    edit's keeps its input's, unknown, so None: priced at the dearest). Neither goes to xAI but the seconds."""
    resolution = parent.options.resolution
    if resolution is None and parent.mode in (Mode.TEXT, Mode.IMAGE):
        resolution = CLASSIC_RESOLUTIONS[0]
    if resolution is not None and resolution not in CLASSIC_RESOLUTIONS:
        resolution = CLASSIC_RESOLUTIONS[-1]
    return VideoOptions(duration=seconds, resolution=resolution)


def why_not_extendable(bot: GrokVideoBot, job: Job | None) -> str | None:
    """Why this result cannot be extended, in words that say what would work; None when it can."""
    if job is None:
        return NO_FILE_TO_EXTEND
    gone = gone_reason(bot, job)
    if gone is not None:
        return f"{gone}, so I can't extend it."
    if not job.output_path or not Path(job.output_path).is_file():
        return NO_FILE_TO_EXTEND
    length = job.video_duration_s
    if length is not None and not MIN_EXTEND_INPUT_S - 0.05 <= length <= MAX_EXTEND_INPUT_S + 0.05:
        return (
            f"xAI can only extend videos {MIN_EXTEND_INPUT_S:g} to {MAX_EXTEND_INPUT_S:g} seconds long; this one is "
            f"{length:.1f} seconds. Extend a clip within that range instead."
        )
    return None


class ExtendButton(FormButton, discord.ui.DynamicItem[discord.ui.Button[Any]], template=r"gv:extend:(?P<job>\d{1,20})"):
    """Open the Extend form, unless the video cannot be extended (gone, or outside 2 to 15 seconds); once sent,
    an extension of that result's file, through the same accept path as every job (limits, Confirm included)."""

    action, label, emoji = "extend", "Extend", "⏩"
    facts = FormFacts(Mode.EXTEND, ExtendResultModal, why_not_extendable, NO_FILE_TO_EXTEND, extension_answers)
