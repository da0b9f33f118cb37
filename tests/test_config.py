"""Settings: clear one-line refusals, sensible defaults, secrets that never show."""

from __future__ import annotations

import pytest

from services.config import ConfigError, Secret, load_settings

BASE = {"XAI_API_KEY": "xai-secret-123", "DISCORD_TOKEN": "discord-secret-456"}


def test_defaults_follow_the_documented_limits() -> None:
    """Unset values take the seed's limits: 60 requests a minute, 15 jobs at once, 10 minutes."""
    settings = load_settings(BASE)
    assert settings.xai.base_url == "https://api.x.ai/v1"
    assert settings.xai.model == "grok-imagine-video"
    assert (settings.xai.max_requests_per_minute, settings.xai.max_concurrent_jobs) == (60, 15)
    assert settings.xai.job_timeout_s == 600
    assert str(settings.database_path).startswith("data")


@pytest.mark.parametrize("missing", ["XAI_API_KEY", "DISCORD_TOKEN"])
def test_a_missing_secret_names_the_variable_and_where_to_get_it(missing: str) -> None:
    """The error is one line naming the variable and the place to get a value."""
    values = {k: v for k, v in BASE.items() if k != missing}
    with pytest.raises(ConfigError) as caught:
        load_settings(values)
    message = str(caught.value)
    assert missing in message and "\n" not in message and "https://" in message


def test_the_terminal_command_needs_only_the_xai_key() -> None:
    """`generate` works without any Discord setting."""
    settings = load_settings({"XAI_API_KEY": "k"}, need_discord=False)
    assert settings.discord is None


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("XAI_MAX_REQUESTS_PER_MINUTE", "lots"),
        ("XAI_MAX_CONCURRENT_JOBS", "0"),
        ("XAI_JOB_TIMEOUT_SECONDS", "-5"),
        ("XAI_BASE_URL", "api.x.ai"),
        ("DEV_GUILD_ID", "my-server"),
        ("ENABLE_REPLY_TRIGGER", "maybe"),
        ("LOG_LEVEL", "LOUD"),
    ],
)
def test_malformed_values_are_refused_by_name(name: str, value: str) -> None:
    """A malformed value stops start-up with a line that names it and says what it should be."""
    with pytest.raises(ConfigError, match=name):
        load_settings({**BASE, name: value})


def test_secrets_never_show_in_reprs() -> None:
    """Neither the settings' repr nor str reveal a key or token."""
    settings = load_settings(BASE)
    text = repr(settings) + str(settings)
    assert "xai-secret-123" not in text and "discord-secret-456" not in text
    assert Secret("x").reveal() == "x"
