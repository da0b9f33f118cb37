"""``backup`` and ``migrate-store`` read only the store's settings: no XAI_API_KEY, no DISCORD_TOKEN.

Neither talks to xAI or Discord, so an admin backing up from cron, or moving the store before the keys are set,
needs only DATABASE_PATH. Real ``python bot.py`` processes (tests/botprocess.py), a real SQLite store, a real
PostgreSQL database; the environment holds no key at all (``run_command`` passes only PATH and ``ENV_FILE=none``).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from services.jobs.models import JobRequest, Mode, Origin, VideoOptions
from services.store.store import Store
from tests.botprocess import run_command
from tests.pgtest import fresh_store_url

PROMPT = "a heron lifting off a misty lake at dawn"
# Settings only the bot reads, wrong here on purpose: the store commands read none of them.
NOT_THEIRS = {
    "XAI_MAX_CONCURRENT_JOBS": "lots",
    "DEV_GUILD_ID": "my server",
    "XAI_MODEL": "no-such-model",
    "HTTP_PORT": "8080:8080",  # compose's ports syntax: only the bot's own HTTP server reads it
}


async def _store_with_a_job(path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    async with await Store.open(path) as store:
        job = await store.jobs.create(JobRequest(Mode.TEXT, PROMPT, VideoOptions(), Origin(10, 20, 30)))
    return job.id


def _jobs_in(database: Path) -> list[tuple[int, str]]:
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        return [(int(row[0]), str(row[1])) for row in connection.execute("SELECT id, prompt FROM jobs")]
    finally:
        connection.close()


async def test_backup_needs_no_xai_key_or_discord_token(tmp_path: Path) -> None:
    database = tmp_path / "data" / "bot.sqlite3"
    job_id = await _store_with_a_job(database)
    copy = tmp_path / "backups" / "copy.sqlite3"
    env = {"DATABASE_PATH": str(database), **NOT_THEIRS}
    status, out, err = await run_command("backup", str(copy), env=env, cwd=tmp_path)
    assert status == 0, err
    assert err == "" and f"Backed up {database} to {copy} (" in out and "integrity check ok" in out
    assert _jobs_in(copy) == [(job_id, PROMPT)]


async def test_a_wrong_store_setting_is_the_one_line_said(tmp_path: Path) -> None:
    status, out, err = await run_command(
        "backup", str(tmp_path / "copy.sqlite3"), env={"DATABASE_URL": "mysql://bot@db/bot"}, cwd=tmp_path
    )
    assert (status, out) == (78, "")
    assert (
        err.startswith("error: DATABASE_URL is not valid: it should be a PostgreSQL URL like ") and err.count("\n") == 1
    )
    assert "XAI_API_KEY" not in err and not (tmp_path / "copy.sqlite3").exists()


async def test_with_nothing_set_the_missing_store_is_what_is_said(tmp_path: Path) -> None:
    """No .env and no settings: the default DATABASE_PATH has no store, and that (not a key) is the message."""
    status, out, err = await run_command("backup", str(tmp_path / "copy.sqlite3"), env={}, cwd=tmp_path)
    assert (status, out) == (1, "")
    default = tmp_path / "data" / "grok-video-bot.sqlite3"
    assert err == f"error: there is no database at {default} to back up (check DATABASE_PATH)\n"
    assert not (tmp_path / "data").exists()  # nothing was created on the way

    status, out, err = await run_command("migrate-store", "--to", "postgresql://a@b/c", env={}, cwd=tmp_path)
    assert (status, out) == (78, "")
    assert err.startswith("error: There is no SQLite store at DATABASE_PATH=data/grok-video-bot.sqlite3 to move")
    assert err.count("\n") == 1 and not (tmp_path / "data").exists()


async def test_migrate_store_needs_no_xai_key_or_discord_token(tmp_path: Path) -> None:
    database = tmp_path / "bot.sqlite3"
    job_id = await _store_with_a_job(database)
    async with fresh_store_url() as url:
        env = {"DATABASE_PATH": str(database), **NOT_THEIRS}
        status, out, err = await run_command("migrate-store", "--to", url, env=env, cwd=tmp_path)
        assert status == 0, err
        assert "  jobs: 1 row\n" in out and out.startswith(f"Copying {database} into PostgreSQL at ")
        async with await Store.open("unused", url=url) as store:
            job = await store.jobs.get(job_id)
    assert job is not None and job.prompt == PROMPT


async def test_the_commands_that_talk_to_xai_still_ask_for_its_key(tmp_path: Path) -> None:
    for command in (["generate", "a fox"], ["check"], ["sync"]):
        status, out, err = await run_command(
            *command, env={"DATABASE_PATH": str(tmp_path / "bot.sqlite3")}, cwd=tmp_path
        )
        assert (status, out) == (78, ""), command
        assert err.startswith("error: XAI_API_KEY is not set: create one at https://console.x.ai/"), command
    assert not (tmp_path / "bot.sqlite3").exists()
