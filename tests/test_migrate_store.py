"""``python bot.py migrate-store --to postgresql://...``: a SQLite store moved whole into an empty PostgreSQL one.

The real command in a subprocess, on a real SQLite file with a job in every state (an input image, a follow-up,
server settings, bans, the bot's own bookkeeping), into a real PostgreSQL database; then the bot runs on it.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import sys
import tracemalloc
from pathlib import Path
from typing import Any

from services.jobs.models import JobRequest, JobStatus, MediaInput, Mode, Origin, VideoOptions
from services.store import transfer
from services.store.database import SqliteDatabase
from services.store.postgres import PostgresDatabase
from services.store.store import Store
from tests.emulators.discord_emulator import DiscordEmulator
from tests.emulators.xai_emulator import XaiEmulator
from tests.harness import BotRig
from tests.pgtest import fresh_store_url

ROOT = Path(__file__).resolve().parent.parent


async def _fill(path: Path) -> None:
    async with await Store.open(path) as store:
        first = None
        for status in JobStatus:
            media = MediaInput(data=bytes(range(256)) * 4, mime_type="image/png", filename="a.png")
            request = JobRequest(
                Mode.IMAGE if first is None else Mode.TEXT,
                f"prompt of a {status} job",
                VideoOptions(duration=5, aspect_ratio="16:9", resolution="480p"),
                Origin(guild_id=10, channel_id=20, user_id=30 + len(status)),
                media=media if first is None else None,
                parent_job_id=first,
            )
            job = await store.jobs.create(request)
            first = first or job.id
            await store.database.execute(
                "UPDATE jobs SET status = ?, charged = ?, cost_usd_ticks = ?, submitted_at = ?, generation_s = ? "
                "WHERE id = ?",
                (status.value, status is not JobStatus.QUEUED, 1_500_000_000, 12.5, 3.25, job.id),
            )
        assert first is not None
        await store.database.execute("DELETE FROM jobs WHERE id = ?", (first + 3,))  # a gap in the ids stays
        await store.servers.save_overrides(10, {"user_videos": 3}, by=99)
        await store.servers.ban(10, 31, by=99, reason="spam")
        await store.servers.ban(11, 32, by=None, reason=None)
        await store.kv.set("commands_hash", "abc123")


def _sqlite_rows(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    with sqlite3.connect(path) as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {
            t: sorted(db.execute(f"SELECT * FROM {t}").fetchall(), key=repr)
            for t in tables
            if not t.startswith("sqlite_")
        }


async def _postgres_rows(url: str, tables: list[str]) -> dict[str, list[tuple[Any, ...]]]:
    async with await Store.open("unused", url=url) as store:
        return {
            t: sorted((tuple(row) for row in await store.database.fetch_all(f"SELECT * FROM {t}")), key=repr)
            for t in tables
        }


async def _migrate(path: Path, url: str) -> tuple[int, str, str]:
    env = {**os.environ, "DATABASE_PATH": str(path), "XAI_API_KEY": "xai-test", "ENV_FILE": "none"}
    env.pop("DATABASE_URL", None)
    child = await asyncio.create_subprocess_exec(
        sys.executable, "bot.py", "migrate-store", "--to", url, cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(child.communicate(), 60)
    assert child.returncode is not None
    return child.returncode, out.decode(), err.decode()


async def test_every_row_of_every_table_moves_with_its_id_and_the_bot_runs_on_it(
    tmp_path: Path, discord_emu: DiscordEmulator, xai: XaiEmulator
) -> None:
    path = tmp_path / "data" / "bot.sqlite3"
    await _fill(path)
    before = _sqlite_rows(path)
    assert set(before) == {"jobs", "job_inputs", "kv", "guild_settings", "guild_bans"}  # a new table: add it here
    assert all(before.values()), "every table has rows to move"
    async with fresh_store_url() as url:
        status, out, err = await _migrate(path, url)
        assert status == 0, err
        assert f"  jobs: {len(before['jobs'])} rows" in out and "  guild_bans: 2 rows" in out and "  kv: 1 row\n" in out
        after = await _postgres_rows(url, list(before))
        assert after == before

        again = await _migrate(path, url)
        assert again[0] == 78 and "already holds data" in again[2] and "Nothing was copied" in again[2]

        rig = BotRig(discord_emu, xai, tmp_path, database_url=url)
        async with rig.running() as bot:
            assert await bot.runtime.store.servers.is_banned(10, 31)
            await discord_emu.slash("video", {"prompt": "a paper boat on a rainy street", "duration": 5})
            job = await rig.wait_until_terminal()
        assert job.status is JobStatus.DELIVERED
        assert job.id == max(row[0] for row in before["jobs"]) + 1  # the ids go on after the copied ones


async def test_the_bot_must_be_stopped_and_the_source_must_exist(tmp_path: Path) -> None:
    async with fresh_store_url() as url:
        status, _, err = await _migrate(tmp_path / "missing.sqlite3", url)
        assert status == 78 and "There is no SQLite store at DATABASE_PATH=" in err
        assert not (tmp_path / "missing.sqlite3").exists()


async def test_stored_inputs_move_a_few_at_a_time(tmp_path: Path) -> None:
    # Inputs may be tens of MiB each: the copy must not hold a table's worth of them in memory at once (one input
    # is held about four times over on its way: the row, asyncpg's encoding, its buffer growing).
    size, count = 2 * 1024 * 1024, 16
    path = tmp_path / "big.sqlite3"
    async with await Store.open(path) as store:
        for number in range(count):
            media = MediaInput(data=bytes([number]) * size, mime_type="image/png", filename="a.png")
            origin = Origin(guild_id=10, channel_id=20, user_id=30)
            await store.jobs.create(JobRequest(Mode.IMAGE, "a fox", VideoOptions(), origin, media=media))
    async with fresh_store_url() as url:
        async with await Store.open(path) as source, await Store.open("unused", url=url) as target:
            assert isinstance(source.database, SqliteDatabase) and isinstance(target.database, PostgresDatabase)
            tracemalloc.start()
            try:
                copied = await transfer.copy_store(source.database, target.database)
                peak = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
            stored = await target.database.fetch_all("SELECT length(data) FROM job_inputs ORDER BY job_id")
        assert copied["job_inputs"] == count and [row[0] for row in stored] == [size] * count
        assert peak < 6 * size, f"{peak / size:.1f} inputs' worth in memory at once"
