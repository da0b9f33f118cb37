"""Settings, read once at start from the environment and ``.env``.

A missing or malformed value stops start-up with one line that names the variable and says what
it should be. Secrets are wrapped so that no repr, log line or exception can show them.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from dotenv import dotenv_values

from services.hosts import DEFAULT_XAI_DOWNLOAD_HOSTS, valid_entry
from services.policy import LimitDefaults

T = TypeVar("T")

XAI_KEY_HELP = "create one at https://console.x.ai/ and put it in .env as XAI_API_KEY=..."
DISCORD_SETUP_HELP = (
    "create an application at https://discord.com/developers/applications, open Bot, "
    "press Reset Token and put it in .env as DISCORD_TOKEN=..."
)
DISCORD_REFUSED_LOGIN = (
    "Discord rejected DISCORD_TOKEN. Copy a fresh token from https://discord.com/developers/applications "
    "(your app > Bot > Reset Token) into .env"
)


class ConfigError(Exception):
    """A setting is missing or malformed. ``str(error)`` is the one line to show."""


class Secret:
    """A string that never shows itself. Call ``reveal()`` at the single place it is sent."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)


@dataclass(frozen=True, slots=True)
class XaiSettings:
    api_key: Secret
    base_url: str = "https://api.x.ai/v1"
    model: str = "grok-imagine-video"
    max_requests_per_minute: float = 60.0
    max_concurrent_jobs: int = 15
    job_timeout_s: float = 600.0
    request_timeout_s: float = 30.0
    first_poll_s: float = 2.0
    max_poll_interval_s: float = 30.0
    max_download_bytes: int = 200 * 1024 * 1024
    download_hosts: tuple[str, ...] = DEFAULT_XAI_DOWNLOAD_HOSTS


@dataclass(frozen=True, slots=True)
class DiscordSettings:
    token: Secret
    api_base_url: str | None = None
    gateway_url: str | None = None
    dev_guild_id: int | None = None
    enable_reply_trigger: bool = False


@dataclass(frozen=True, slots=True)
class Settings:
    xai: XaiSettings
    database_path: Path
    log_level: str = "INFO"
    discord: DiscordSettings | None = None
    limits: LimitDefaults = field(default_factory=LimitDefaults)


class _Env:
    """Typed reads from one mapping, each raising ConfigError that names the variable."""

    def __init__(self, values: Mapping[str, str]) -> None:
        self._values = values

    def text(self, name: str, default: str | None = None) -> str | None:
        value = self._values.get(name, "").strip()
        return value or default

    def required(self, name: str, help_text: str) -> str:
        value = self.text(name)
        if value is None:
            raise ConfigError(f"{name} is not set: {help_text}")
        return value

    def number(self, name: str, default: T, parse: Callable[[str], T], minimum: float, what: str) -> T:
        raw = self.text(name)
        if raw is None:
            return default
        try:
            value = parse(raw)
        except ValueError:
            raise ConfigError(f"{name}={raw!r} is not valid: it should be {what}") from None
        # NaN compares false with everything and infinity is no real setting: both are refused.
        if not math.isfinite(value) or value < minimum:  # type: ignore[arg-type, operator]
            raise ConfigError(f"{name}={raw!r} is not valid: it should be {what}")
        return value

    def limit(self, name: str, default: T, parse: Callable[[str], T]) -> T | None:
        """A limit where 0 means "no limit" (returned as None)."""
        value = self.number(name, default, parse, 0, "a number, 0 for no limit")
        return None if value == 0 else value

    def flag(self, name: str) -> bool:
        raw = (self.text(name) or "false").lower()
        if raw in {"1", "true", "yes", "on"}:
            return True
        if raw in {"0", "false", "no", "off"}:
            return False
        raise ConfigError(f"{name}={raw!r} is not valid: it should be true or false")

    def hosts(self, name: str, default: tuple[str, ...]) -> tuple[str, ...]:
        raw = self.text(name)
        if raw is None:
            return default
        entries = tuple(entry.strip().lower() for entry in raw.split(",") if entry.strip())
        bad = [entry for entry in entries if not valid_entry(entry)]
        if bad or not entries:
            raise ConfigError(
                f"{name}={raw!r} is not valid: it should be host names separated by commas, like vidgen.x.ai or *.x.ai"
            )
        return entries

    def url(self, name: str, default: str | None) -> str | None:
        raw = self.text(name, default)
        if raw is None:
            return None
        if not raw.startswith(("http://", "https://", "ws://", "wss://")):
            raise ConfigError(f"{name}={raw!r} is not valid: it should be a URL starting with https://")
        return raw.rstrip("/")


def read_environment(env_file: str | Path | None = ".env") -> dict[str, str]:
    """The process environment over the values of ``.env`` (the real environment wins)."""
    values: dict[str, str] = {}
    if env_file is not None and Path(env_file).is_file():
        values.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
    values.update(os.environ)
    return values


def _database_path(raw: str) -> Path:
    if "\x00" in raw:
        raise ConfigError(f"DATABASE_PATH={raw!r} is not valid: it should be a file path")
    return Path(raw)


def load_settings(values: Mapping[str, str] | None = None, *, need_discord: bool = True) -> Settings:
    """Validate everything at once. The terminal command passes ``need_discord=False``."""
    env = _Env(read_environment() if values is None else values)
    api_key = Secret(env.required("XAI_API_KEY", XAI_KEY_HELP))
    xai = XaiSettings(
        api_key=api_key,
        base_url=env.url("XAI_BASE_URL", "https://api.x.ai/v1") or "https://api.x.ai/v1",
        model=env.text("XAI_MODEL", "grok-imagine-video") or "grok-imagine-video",
        max_requests_per_minute=env.number(
            "XAI_MAX_REQUESTS_PER_MINUTE", 60.0, float, 1, "a number of requests per minute, at least 1"
        ),
        max_concurrent_jobs=env.number("XAI_MAX_CONCURRENT_JOBS", 15, int, 1, "a whole number, at least 1"),
        job_timeout_s=env.number("XAI_JOB_TIMEOUT_SECONDS", 600.0, float, 1, "a number of seconds, at least 1"),
        request_timeout_s=env.number("XAI_REQUEST_TIMEOUT_SECONDS", 30.0, float, 1, "a number of seconds, at least 1"),
        first_poll_s=env.number("XAI_FIRST_POLL_SECONDS", 2.0, float, 0.1, "a number of seconds, at least 0.1"),
        max_poll_interval_s=env.number(
            "XAI_MAX_POLL_INTERVAL_SECONDS", 30.0, float, 0.5, "a number of seconds, at least 0.5"
        ),
        max_download_bytes=env.number("XAI_MAX_DOWNLOAD_MB", 200, int, 1, "a whole number of megabytes, at least 1")
        * 1024
        * 1024,
        download_hosts=env.hosts("XAI_DOWNLOAD_HOSTS", DEFAULT_XAI_DOWNLOAD_HOSTS),
    )
    discord: DiscordSettings | None = None
    token = env.text("DISCORD_TOKEN")
    if need_discord or token is not None:
        discord = DiscordSettings(
            token=Secret(env.required("DISCORD_TOKEN", DISCORD_SETUP_HELP)),
            api_base_url=env.url("DISCORD_API_BASE_URL", None),
            gateway_url=env.url("DISCORD_GATEWAY_URL", None),
            dev_guild_id=env.number("DEV_GUILD_ID", 0, int, 1, "a server id (a long number)") or None,
            enable_reply_trigger=env.flag("ENABLE_REPLY_TRIGGER"),
        )
    log_level = (env.text("LOG_LEVEL", "INFO") or "INFO").upper()
    if log_level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        raise ConfigError(f"LOG_LEVEL={log_level!r} is not valid: it should be DEBUG, INFO, WARNING or ERROR")
    return Settings(
        xai=xai,
        database_path=_database_path(env.text("DATABASE_PATH", "data/grok-video-bot.sqlite3") or ""),
        log_level=log_level,
        discord=discord,
        limits=_limit_defaults(env),
    )


def _limit_defaults(env: _Env) -> LimitDefaults:
    """Every server starts from these; moderators change their own server's with /videoadmin."""
    base = LimitDefaults()
    return LimitDefaults(
        user_videos=env.limit("LIMIT_USER_VIDEOS", base.user_videos, int),
        user_window_minutes=env.number(
            "LIMIT_USER_WINDOW_MINUTES", base.user_window_minutes, int, 1, "a whole number of minutes, at least 1"
        ),
        user_active_jobs=env.limit("LIMIT_USER_ACTIVE_JOBS", base.user_active_jobs, int),
        server_videos_per_day=env.limit("LIMIT_SERVER_VIDEOS_PER_DAY", base.server_videos_per_day, int),
        server_usd_per_day=env.limit("LIMIT_SERVER_USD_PER_DAY", base.server_usd_per_day, float),
        usd_per_second_480p=env.number(
            "XAI_USD_PER_SECOND_480P", base.usd_per_second_480p, float, 0, "a price in US dollars, like 0.05"
        ),
        usd_per_second_720p=env.number(
            "XAI_USD_PER_SECOND_720P", base.usd_per_second_720p, float, 0, "a price in US dollars, like 0.07"
        ),
    )
