"""Settings: clear one-line refusals, sensible defaults, secrets that never show."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import bot
from services.config import ConfigError, Secret, load_settings
from services.environment import env_folders, find_env_file

BASE = {"XAI_API_KEY": "xai-secret-123", "DISCORD_TOKEN": "discord-secret-456"}


def test_defaults_follow_the_documented_limits() -> None:
    """Unset values take the seed's limits: 60 requests a minute, 15 jobs at once, 10 minutes."""
    settings = load_settings(BASE)
    assert settings.xai.base_url == "https://api.x.ai/v1"
    assert settings.xai.model == "grok-imagine-video-1.5-lite"  # the cheapest, as xAI recommends for simple clips
    assert settings.limits.catalog.names == (
        "grok-imagine-video-1.5-lite",
        "grok-imagine-video-1.5",
        "grok-imagine-video",
    )
    assert settings.limits.confirm_usd == 0.5
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


# -- where .env comes from ----------------------------------------------------------------------------------

SETTING_NAMES = ("XAI_API_KEY", "DISCORD_TOKEN", "DATABASE_PATH", "LOG_LEVEL", "ENV_FILE", "HTTPS_PROXY", "https_proxy")


@pytest.fixture
def bare_environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No bot setting in the process environment; whatever a test adds to it is undone afterwards."""
    for name in SETTING_NAMES:
        monkeypatch.setenv(name, "x")  # recorded, so even a key the code itself adds is removed at the end
        monkeypatch.delenv(name)
    return monkeypatch


def test_env_is_looked_for_in_the_working_directory_then_beside_the_bot(tmp_path: Path) -> None:
    """The first folder with a .env wins; none found is None (the environment alone)."""
    here, beside_bot = tmp_path / "cwd", tmp_path / "bot"
    here.mkdir()
    beside_bot.mkdir()
    assert find_env_file({}, [here, beside_bot]) is None
    (beside_bot / ".env").write_text("XAI_API_KEY=b\n")
    assert find_env_file({}, [here, beside_bot]) == beside_bot / ".env"
    (here / ".env").write_text("XAI_API_KEY=a\n")
    assert find_env_file({}, [here, beside_bot]) == here / ".env"
    assert env_folders()[-1] == Path(bot.__file__).resolve().parent  # the default: cwd, then bot.py's folder


def test_env_file_names_the_file_or_none(tmp_path: Path) -> None:
    """ENV_FILE=path reads that file, ENV_FILE=none reads none, a missing one is refused by name."""
    chosen = tmp_path / "bot.env"
    chosen.write_text("XAI_API_KEY=k\n")
    (tmp_path / ".env").write_text("XAI_API_KEY=other\n")
    assert find_env_file({"ENV_FILE": str(chosen)}, [tmp_path]) == chosen
    assert find_env_file({"ENV_FILE": "none"}, [tmp_path]) is None
    with pytest.raises(ConfigError, match="ENV_FILE"):
        find_env_file({"ENV_FILE": str(tmp_path / "missing.env")}, [tmp_path])


def test_a_bom_and_crlf_lines_are_read_as_written(tmp_path: Path, bare_environment: pytest.MonkeyPatch) -> None:
    """A .env saved by Notepad (byte-order mark, CRLF) gives the same settings as a plain one."""
    (tmp_path / ".env").write_bytes(b"\xef\xbb\xbfXAI_API_KEY=xai-k\r\nDISCORD_TOKEN=tok \r\nLOG_LEVEL=DEBUG\r\n")
    settings = load_settings(folders=[tmp_path])
    assert settings.xai.api_key.reveal() == "xai-k" and settings.log_level == "DEBUG"
    assert settings.discord is not None and settings.discord.token.reveal() == "tok"
    assert settings.env_file == tmp_path / ".env"


def test_a_utf16_env_file_is_one_line(tmp_path: Path, bare_environment: pytest.MonkeyPatch) -> None:
    """A .env saved as UTF-16 ("Unicode" in old Notepad) is refused with words, not a UnicodeDecodeError."""
    (tmp_path / ".env").write_text("XAI_API_KEY=k\n", encoding="utf-16")
    with pytest.raises(ConfigError, match="not UTF-8 text") as caught:
        load_settings(folders=[tmp_path])
    assert "\n" not in str(caught.value)


def test_the_environment_wins_over_the_file(tmp_path: Path, bare_environment: pytest.MonkeyPatch) -> None:
    """A variable set in the environment overrides .env, even when it is set empty."""
    (tmp_path / ".env").write_text("XAI_API_KEY=from-file\nDISCORD_TOKEN=from-file\nLOG_LEVEL=DEBUG\n")
    bare_environment.setenv("XAI_API_KEY", "from-env")
    bare_environment.setenv("LOG_LEVEL", "")
    settings = load_settings(folders=[tmp_path])
    assert settings.xai.api_key.reveal() == "from-env" and settings.log_level == "INFO"


def test_a_relative_database_path_stays_with_the_env_file(tmp_path: Path, bare_environment: pytest.MonkeyPatch) -> None:
    """Started from elsewhere with the .env beside the bot, the store goes beside that .env, not into the cwd."""
    install, elsewhere = tmp_path / "install", tmp_path / "elsewhere"
    install.mkdir()
    elsewhere.mkdir()
    (install / ".env").write_text("XAI_API_KEY=k\nDISCORD_TOKEN=t\n")
    bare_environment.chdir(elsewhere)
    settings = load_settings(folders=[elsewhere, install])
    assert settings.database_path == install.resolve() / "data" / "grok-video-bot.sqlite3"
    bare_environment.chdir(install)  # started in the install folder: relative, as before
    assert load_settings(folders=[install]).database_path == Path("data/grok-video-bot.sqlite3")


def test_proxy_variables_in_env_reach_every_client(tmp_path: Path, bare_environment: pytest.MonkeyPatch) -> None:
    """HTTPS_PROXY written in .env joins the process environment (aiohttp and urllib read only that)."""
    (tmp_path / ".env").write_text("XAI_API_KEY=k\nHTTPS_PROXY=http://proxy.internal:3128\n")
    load_settings(folders=[tmp_path], need_discord=False)
    assert os.environ["HTTPS_PROXY"] == "http://proxy.internal:3128"
    bare_environment.setenv("HTTPS_PROXY", "http://mine:1")
    load_settings(folders=[tmp_path], need_discord=False)
    assert os.environ["HTTPS_PROXY"] == "http://mine:1"  # the real environment still wins


def test_start_up_retry_delays_are_settings() -> None:
    """5 s doubling to 60 s by default; both settable; a cap below the first delay is refused by name."""
    settings = load_settings(BASE)
    assert settings.discord is not None
    assert (settings.discord.retry_first_s, settings.discord.retry_max_s) == (5.0, 60.0)
    quick = load_settings({**BASE, "DISCORD_RETRY_FIRST_SECONDS": "0.2", "DISCORD_RETRY_MAX_SECONDS": "1"})
    assert quick.discord is not None and (quick.discord.retry_first_s, quick.discord.retry_max_s) == (0.2, 1.0)
    with pytest.raises(ConfigError, match="DISCORD_RETRY_MAX_SECONDS"):
        load_settings({**BASE, "DISCORD_RETRY_FIRST_SECONDS": "10", "DISCORD_RETRY_MAX_SECONDS": "5"})
    with pytest.raises(ConfigError, match="DISCORD_RETRY_FIRST_SECONDS"):
        load_settings({**BASE, "DISCORD_RETRY_FIRST_SECONDS": "0"})


@pytest.mark.parametrize("name", ["XAI_USD_PER_SECOND_480P", "XAI_USD_PER_SECOND_720P"])
@pytest.mark.parametrize("value", ["0", "0.0", "-0.05"])
def test_a_price_of_zero_or_less_is_refused(name: str, value: str) -> None:
    """A $0 price would make every job free against the dollar caps: one line names it and asks for more than 0."""
    with pytest.raises(ConfigError) as refused:
        load_settings({**BASE, name: value})
    assert str(refused.value) == (
        f"{name}={value!r} is not valid: it should be a price in US dollars per second of video, more than 0, "
        f"like {'0.05' if name.endswith('480P') else '0.07'}"
    )
    limits = load_settings({**BASE, name: "0.001"}).limits  # a tiny price is still a price: the classic model's
    assert 10_000_000 in limits.catalog.spec("grok-imagine-video").ticks_per_second.values()
