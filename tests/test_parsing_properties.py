"""Property tests over everything that parses what people type: options, prompts, modes, the terminal command's
arguments and the settings. Whatever comes in, the answer is a value within the documented ranges or an
InputError / ConfigError with a message; never another exception."""

from __future__ import annotations

import asyncio
import math
import unicodedata
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from services.cli import build_parser
from services.config import ConfigError, load_settings
from services.jobs.models import ASPECT_RATIOS, MAX_DURATION_S, MIN_DURATION_S, RESOLUTIONS, Mode
from services.jobs.validation import DEFAULT_MAX_PROMPT_CHARS, InputError, choose_mode, clean_prompt, parse_options
from services.media.hosts import valid_entry
from services.terminal import build_request

PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Anything a person might type, weighted towards the interesting: near-valid values, numbers, unicode digits,
# whitespace, invisible and control characters, surrogates (what a terminal passes on for non-UTF-8 bytes).
weird_text = st.one_of(
    st.text(),
    st.text(alphabet=st.characters(codec=None, categories=None), max_size=40),
    st.sampled_from(["", " ", "5", " 15s ", "0", "16", "-1", "1_0", "５", "1e3", "nan", "inf", "16:9", " 9:16 "]),
    st.sampled_from(["720P", "480p ", "1080p", "4:3", "21:9", "\u200b", "\x00", "\ud800", "🎬", "İ", "ß"]),
    st.integers(-(10**6), 10**6).map(str),
)
option_value = st.one_of(st.none(), weird_text)
modes = st.sampled_from(list(Mode))


def _invisible(ch: str) -> bool:
    return (
        ("\u200b" <= ch <= "\u200f")
        or ("\u202a" <= ch <= "\u202e")
        or ("\u2060" <= ch <= "\u2064")
        or ("\u2066" <= ch <= "\u2069")
        or ch == "\ufeff"
    )


@PROPERTY
@given(text=st.one_of(st.none(), weird_text, st.text(min_size=900, max_size=1100)), mode=modes)
@example(text="e\u200b\u0301", mode=Mode.TEXT)  # removing the space must not leave an un-normalised pair
@example(text="\udcff a cat", mode=Mode.TEXT)  # a non-UTF-8 byte from a terminal
def test_clean_prompt_returns_clean_text_or_says_why(text: str | None, mode: Mode) -> None:
    try:
        cleaned = clean_prompt(text, mode)
    except InputError as error:
        assert str(error)
        return
    assert len(cleaned) <= DEFAULT_MAX_PROMPT_CHARS
    assert cleaned == cleaned.strip() and cleaned == unicodedata.normalize("NFC", cleaned)
    assert all(ch in "\n\t" or unicodedata.category(ch) not in ("Cc", "Cs") for ch in cleaned)
    assert not any(_invisible(ch) for ch in cleaned)
    assert cleaned or mode in (Mode.IMAGE, Mode.EXTEND)  # only these may go without a prompt
    cleaned.encode("utf-8")  # storable and sendable


@PROPERTY
@given(
    mode=modes,
    duration=st.one_of(option_value, st.integers(-(10**9), 10**9)),
    aspect_ratio=option_value,
    resolution=option_value,
)
def test_parse_options_accepts_only_what_xai_accepts(
    mode: Mode, duration: int | str | None, aspect_ratio: str | None, resolution: str | None
) -> None:
    try:
        options = parse_options(mode, duration=duration, aspect_ratio=aspect_ratio, resolution=resolution)
    except InputError as error:
        assert str(error)
        return
    assert options.duration is None or MIN_DURATION_S <= options.duration <= MAX_DURATION_S
    assert options.aspect_ratio is None or options.aspect_ratio in ASPECT_RATIOS
    assert options.resolution is None or options.resolution in RESOLUTIONS
    if mode is Mode.EDIT:
        assert options.duration is None and options.aspect_ratio is None and options.resolution is None


@given(has_image=st.booleans(), has_video=st.booleans())
def test_choose_mode_is_total(has_image: bool, has_video: bool) -> None:
    try:
        mode = choose_mode(has_image=has_image, has_video=has_video)
    except InputError as error:
        assert has_image and has_video and "not both" in str(error)
        return
    assert mode is (Mode.IMAGE if has_image else Mode.EDIT if has_video else Mode.TEXT)


@PROPERTY
@given(
    prompt=weird_text,
    duration=option_value,
    aspect_ratio=option_value,
    resolution=option_value,
    source=st.sampled_from([None, "--image", "--video"]),
)
def test_the_terminal_command_refuses_bad_arguments_with_one_line(
    prompt: str, duration: str | None, aspect_ratio: str | None, resolution: str | None, source: str | None
) -> None:
    """What argparse accepts goes through build_request: a request within range, or an InputError."""
    argv = ["generate"]
    for flag, value in (("--duration", duration), ("--aspect-ratio", aspect_ratio), ("--resolution", resolution)):
        if value is not None:
            argv.append(f"{flag}={value}")
    if source is not None:
        argv.append(f"{source}=/nonexistent/{abs(hash(prompt))}.file")
    args = build_parser().parse_args([*argv, "--", prompt])
    try:
        request = asyncio.run(build_request(args))
    except InputError as error:
        assert str(error) and "\n" not in str(error).strip()
        return
    options = request.options
    assert source is None and request.media is None
    assert options.duration is None or MIN_DURATION_S <= options.duration <= MAX_DURATION_S
    assert options.aspect_ratio in (None, *ASPECT_RATIOS) and options.resolution in (None, *RESOLUTIONS)
    assert 0 < len(request.prompt) <= DEFAULT_MAX_PROMPT_CHARS


SETTING_NAMES = (
    "XAI_API_KEY",
    "DISCORD_TOKEN",
    "XAI_BASE_URL",
    "XAI_MODEL",
    "XAI_MAX_REQUESTS_PER_MINUTE",
    "XAI_MAX_CONCURRENT_JOBS",
    "XAI_JOB_TIMEOUT_SECONDS",
    "XAI_REQUEST_TIMEOUT_SECONDS",
    "XAI_FIRST_POLL_SECONDS",
    "XAI_MAX_POLL_INTERVAL_SECONDS",
    "XAI_MAX_DOWNLOAD_MB",
    "XAI_DOWNLOAD_HOSTS",
    "DATABASE_PATH",
    "DEV_GUILD_ID",
    "DISCORD_API_BASE_URL",
    "DISCORD_GATEWAY_URL",
    "ENABLE_REPLY_TRIGGER",
    "LOG_LEVEL",
)
setting_value = st.one_of(
    weird_text,
    st.sampled_from(["1", "0.05", "60", "true", "off", "debug", "https://api.x.ai/v1", "vidgen.x.ai, *.x.ai", "-inf"]),
)


@PROPERTY
@given(values=st.dictionaries(st.sampled_from(SETTING_NAMES), setting_value), need_discord=st.booleans())
@example(values={"XAI_API_KEY": "k", "XAI_MAX_REQUESTS_PER_MINUTE": "nan"}, need_discord=False)
@example(values={"XAI_API_KEY": "k", "XAI_JOB_TIMEOUT_SECONDS": "inf"}, need_discord=False)
@example(values={"XAI_API_KEY": "k", "DATABASE_PATH": "a\x00b"}, need_discord=False)
def test_settings_are_within_range_or_name_the_problem(values: dict[str, str], need_discord: bool) -> None:
    try:
        loaded = load_settings(values, need_discord=need_discord)
    except ConfigError as error:
        message = str(error)
        assert message and any(name in message for name in SETTING_NAMES), message
        return
    xai = loaded.xai
    numbers: list[tuple[float, float]] = [
        (xai.max_requests_per_minute, 1),
        (xai.max_concurrent_jobs, 1),
        (xai.job_timeout_s, 1),
        (xai.request_timeout_s, 1),
        (xai.first_poll_s, 0.1),
        (xai.max_poll_interval_s, 0.5),
        (xai.max_download_bytes, 1024 * 1024),
    ]
    for value, minimum in numbers:
        assert math.isfinite(value) and value >= minimum
    assert xai.api_key.reveal().strip() and xai.base_url.startswith(("http://", "https://", "ws://", "wss://"))
    assert xai.download_hosts and all(valid_entry(entry) for entry in xai.download_hosts)
    assert loaded.log_level in {"DEBUG", "INFO", "WARNING", "ERROR"}
    assert "\x00" not in str(loaded.database_path)
    if need_discord:
        assert loaded.discord is not None
    if loaded.discord is not None:
        assert loaded.discord.token.reveal().strip()
        assert loaded.discord.dev_guild_id is None or loaded.discord.dev_guild_id >= 1


@pytest.mark.parametrize("raw", ["nan", "inf", "-inf", "NaN", "Infinity"])
def test_non_finite_numbers_are_refused(raw: str) -> None:
    """float() accepts these words; no setting means them."""
    values: dict[str, Any] = {"XAI_API_KEY": "k", "XAI_MAX_REQUESTS_PER_MINUTE": raw}
    with pytest.raises(ConfigError, match="XAI_MAX_REQUESTS_PER_MINUTE"):
        load_settings(values, need_discord=False)
