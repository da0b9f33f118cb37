"""Where the settings come from: the ``.env`` file (found, read, its proxy variables exported) and typed reads.

services/config.py turns these values into settings; this module only finds and reads them, and says in one
line what is wrong (``ConfigError``, defined here so that config.py can import this module without a cycle;
the rest of the bot imports it from services.config).
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

from dotenv import dotenv_values

from services.media.hosts import valid_entry

T = TypeVar("T")

# Where bot.py lives (services/ sits beside it, from a checkout or installed).
BOT_DIR = Path(__file__).resolve().parent.parent
# Read from the process environment itself (services/process/proxies.py), not from our settings; netrc is never read.
PROXY_VARIABLES = frozenset({"HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY", "WS_PROXY", "WSS_PROXY"})


class ConfigError(Exception):
    """A setting is missing or malformed. ``str(error)`` is the one line to show."""


def gather(
    values: Mapping[str, str] | None, folders: Sequence[Path] | None = None
) -> tuple[Path | None, Mapping[str, str]]:
    """The ``.env`` read (or None) and the values to use: ``values`` when given, else the environment over the
    ``.env`` that ``find_env_file`` picks (whose proxy variables then join the process environment)."""
    if values is not None:
        return None, values
    env_file = find_env_file(os.environ, folders)
    file_values = read_env_file(env_file)
    export_proxy_variables(file_values)
    return env_file, {**file_values, **os.environ}


def find_env_file(environ: Mapping[str, str], folders: Sequence[Path] | None = None) -> Path | None:
    """The ``.env`` to read: ``ENV_FILE`` when set (``none`` reads none), else the first in ``folders``.

    ``folders`` defaults to the working directory, then the folder of bot.py, so a service started
    from elsewhere (a systemd unit without WorkingDirectory) still finds the file beside the bot.
    """
    chosen = environ.get("ENV_FILE", "").strip()
    if chosen.lower() == "none":
        return None
    if chosen:
        path = Path(chosen).expanduser()
        if not path.is_file():
            raise ConfigError(f"ENV_FILE={chosen!r} is not valid: it should be the path of a file of settings, or none")
        return path
    for folder in env_folders() if folders is None else folders:
        candidate = folder / ".env"
        if candidate.is_file():
            return candidate
    return None


def env_folders() -> list[Path]:
    """Where ``.env`` is looked for, in order: the working directory, then the folder of bot.py."""
    folders: list[Path] = []
    with contextlib.suppress(OSError):  # the working directory may have been deleted
        folders.append(Path.cwd())
    if BOT_DIR not in folders:
        folders.append(BOT_DIR)
    return folders


def read_env_file(env_file: str | Path | None) -> dict[str, str]:
    """The values written in ``env_file`` (none when it is None or missing); unreadable text is a ConfigError."""
    if env_file is None or not Path(env_file).is_file():
        return {}
    try:
        # utf-8-sig: a file saved by Notepad starts with a byte-order mark; CRLF lines are fine as they are.
        parsed = dotenv_values(env_file, encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise ConfigError(f'{env_file} is not UTF-8 text: save it again as UTF-8 (not UTF-16 or "Unicode")') from None
    except OSError as error:
        raise ConfigError(f"{env_file} cannot be read ({error.strerror or error})") from None
    return {key: value for key, value in parsed.items() if value is not None}


def export_proxy_variables(file_values: Mapping[str, str]) -> None:
    """Proxy variables written in .env join the process environment (unless it has them), so every client sees them."""
    for key, value in file_values.items():
        if key.upper() in PROXY_VARIABLES and key not in os.environ and key.swapcase() not in os.environ:
            os.environ[key] = value


class Env:
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

    def number(
        self, name: str, default: T, parse: Callable[[str], T], minimum: float, what: str, maximum: float = math.inf
    ) -> T:
        raw = self.text(name)
        if raw is None:
            return default
        try:
            value = parse(raw)
        except ValueError:
            raise ConfigError(f"{name}={raw!r} is not valid: it should be {what}") from None
        # NaN compares false with everything and infinity is no real setting: both are refused.
        if not math.isfinite(value) or not minimum <= value <= maximum:  # type: ignore[arg-type, operator]
            raise ConfigError(f"{name}={raw!r} is not valid: it should be {what}")
        return value

    def price(self, name: str, default: float, example: str) -> float:
        """A price per second of video: more than 0, or every job would cost $0 against the dollar caps."""
        what = f"a price in US dollars per second of video, more than 0, like {example}"
        value = self.number(name, default, float, 0, what)
        if value <= 0:
            raise ConfigError(f"{name}={self.text(name)!r} is not valid: it should be {what}")
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
