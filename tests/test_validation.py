"""What a person typed: prompts and options, including property-based checks of every option."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.jobs.models import ASPECT_RATIOS, RESOLUTIONS, Mode, VideoOptions
from services.jobs.validation import InputError, choose_mode, clean_prompt, parse_options


def test_prompt_is_cleaned_of_invisible_and_control_characters() -> None:
    """Zero-width and control characters are removed; newlines stay."""
    assert clean_prompt("  a\u200bcat\x00\non a\u202e board ", Mode.TEXT) == "acat\non a board"


@pytest.mark.parametrize("mode", [Mode.TEXT, Mode.EDIT])
def test_an_empty_prompt_is_refused_unless_animating_an_image(mode: Mode) -> None:
    """Only image animation may go without a prompt."""
    with pytest.raises(InputError, match="Write a prompt"):
        clean_prompt("  \u200b ", mode)
    assert clean_prompt("", Mode.IMAGE) == ""


def test_an_overlong_prompt_says_how_long_and_the_limit() -> None:
    """10,000 characters are refused with both numbers in the message."""
    with pytest.raises(InputError, match=r"10,000 characters long; the limit is 1,000"):
        clean_prompt("x" * 10_000, Mode.TEXT)


def test_attaching_both_an_image_and_a_video_is_refused() -> None:
    """The mode follows from the attachment; two attachments are ambiguous."""
    with pytest.raises(InputError, match="not both"):
        choose_mode(has_image=True, has_video=True)
    assert choose_mode(has_image=False, has_video=True) is Mode.EDIT


def test_edits_refuse_options_they_cannot_use() -> None:
    """Edits keep the source's length, shape and resolution."""
    with pytest.raises(InputError, match="duration and resolution cannot be set"):
        parse_options(Mode.EDIT, duration=5, resolution="720p")
    assert parse_options(Mode.EDIT) == VideoOptions()


@given(st.one_of(st.none(), st.integers(-100, 100), st.text(max_size=6)))
def test_any_duration_is_accepted_only_within_1_to_15(value: int | str | None) -> None:
    """Every possible input either parses to 1-15 (or nothing) or gets a clear refusal."""
    try:
        options = parse_options(Mode.TEXT, duration=value)
    except InputError as error:
        assert "seconds" in str(error)
    else:
        assert options.duration is None or 1 <= options.duration <= 15


@given(st.text(max_size=8), st.text(max_size=8))
def test_any_aspect_ratio_or_resolution_is_one_of_xais_values_or_refused(aspect: str, resolution: str) -> None:
    """Enumerated options never let an unknown value through."""
    try:
        options = parse_options(Mode.TEXT, aspect_ratio=aspect, resolution=resolution)
    except InputError as error:
        assert "must be one of" in str(error)
    else:
        assert options.aspect_ratio in (None, *ASPECT_RATIOS)
        assert options.resolution in (None, *RESOLUTIONS)


def test_options_are_normalised() -> None:
    """Case and spaces do not matter; '8s' means 8 seconds."""
    assert parse_options(Mode.TEXT, duration="8s", aspect_ratio=" 9:16 ", resolution="720P") == VideoOptions(
        8, "9:16", "720p"
    )
