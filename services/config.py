"""Settings, read once at start from the environment and ``.env`` (found and read by services/environment.py).

A missing or malformed value stops start-up with one line that names the variable and says what
it should be. Secrets are wrapped so that no repr, log line or exception can show them. ``ConfigError``,
``env_folders`` and ``PROXY_VARIABLES`` live in services/environment.py and are imported from here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from services.cluster.shards import ShardPlan, ShardSettingError, shard_plan
from services.environment import PROXY_VARIABLES as PROXY_VARIABLES
from services.environment import ConfigError as ConfigError
from services.environment import Env, gather
from services.environment import env_folders as env_folders
from services.media.hosts import DEFAULT_XAI_DOWNLOAD_HOSTS
from services.policy.guild_policy import LimitDefaults
from services.xai.catalog import BUILT_IN, CLASSIC, DEFAULT_OFFER, Catalog, CatalogError, build_catalog, parse_prices

XAI_KEY_HELP = "create one at https://console.x.ai/ and put it in .env as XAI_API_KEY=..."
DISCORD_SETUP_HELP = (
    "create an application at https://discord.com/developers/applications, open Bot, "
    "press Reset Token and put it in .env as DISCORD_TOKEN=..."
)
DISCORD_REFUSED_LOGIN = (
    "Discord rejected DISCORD_TOKEN. Copy a fresh token from https://discord.com/developers/applications "
    "(your app > Bot > Reset Token) into .env"
)


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
    model: str = DEFAULT_OFFER[0]  # the default model: the catalog's first
    models: tuple[str, ...] = DEFAULT_OFFER  # every offered model (XAI_MODELS), for `check`
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
    # Start-up waits this long after Discord could not be reached, doubling up to retry_max_s.
    retry_first_s: float = 5.0
    retry_max_s: float = 60.0
    # DISCORD_SHARD_COUNT / DISCORD_SHARD_IDS: the shards this process runs (None: one shard, no sharding).
    shards: ShardPlan | None = None
    identify_interval_s: float = 5.0  # Discord's spacing of IDENTIFYs; only the tests' emulator shortens it


@dataclass(frozen=True, slots=True)
class RetentionSettings:
    """How long finished videos and stored inputs are kept, and how often the janitor looks.

    The janitor is ``services/media/retention.py``.
    """

    keep_days: float | None = 7.0  # after a job ended; None (MEDIA_RETENTION_DAYS=0) keeps them forever
    sweep_interval_s: float = 3600.0
    first_sweep_s: float = 60.0  # after start: start-up itself is never slowed down by a sweep
    orphan_age_s: float = 6 * 3600.0  # a stray file (a .part, a crash's copy, an unknown job's) goes when this old


@dataclass(frozen=True, slots=True)
class ObserveSettings:
    """How an operator watches the bot: /healthz and /metrics (services/observe/), and the log format."""

    http_port: int | None = None  # HTTP_PORT; None serves nothing
    http_host: str = "127.0.0.1"  # HTTP_HOST: localhost unless the admin opens it
    log_format: str = "text"  # LOG_FORMAT: "text" or "json" (one object per line)


@dataclass(frozen=True, slots=True)
class CommonSettings:
    """What every command reads: where the store is, the .env that was read, and how to log and be watched.

    ``backup`` and ``migrate-store`` need nothing more, so they run without an xAI key or a Discord token.
    """

    database_path: Path  # the SQLite file; with database_url, where the bot's files (videos) are kept beside
    log_level: str = "INFO"
    env_file: Path | None = None  # the .env that was read, if any (start-up logs it)
    observe: ObserveSettings = field(default_factory=ObserveSettings)
    database_url: Secret | None = None  # DATABASE_URL: the store in PostgreSQL instead (it may hold a password)


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings(CommonSettings):
    """Everything the bot, ``sync``, ``generate`` and ``check`` read: the common settings, xAI, Discord, limits."""

    xai: XaiSettings
    discord: DiscordSettings | None = None
    limits: LimitDefaults = field(default_factory=LimitDefaults)
    retention: RetentionSettings = field(default_factory=RetentionSettings)


def _shards(env: Env) -> ShardPlan | None:
    try:
        return shard_plan(env.text("DISCORD_SHARD_COUNT"), env.text("DISCORD_SHARD_IDS"))
    except ShardSettingError as error:
        raise ConfigError(str(error)) from None


def _database_url(raw: str | None) -> Secret | None:
    """PostgreSQL's address, when the store is to live there (never echoed: it may carry a password)."""
    if raw is None:
        return None
    if not raw.startswith(("postgresql://", "postgres://")) or not raw.split("://", 1)[1]:
        raise ConfigError(
            "DATABASE_URL is not valid: it should be a PostgreSQL URL like postgresql://user:password@host:5432/dbname "
            "(or leave it unset to keep the store in the SQLite file DATABASE_PATH)"
        )
    return Secret(raw)


def _database_path(raw: str, relative_to: Path | None) -> Path:
    if "\x00" in raw:
        raise ConfigError(f"DATABASE_PATH={raw!r} is not valid: it should be a file path")
    path = Path(raw)
    with contextlib.suppress(RuntimeError):  # no home folder to expand "~" to: keep it as written
        path = path.expanduser()
    # A relative path belongs with the .env that was read: a service started from another folder
    # (systemd without WorkingDirectory) keeps its store beside its settings, not in "/data".
    if relative_to is not None and raw != ":memory:" and not path.is_absolute():
        path = relative_to / path
    return path


MAX_POLL_SECONDS = 3600.0  # an hour: beyond it a poll setting is a typo, and the policy's arithmetic overflows


def _poll_seconds(env: Env, name: str, default: float, minimum: float) -> float:
    """XAI_FIRST_POLL_SECONDS or XAI_MAX_POLL_INTERVAL_SECONDS: seconds between ``minimum`` and an hour. A huge
    value (1e308) overflowed the polling policy's belief and stopped every poll."""
    what = f"a number of seconds, at least {minimum:g} and at most {MAX_POLL_SECONDS:g}"
    return env.number(name, default, float, minimum, what, maximum=MAX_POLL_SECONDS)


def load_common_settings(
    values: Mapping[str, str] | None = None, *, folders: Sequence[Path] | None = None
) -> CommonSettings:
    """Only what every command reads (``backup``, ``migrate-store``): no xAI key or Discord token is asked for, and
    no HTTP_PORT (only the bot serves pages), so a setting of the bot's own never stops a backup."""
    env_file, values = gather(values, folders)
    return _common(Env(values), env_file, serving=False)


def load_settings(
    values: Mapping[str, str] | None = None, *, need_discord: bool = True, folders: Sequence[Path] | None = None
) -> Settings:
    """Validate everything at once. The terminal command passes ``need_discord=False``.

    Without ``values`` the settings come from the environment over the ``.env`` that ``find_env_file`` picks.
    """
    env_file, values = gather(values, folders)
    env = Env(values)
    api_key = Secret(env.required("XAI_API_KEY", XAI_KEY_HELP))
    catalog = _catalog(env)
    xai = XaiSettings(
        api_key=api_key,
        base_url=env.url("XAI_BASE_URL", "https://api.x.ai/v1") or "https://api.x.ai/v1",
        model=catalog.default.name,
        models=catalog.names,
        max_requests_per_minute=env.number(
            "XAI_MAX_REQUESTS_PER_MINUTE", 60.0, float, 1, "a number of requests per minute, at least 1"
        ),
        max_concurrent_jobs=env.number("XAI_MAX_CONCURRENT_JOBS", 15, int, 1, "a whole number, at least 1"),
        job_timeout_s=env.number("XAI_JOB_TIMEOUT_SECONDS", 600.0, float, 1, "a number of seconds, at least 1"),
        request_timeout_s=env.number("XAI_REQUEST_TIMEOUT_SECONDS", 30.0, float, 1, "a number of seconds, at least 1"),
        first_poll_s=_poll_seconds(env, "XAI_FIRST_POLL_SECONDS", 2.0, 0.1),
        max_poll_interval_s=_poll_seconds(env, "XAI_MAX_POLL_INTERVAL_SECONDS", 30.0, 0.5),
        max_download_bytes=env.number("XAI_MAX_DOWNLOAD_MB", 200, int, 1, "a whole number of megabytes, at least 1")
        * 1024
        * 1024,
        download_hosts=env.hosts("XAI_DOWNLOAD_HOSTS", DEFAULT_XAI_DOWNLOAD_HOSTS),
    )
    discord: DiscordSettings | None = None
    token = env.text("DISCORD_TOKEN")
    if need_discord or token is not None:
        retry_first_s, retry_max_s = _retry_delays(env)
        discord = DiscordSettings(
            token=Secret(env.required("DISCORD_TOKEN", DISCORD_SETUP_HELP)),
            api_base_url=env.url("DISCORD_API_BASE_URL", None),
            gateway_url=env.url("DISCORD_GATEWAY_URL", None),
            dev_guild_id=env.number("DEV_GUILD_ID", 0, int, 1, "a server id (a long number)") or None,
            enable_reply_trigger=env.flag("ENABLE_REPLY_TRIGGER"),
            retry_first_s=retry_first_s,
            retry_max_s=retry_max_s,
            shards=_shards(env),
            identify_interval_s=env.number("DISCORD_IDENTIFY_INTERVAL_SECONDS", 5.0, float, 0.0, "a number of seconds"),
        )
    common = _common(env, env_file)
    return Settings(
        xai=xai,
        discord=discord,
        limits=_limit_defaults(env, catalog),
        retention=_retention(env),
        database_path=common.database_path,
        database_url=common.database_url,
        log_level=common.log_level,
        env_file=common.env_file,
        observe=common.observe,
    )


def _common(env: Env, env_file: Path | None, *, serving: bool = True) -> CommonSettings:
    log_level = (env.text("LOG_LEVEL", "INFO") or "INFO").upper()
    if log_level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        raise ConfigError(f"LOG_LEVEL={log_level!r} is not valid: it should be DEBUG, INFO, WARNING or ERROR")
    return CommonSettings(
        database_path=_database_path(
            env.text("DATABASE_PATH", "data/grok-video-bot.sqlite3") or "", _folder_of(env_file)
        ),
        database_url=_database_url(env.text("DATABASE_URL")),
        log_level=log_level,
        env_file=env_file,
        observe=_observe(env, serving=serving),
    )


def _observe(env: Env, *, serving: bool) -> ObserveSettings:
    """The log format, and (``serving``: the commands that run the bot's pages) where /healthz and /metrics go."""
    what = "a port number from 1 to 65535, or empty for none"
    port = env.number("HTTP_PORT", 0, int, 1, what, maximum=65535) if serving else 0
    log_format = (env.text("LOG_FORMAT", "text") or "text").lower()
    if log_format not in {"text", "json"}:
        raise ConfigError(f"LOG_FORMAT={log_format!r} is not valid: it should be text or json")
    host = env.text("HTTP_HOST", "127.0.0.1") or "127.0.0.1"
    return ObserveSettings(http_port=port or None, http_host=host, log_format=log_format)


def _folder_of(env_file: Path | None) -> Path | None:
    """The folder relative paths are taken from: the .env's, unless it is the working directory anyway."""
    if env_file is None:
        return None
    folder = env_file.parent.resolve()
    with contextlib.suppress(OSError):
        if folder == Path.cwd().resolve():
            return None
    return folder


def _retry_delays(env: Env) -> tuple[float, float]:
    """How long start-up waits after Discord could not be reached: the first delay, doubling up to the longest."""
    first = env.number("DISCORD_RETRY_FIRST_SECONDS", 5.0, float, 0.1, "a number of seconds, at least 0.1")
    longest = env.number("DISCORD_RETRY_MAX_SECONDS", 60.0, float, 0.1, "a number of seconds, at least 0.1")
    if longest < first:
        raise ConfigError(
            f"DISCORD_RETRY_MAX_SECONDS={longest:g} is not valid: it should be at least DISCORD_RETRY_FIRST_SECONDS "
            f"({first:g})"
        )
    return first, longest


def _retention(env: Env) -> RetentionSettings:
    """Days may be fractions (0.5 is twelve hours); 0 keeps media forever, like 0 means "no limit" elsewhere."""
    days = env.number("MEDIA_RETENTION_DAYS", 7.0, float, 0, "a number of days (0.5 is 12 hours), 0 to keep forever")
    minutes = env.number("MEDIA_SWEEP_MINUTES", 60.0, float, 1, "a number of minutes, at least 1")
    return RetentionSettings(keep_days=days or None, sweep_interval_s=minutes * 60)


def _catalog(env: Env) -> Catalog:
    """The offered models (``XAI_MODELS``, the first the default) and their prices (``XAI_PRICES``, in dollars
    per second). ``XAI_MODEL`` still names the default model (moved first); the old classic-model prices
    ``XAI_USD_PER_SECOND_480P`` / ``_720P`` still set grok-imagine-video's, unless ``XAI_PRICES`` does too."""
    names = [name.strip() for name in (env.text("XAI_MODELS") or ",".join(DEFAULT_OFFER)).split(",")]
    default = env.text("XAI_MODEL")
    if default is not None:
        if env.text("XAI_MODELS") is not None and default not in names:
            raise ConfigError(f"XAI_MODEL={default!r} is not one of XAI_MODELS: add it there, or leave XAI_MODEL out")
        if default not in names and default not in BUILT_IN:  # the error below would blame XAI_MODELS, unset
            raise ConfigError(
                f"XAI_MODEL names {default}, which the bot does not know: use one of {', '.join(BUILT_IN)}, "
                "or describe it in XAI_MODELS and XAI_PRICES"
            )
        names = [default, *(name for name in names if name != default)]
    try:
        prices = parse_prices(env.text("XAI_PRICES"))
        old = {key: env.text(f"XAI_USD_PER_SECOND_{key.upper()}") for key in ("480p", "720p")}
        old_set = {key: value for key, value in old.items() if value is not None}
        if old_set:
            if CLASSIC in prices:
                raise ConfigError(
                    "XAI_USD_PER_SECOND_480P/720P and XAI_PRICES both price grok-imagine-video: keep only XAI_PRICES"
                )
            for key in old_set:  # the old check and message
                env.price(f"XAI_USD_PER_SECOND_{key.upper()}", 0.05, "0.05" if key == "480p" else "0.07")
            if CLASSIC in names:
                prices[CLASSIC] = old_set
        return build_catalog(names, prices)
    except CatalogError as error:
        raise ConfigError(str(error)) from None


def _limit_defaults(env: Env, catalog: Catalog) -> LimitDefaults:
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
        confirm_usd=env.limit("CONFIRM_ABOVE_USD", base.confirm_usd, float),
        catalog=catalog,
    )
