"""Checking what a person asked for, before anything is stored or sent.

Every refusal is an ``InputError`` whose text tells the person what was wrong and what to do;
the Discord face and the terminal show it as it is.
"""

from __future__ import annotations

import re
import unicodedata

from services.jobs.models import (
    ASPECT_RATIOS,
    MAX_DURATION_S,
    MAX_EDIT_INPUT_S,
    MIN_DURATION_S,
    RESOLUTIONS,
    MediaInput,
    Mode,
    VideoOptions,
)
from services.media import probing

DEFAULT_MAX_PROMPT_CHARS = 1000  # leaves room to echo it in a 2000-character Discord message
MAX_IMAGE_BYTES = 10 * 1024 * 1024  # what xAI itself will fetch for an image
MAX_EDIT_VIDEO_BYTES = 50 * 1024 * 1024
# An extension (``POST /v1/videos/extensions``) adds 2 to 10 seconds (xAI's default: 6) to a video 2 to 15 s long.
MIN_EXTEND_S, MAX_EXTEND_S, DEFAULT_EXTEND_S = 2, 10, 6
MIN_EXTEND_INPUT_S, MAX_EXTEND_INPUT_S = 2.0, 15.0

# Zero-width and bidi-control characters: invisible, so they only ever confuse or hide things.
_INVISIBLE = re.compile("[\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")


class InputError(Exception):
    """Something the person asked for cannot be done as asked. ``str()`` says what to do instead."""


def choose_mode(*, has_image: bool, has_video: bool) -> Mode:
    if has_image and has_video:
        raise InputError(
            "Attach either an image (to animate it) or a video (to edit it), not both. Send the command again "
            "with just one."
        )
    if has_image:
        return Mode.IMAGE
    return Mode.EDIT if has_video else Mode.TEXT


def clean_prompt(text: str | None, mode: Mode, *, max_chars: int = DEFAULT_MAX_PROMPT_CHARS) -> str:
    """Normalise a prompt (no invisible or control characters) and check its length.

    Characters are removed before normalising, so what is left is in NFC form; lone surrogates (which
    a terminal passes on for bytes that are not UTF-8) go too, since they cannot be stored or sent."""
    cleaned = _INVISIBLE.sub("", text or "")
    cleaned = "".join(ch for ch in cleaned if ch in "\n\t" or unicodedata.category(ch) not in ("Cc", "Cs"))
    cleaned = unicodedata.normalize("NFC", cleaned).strip()
    if not cleaned and mode not in (Mode.IMAGE, Mode.EXTEND):  # an extension may simply go on
        what = "how to change the video" if mode is Mode.EDIT else "the video you want"
        raise InputError(f"Write a prompt that describes {what}, then try again.")
    if len(cleaned) > max_chars:
        raise InputError(
            f"Your prompt is {len(cleaned):,} characters long; the limit is {max_chars:,}. Shorten it and try again."
        )
    return cleaned


def parse_options(
    mode: Mode,
    *,
    duration: int | str | None = None,
    aspect_ratio: str | None = None,
    resolution: str | None = None,
    max_duration: int = MAX_DURATION_S,
) -> VideoOptions:
    """Turn raw option values into VideoOptions, refusing anything xAI would refuse."""
    if mode is Mode.EDIT:
        given = [
            name
            for name, value in (("duration", duration), ("aspect ratio", aspect_ratio), ("resolution", resolution))
            if value
        ]
        if given:
            raise InputError(
                f"A video edit keeps the source video's length, shape and resolution, so {' and '.join(given)} "
                "cannot be set. Leave those options out and try again."
            )
        return VideoOptions()
    return VideoOptions(
        duration=_duration(duration, max_duration),
        aspect_ratio=_choice(aspect_ratio, ASPECT_RATIOS, "aspect ratio"),
        resolution=_choice(resolution, RESOLUTIONS, "resolution"),
    )


def _duration(value: int | str | None, max_duration: int) -> int | None:
    if value is None or value == "":
        return None
    try:
        seconds = int(str(value).strip().removesuffix("s"))
    except ValueError:
        raise InputError(
            f"The duration must be a whole number of seconds from {MIN_DURATION_S} to {max_duration}."
        ) from None
    if not MIN_DURATION_S <= seconds <= max_duration:
        raise InputError(
            f"The duration must be from {MIN_DURATION_S} to {max_duration} seconds; you asked for {seconds}."
        )
    return seconds


def parse_extend_seconds(value: int | str | None) -> int:
    """The seconds an extension adds: 2 to 10, xAI's 6 when none is given."""
    if value is None or str(value).strip() == "":
        return DEFAULT_EXTEND_S
    words = f"An extension adds {MIN_EXTEND_S} to {MAX_EXTEND_S} seconds"
    try:
        seconds = int(str(value).strip().removesuffix("s").strip())
    except ValueError:
        raise InputError(f"{words}; write a whole number, such as {DEFAULT_EXTEND_S}.") from None
    if not MIN_EXTEND_S <= seconds <= MAX_EXTEND_S:
        raise InputError(f"{words}; you asked for {seconds}.")
    return seconds


def _choice(value: str | None, allowed: tuple[str, ...], what: str) -> str | None:
    if value is None or value.strip() == "":
        return None
    normalised = value.strip().lower()
    if normalised not in allowed:
        raise InputError(f"The {what} must be one of {', '.join(allowed)}; {value!r} is not one of them.")
    return normalised


async def check_media(mode: Mode, data: bytes, filename: str) -> MediaInput:
    """Check an image (animate) or video (edit) by its content, whatever its name or declared type says."""
    try:
        if mode is Mode.IMAGE:
            image = await probing.check_image(data, max_bytes=MAX_IMAGE_BYTES)
            return MediaInput(data=data, mime_type=image.mime_type, filename=filename)
        if mode is Mode.EDIT:
            await probing.check_edit_video(data, max_seconds=MAX_EDIT_INPUT_S, max_bytes=MAX_EDIT_VIDEO_BYTES)
            return MediaInput(data=data, mime_type="video/mp4", filename=filename)
        if mode is Mode.EXTEND:
            await probing.check_extend_video(
                data, min_seconds=MIN_EXTEND_INPUT_S, max_seconds=MAX_EXTEND_INPUT_S, max_bytes=MAX_EDIT_VIDEO_BYTES
            )
            return MediaInput(data=data, mime_type="video/mp4", filename=filename)
    except probing.MediaError as error:
        raise InputError(str(error)) from None
    raise InputError("This kind of job does not take an attachment.")
