"""One bot per SQLite file: real ``python bot.py`` processes on one database, as an admin might start them."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.botprocess import BotProcess, run_command
from tests.emulators.xai_emulator import XaiEmulator

pytestmark = pytest.mark.sqlite_only  # the SQLite file's instance lock

EXIT_STORE_IN_USE = 75  # the README's exit status for "another bot is using DATABASE_PATH"


def _lock_file(database: Path) -> Path:
    """The lock file the README names: DATABASE_PATH + ".lock", beside the database."""
    return database.with_name(database.name + ".lock")


async def _second_bot_refused(first: BotProcess, env: dict[str, str], cwd: Path) -> tuple[str, str]:
    """Another ``python bot.py`` with ``env`` exits 75 without a traceback, and ``first`` keeps its single gateway
    session (the second one never logged in); its (stdout, stderr)."""
    status, out, err = await run_command(env=env, cwd=cwd)
    assert status == EXIT_STORE_IN_USE, err
    assert "Traceback" not in err
    identifies = [entry for entry in first.discord.gateway_log if entry["event"] == "identify"]
    assert len(identifies) == 1 and first.alive
    return out, err


async def test_a_second_bot_on_the_same_database_refuses_with_one_line(bot: BotProcess, tmp_path: Path) -> None:
    """The second process exits 75 naming the first one's pid; the first keeps its single gateway session."""
    await bot.start()
    assert bot.process is not None
    out, err = await _second_bot_refused(bot, bot.environment(), tmp_path)
    assert not out
    [line] = [line for line in err.strip().splitlines() if line.startswith("error:")]
    assert "already running" in line and f"pid {bot.process.pid}" in line and str(bot.database_path) in line


async def test_a_second_bot_through_a_symlink_to_the_database_refuses(bot: BotProcess, tmp_path: Path) -> None:
    """A DATABASE_PATH that is a symlink to the running bot's file reaches the same lock: exit 75, no second login."""
    await bot.start()
    assert bot.process is not None
    link = tmp_path / "elsewhere" / "bot.sqlite3"
    link.parent.mkdir()
    link.symlink_to(bot.database_path)
    _, err = await _second_bot_refused(bot, {**bot.environment(), "DATABASE_PATH": str(link)}, tmp_path)
    assert "already running" in err and f"pid {bot.process.pid}" in err


async def test_after_sigkill_a_new_bot_starts_at_once(bot: BotProcess) -> None:
    """The kernel drops the lock with the killed process: the lock file stays, and the next start takes it."""
    await bot.start()
    assert bot.process is not None
    old_pid = bot.process.pid
    await bot.kill()
    assert _lock_file(bot.database_path).read_text().split() == [str(old_pid), "run"]  # left behind by the crash
    await bot.start()
    assert bot.process is not None
    assert _lock_file(bot.database_path).read_text().split() == [str(bot.process.pid), "run"]


async def test_check_names_the_live_bot(bot: BotProcess, tmp_path: Path) -> None:
    """`check` beside a running bot notes it with its pid, fails nothing for it, and takes no lock."""
    await bot.start()
    assert bot.process is not None
    status, out, err = await run_command("check", env=bot.environment(), cwd=tmp_path)
    assert status == 0, out + err
    [note] = [line for line in out.splitlines() if "a bot is running" in line]
    assert note.startswith("! Store:") and f"(pid {bot.process.pid})" in note
    assert bot.alive
    await bot.terminate()
    status, out, _ = await run_command("check", env=bot.environment(), cwd=tmp_path)
    assert status == 0 and "a bot is running" not in out  # stopped: nothing to report


async def test_generate_refuses_beside_a_running_bot(bot: BotProcess, xai: XaiEmulator, tmp_path: Path) -> None:
    """`generate` would spend the same xAI budget beside the bot: it refuses (75) before sending anything."""
    await bot.start()
    status, _, err = await run_command("generate", "a fox", env=bot.environment(), cwd=tmp_path)
    assert status == EXIT_STORE_IN_USE, err
    assert "already running" in err and "/video" in err and "Traceback" not in err
    assert not [r for r in xai.requests if r.method == "POST"]


async def test_sync_needs_no_lock(bot: BotProcess, tmp_path: Path) -> None:
    """`sync` touches no job, so it works while the bot runs."""
    await bot.start()
    status, _, err = await run_command("sync", env=bot.environment(), cwd=tmp_path)
    assert status == 0, err


async def test_a_lock_file_left_by_a_dead_process_blocks_nothing(xai: XaiEmulator, tmp_path: Path) -> None:
    """A stale lock file (a pid that is long gone) is taken over, and `check` reports no live bot."""
    database = tmp_path / "jobs.sqlite3"
    stale = _lock_file(database)
    stale.write_text("999999999\n")
    env = {
        "XAI_API_KEY": xai.api_key,
        "XAI_BASE_URL": xai.base_url,
        "XAI_FIRST_POLL_SECONDS": "0.1",
        "XAI_MAX_REQUESTS_PER_MINUTE": "6000",
        "DATABASE_PATH": str(database),
    }
    status, _, err = await run_command("generate", "a fox", "--out", "fox.mp4", env=env, cwd=tmp_path)
    assert status == 0, err
    assert stale.read_text().split()[1:] == ["generate"]  # taken over: it now names the generate process


async def test_an_in_memory_database_takes_no_lock(xai: XaiEmulator, tmp_path: Path) -> None:
    """DATABASE_PATH=:memory: is private to its process: nothing to lock, no stray lock file."""
    env = {"XAI_API_KEY": xai.api_key, "XAI_BASE_URL": xai.base_url, "DATABASE_PATH": ":memory:"}
    env |= {"XAI_FIRST_POLL_SECONDS": "0.1", "XAI_MAX_REQUESTS_PER_MINUTE": "6000"}
    status, _, err = await run_command("generate", "a fox", "--out", "fox.mp4", env=env, cwd=tmp_path)
    assert status == 0, err
    assert sorted(path.name for path in tmp_path.iterdir() if "lock" in path.name) == []
