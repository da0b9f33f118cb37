"""A store the bot must not use is refused by every command in one line: a newer schema, a read-only disk, garbage."""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.cli import EXIT_CONFIG
from services.store.store import Store
from tests.botprocess import run_command
from tests.harness import BotRig

pytestmark = pytest.mark.sqlite_only  # DATABASE_PATH's one-line refusals

COMMANDS = [("run",), ("sync",), ("generate", "a fox"), ("check",)]


def _error_line(err: str) -> str:
    assert "Traceback" not in err, err
    [line] = [line for line in err.splitlines() if line.startswith("error:")]
    return line


async def _newer_store(path: Path) -> None:
    async with await Store.open(path):
        pass
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("PRAGMA user_version = 999")


@pytest.mark.parametrize("args", COMMANDS, ids=[args[0] for args in COMMANDS])
async def test_a_store_from_a_newer_version_is_refused_by_every_command(rig: BotRig, args: tuple[str, ...]) -> None:
    """run, sync, generate and check each end with exit 78 and one line; the store is left as it was."""
    await _newer_store(rig.database_path)
    status, out, err = await run_command(*args, env=rig.environment(), cwd=rig.tmp_path)
    assert status == EXIT_CONFIG, out + err
    if args[0] == "check":
        [failure] = [line for line in out.splitlines() if line.startswith("✗")]
        assert "newer version of the bot" in failure and "restore a backup" in failure
    else:
        line = _error_line(err)
        assert "newer version of the bot" in line and "schema 999" in line and "restore a backup" in line
    assert not rig.discord.gateway_log  # refused before logging in (check only looks, and asks xAI about the key)
    if args[0] != "check":
        assert not rig.xai.requests
    with contextlib.closing(sqlite3.connect(rig.database_path)) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 999


@pytest.mark.parametrize("args", COMMANDS[:3], ids=[args[0] for args in COMMANDS[:3]])
async def test_a_file_that_is_not_a_database_is_one_line(rig: BotRig, args: tuple[str, ...]) -> None:
    """Garbage at DATABASE_PATH: exit 78, one line naming DATABASE_PATH, no traceback."""
    rig.database_path.parent.mkdir(parents=True)
    rig.database_path.write_bytes(b"this is not sqlite" * 100)
    status, _, err = await run_command(*args, env=rig.environment(), cwd=rig.tmp_path)
    assert status == EXIT_CONFIG
    line = _error_line(err)
    assert "DATABASE_PATH" in line and "not a database" in line


async def test_a_folder_as_database_path_is_one_line(rig: BotRig) -> None:
    """DATABASE_PATH naming a folder says to name the file inside it."""
    folder = rig.tmp_path / "data"
    folder.mkdir()
    status, _, err = await run_command(env=rig.environment(DATABASE_PATH=str(folder)), cwd=rig.tmp_path)
    assert status == EXIT_CONFIG
    assert "is a folder" in _error_line(err)


@contextlib.contextmanager
def _read_only(*paths: Path) -> Iterator[None]:
    """Make ``paths`` unwritable: ``chmod`` for an ordinary user, ``chattr +i`` for root (whom chmod does not bind)."""
    if os.geteuid() == 0:
        chattr = shutil.which("chattr")
        if chattr is None or subprocess.run([chattr, "+i", *map(str, paths)], check=False).returncode:  # noqa: S603
            pytest.skip("running as root without chattr: no way to make a folder read-only here")
        try:
            yield
        finally:
            subprocess.run([chattr, "-i", *map(str, paths)], check=True)  # noqa: S603
        return
    modes = {path: path.stat().st_mode for path in paths}
    for path in paths:
        path.chmod(0o555 if path.is_dir() else 0o444)
    try:
        yield
    finally:
        for path, mode in modes.items():
            path.chmod(mode)


@pytest.mark.parametrize("args", COMMANDS[:3], ids=[args[0] for args in COMMANDS[:3]])
async def test_a_read_only_folder_is_one_line(rig: BotRig, args: tuple[str, ...]) -> None:
    """DATABASE_PATH in a folder the bot may not write: exit 78, one line naming DATABASE_PATH."""
    locked = rig.tmp_path / "locked"
    locked.mkdir()
    env = rig.environment(DATABASE_PATH=str(locked / "data" / "bot.sqlite3"))
    with _read_only(locked):
        status, _, err = await run_command(*args, env=env, cwd=rig.tmp_path)
    assert status == EXIT_CONFIG, err
    line = _error_line(err)
    assert "DATABASE_PATH" in line and ("Permission denied" in line or "Operation not permitted" in line), line


async def test_a_read_only_database_file_is_one_line(rig: BotRig) -> None:
    """A store file the bot may read but not write (its folder writable): exit 78, one line, nothing sent."""
    async with await Store.open(rig.database_path):
        pass
    files = sorted(rig.database_path.parent.iterdir())
    with _read_only(*files):
        status, _, err = await run_command("generate", "a fox", env=rig.environment(), cwd=rig.tmp_path)
    assert status == EXIT_CONFIG, err
    line = _error_line(err)
    assert "DATABASE_PATH" in line and "cannot be opened for writing" in line
    assert not rig.xai.requests
