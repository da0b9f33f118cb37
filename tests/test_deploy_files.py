"""The Dockerfile, compose.yaml and systemd units: what they run exists and starts the bot, and their paths
and ports agree with the settings' defaults. No Docker engine here, so the image is not built: its commands
are run as they are written, on this machine's Python, against the emulators."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tomllib
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml
from packaging.specifiers import SpecifierSet

from services.cli import EXIT_CONFIG
from services.config import load_settings
from services.observe.trouble import PROBE_TIMEOUT_S
from tests.botprocess import BotProcess
from tests.observe_pages import wait_for_health

ROOT = Path(__file__).resolve().parent.parent
MINIMAL = {"XAI_API_KEY": "xai-key", "DISCORD_TOKEN": "token"}


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in (ROOT / "Dockerfile").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        pending = f"{pending} {line}" if pending else line
        if pending.endswith("\\"):
            pending = pending[:-1].rstrip()
            continue
        keyword, _, rest = pending.partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
        pending = ""
    return instructions


def one(instructions: list[tuple[str, str]], keyword: str) -> str:
    found = [rest for key, rest in instructions if key == keyword]
    assert len(found) == 1, f"{keyword}: {found}"
    return found[0]


def image_env(instructions: list[tuple[str, str]]) -> dict[str, str]:
    values: dict[str, str] = {}
    for key, rest in instructions:
        if key == "ENV":
            for pair in shlex.split(rest):
                key_, _, value = pair.partition("=")
                values[key_] = value
    return values


def unit(path: Path) -> dict[str, list[str]]:
    """``Key`` -> every value it is given, across sections (systemd allows repeats, such as EnvironmentFile)."""
    values: dict[str, list[str]] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            values.setdefault(key.strip(), []).append(value.strip())
    return values


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _healthcheck_code(instructions: list[tuple[str, str]]) -> str:
    """The HEALTHCHECK's Python one-liner. It asks the port the bot serves, HTTP_PORT from the container's
    environment (the image's 8080, or another one an admin's ``docker run --env-file`` gives), never a copy."""
    command = json.loads(one(instructions, "HEALTHCHECK").split("CMD", 1)[1])
    assert command[:2] == ["python", "-c"]
    assert "http://127.0.0.1:%s/healthz' % os.environ['HTTP_PORT']" in command[2], command
    return str(command[2])


def test_the_image_agrees_with_the_settings_and_the_project() -> None:
    instructions = dockerfile()
    base = one(instructions, "FROM")
    version = re.fullmatch(r"python:(3\.\d+)-slim", base)
    assert version is not None, base
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert f"{version.group(1)}.0" in SpecifierSet(pyproject["project"]["requires-python"])
    runs = " && ".join(rest for key, rest in instructions if key == "RUN")
    assert (
        one(instructions, "USER") == "bot"
        and "useradd --uid 1000 --user-group" in runs
        and "chown bot:bot /data" in runs
    )
    env = image_env(instructions)
    volume = json.loads(one(instructions, "VOLUME"))
    assert volume == [str(PurePosixPath(env["DATABASE_PATH"]).parent)] == ["/data"]
    assert PurePosixPath(env["DATABASE_PATH"]).name == load_settings(MINIMAL).database_path.name
    _healthcheck_code(instructions)
    assert int(env["HTTP_PORT"]) == int(one(instructions, "EXPOSE"))
    assert env["MPLCONFIGDIR"].startswith("/tmp/")  # noqa: S108 - writable by the image's user, unlike its home /app
    assert env["ENV_FILE"] == "none"  # settings come from the environment (compose's env_file), no stray .env
    settings = load_settings({**MINIMAL, **env})
    assert settings.observe.http_port == int(env["HTTP_PORT"]) and str(settings.database_path) == env["DATABASE_PATH"]
    for key, rest in instructions:
        if key == "COPY":
            *sources, _ = shlex.split(rest)
            assert all((ROOT / source).exists() for source in sources), rest
    ignored = {line.strip().rstrip("/") for line in (ROOT / ".dockerignore").read_text().splitlines()}
    assert not ignored & {"bot.py", "cogs", "services", "pyproject.toml", "README.md", "LICENSE"}
    assert {".env", "data", ".venv", "tests"} <= ignored


def test_the_images_encoder_check_passes_here() -> None:
    """The build fails unless PyAV has the encoders the bot fits videos with; this machine's must too."""
    pieces = [piece.strip() for key, rest in dockerfile() if key == "RUN" for piece in rest.split("&&")]
    check = next(piece for piece in pieces if piece.startswith("python -c"))
    code = shlex.split(check)[2]
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)  # noqa: S603
    assert done.returncode == 0, done.stderr


@pytest.mark.sqlite_only  # the image's default store is the SQLite file on its volume
async def test_the_images_command_starts_the_bot_and_its_healthcheck_sees_it(bot: BotProcess, tmp_path: Path) -> None:
    """ENTRYPOINT + CMD with the image's ENV (the volume and the port moved to free ones here): the bot starts,
    the HEALTHCHECK command exits 0 against it, and non-zero once it is gone."""
    instructions = dockerfile()
    command = json.loads(one(instructions, "ENTRYPOINT")) + json.loads(one(instructions, "CMD"))
    assert command[:2] == ["python", "bot.py"]
    env = image_env(instructions)
    code = _healthcheck_code(instructions)
    port = _free_port()
    volume = tmp_path / "volume"
    env.update(DATABASE_PATH=str(volume / PurePosixPath(env["DATABASE_PATH"]).name), HTTP_PORT=str(port))
    env.update(HTTP_HOST="127.0.0.1")  # the image's 0.0.0.0, kept off the shared machine's other interfaces
    bot.overrides.update(env)
    await bot.spawn(*command[2:])
    await wait_for_health(f"http://127.0.0.1:{port}", 200, timeout=60)

    async def healthcheck() -> int:
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-c", code, env={**env, "PATH": os.environ["PATH"]}, stderr=asyncio.subprocess.DEVNULL
        )
        return await asyncio.wait_for(child.wait(), 30)

    assert await healthcheck() == 0
    assert (volume / "grok-video-bot.sqlite3").is_file()
    assert await bot.terminate() == 0
    assert await healthcheck() != 0


def test_compose_runs_the_image_with_the_same_paths_ports_and_env_file() -> None:
    compose: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
    instructions = dockerfile()
    env = image_env(instructions)
    volume = json.loads(one(instructions, "VOLUME"))[0]
    services = compose["services"]
    config_source = (ROOT / "services" / "config.py").read_text() + (
        ROOT / "services" / "cluster" / "shards.py"
    ).read_text()
    for name in ("bot", "bot-2"):
        service = services[name]
        assert service["build"] == "." and service["restart"] == "unless-stopped" and service["init"] is True
        assert service["env_file"] == [{"path": ".env", "required": True}]
        assert service["volumes"] == [f"bot-data:{volume}"]
        environment = service["environment"]
        assert environment["DATABASE_PATH"] == env["DATABASE_PATH"] and environment["HTTP_PORT"] == env["HTTP_PORT"]
        assert all(f'"{key}"' in config_source for key in environment), environment
        host_ip, _, container_port = service["ports"][0].split(":")
        assert host_ip == "127.0.0.1" and container_port == env["HTTP_PORT"]
    assert "profiles" not in services["bot"]
    assert services["postgres"]["profiles"] == services["bot-2"]["profiles"] == ["postgres"]
    assert services["bot-2"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["postgres"]["image"].startswith("postgres:")
    assert set(compose["volumes"]) == {"bot-data", "pg-data"}


def _units() -> list[Path]:
    return [ROOT / "deploy" / "grok-video-bot.service", ROOT / "deploy" / "grok-video-bot@.service"]


@pytest.mark.parametrize("path", _units(), ids=lambda p: p.name)
def test_the_systemd_units_run_the_bot_where_its_data_is(path: Path) -> None:
    values = unit(path)
    home = Path(values["WorkingDirectory"][0])
    python, script = shlex.split(values["ExecStart"][0])
    assert Path(python) == home / ".venv" / "bin" / "python" and script == "bot.py"
    # The bot parses its .env itself: systemd's EnvironmentFile keeps "KEY=value # note" whole and expands no
    # ${VAR}, and the environment wins over the file, so a .env that works by hand would fail under the unit.
    assert f"ENV_FILE={home / '.env'}" in values["Environment"]
    assert str(home / ".env") not in {path.lstrip("-") for path in values.get("EnvironmentFile", [])}
    default = load_settings(MINIMAL).database_path  # relative: taken from the .env's folder, WorkingDirectory here
    assert not default.is_absolute() and values["ReadWritePaths"] == [str(home / default.parent)]
    assert values["Restart"] == ["on-failure"] and values["RestartPreventExitStatus"] == [str(EXIT_CONFIG)]
    assert values["NoNewPrivileges"] == ["true"] and values["ProtectSystem"] == ["strict"]
    assert values["PrivateTmp"] == ["true"] and values["User"][0] not in ("root", "0")
    # matplotlib's cache would go under the read-only $HOME (a warning, and the font list rebuilt every start).
    assert f"MPLCONFIGDIR=/var/cache/{values['CacheDirectory'][0]}" in values["Environment"]
    if "@" in path.name:
        assert values["EnvironmentFile"] == [f"-{home}/instance-%i.env"]
    done = subprocess.run([sys.executable, script, "--help"], cwd=ROOT, capture_output=True, text=True, check=False)  # noqa: S603
    assert done.returncode == 0 and "backup" in done.stdout


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed here")
@pytest.mark.parametrize("path", _units(), ids=lambda p: p.name)
def test_systemd_analyze_verify_finds_nothing(path: Path, tmp_path: Path) -> None:
    """systemd's own check, on a copy pointed at this checkout (verify wants ExecStart to exist)."""
    home = Path(unit(path)["WorkingDirectory"][0])
    (tmp_path / "app" / "data").mkdir(parents=True)
    (tmp_path / "app" / ".env").touch()
    text = (
        path.read_text().replace(f"{home}/.venv/bin/python", sys.executable).replace(str(home), str(tmp_path / "app"))
    )
    copy = tmp_path / path.name.replace("@.", "@1.")
    copy.write_text(text)
    analyze = shutil.which("systemd-analyze")
    assert analyze is not None
    done = subprocess.run(  # noqa: S603
        [analyze, "verify", str(copy)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0 and not done.stdout.strip() and not done.stderr.strip(), done.stderr


def test_the_health_page_answers_before_the_images_healthcheck_gives_up() -> None:
    """A store that does not answer makes /healthz say so (503 and the reason, which ``docker inspect`` shows), but
    only if that answer comes before the image's check stops waiting: else Docker logs a bare client timeout."""
    check = " ".join(rest for key, rest in dockerfile() if key == "HEALTHCHECK")
    client_timeout = re.search(r"timeout=(\d+(?:\.\d+)?)\)", check)
    docker_timeout = re.search(r"--timeout=(\d+)s", check)
    assert client_timeout is not None and docker_timeout is not None, check
    assert float(client_timeout.group(1)) < float(docker_timeout.group(1))
    assert float(client_timeout.group(1)) >= PROBE_TIMEOUT_S + 0.5  # the page's own work on top of the probe
