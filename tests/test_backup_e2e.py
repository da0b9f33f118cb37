"""``python bot.py backup FILE``: a consistent copy of a running bot's store, and the restore drill.

The drill backs up a real ``python bot.py`` while /video requests keep arriving (jobs being written and moved
on), restores the copy into a new folder, starts a bot on it, and checks that every job committed before the
backup began is there, whole, and that SQLite finds the restored file sound.
"""

from __future__ import annotations

import asyncio
import os
import resource
import signal
import sqlite3
import stat
from pathlib import Path

import pytest

from services.jobs.models import JobStatus
from services.store.backup import BackupError, back_up
from tests.botprocess import BotProcess, read_jobs, run_command
from tests.mediafactory import make_image

# What a job is, as it was committed: these never change after the insert.
FIXED = ("id", "created_at", "guild_id", "channel_id", "user_id", "mode", "prompt", "duration")


def _integrity(database: Path) -> list[str]:
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        return [row[0] for row in connection.execute("PRAGMA integrity_check")]
    finally:
        connection.close()


def _inputs(database: Path) -> dict[int, bytes]:
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        return {int(row[0]): bytes(row[1]) for row in connection.execute("SELECT job_id, data FROM job_inputs")}
    finally:
        connection.close()


@pytest.mark.sqlite_only  # the backup command copies the SQLite file (PostgreSQL: pg_dump)
async def test_restore_drill_backup_under_load_then_a_bot_on_the_copy(bot: BotProcess, tmp_path: Path) -> None:
    emu = bot.discord
    await bot.start()
    picture = emu.add_attachment(make_image("PNG"), "photo.png", "image/png")

    backed_up = asyncio.Event()

    async def keep_asking(count: int, *, until_backed_up: bool = False) -> None:
        for n in range(count):
            if until_backed_up and backed_up.is_set():
                return
            options: dict[str, object] = {"prompt": f"load {n}: a lighthouse in fog"}
            if n % 3 == 0:
                options["image"] = picture
            await emu.slash("video", options)

    await keep_asking(8)
    await emu.wait_for(lambda: len(read_jobs(bot.database_path)) == 8, timeout=30)
    committed = {job["id"]: job for job in read_jobs(bot.database_path)}
    inputs_before = _inputs(bot.database_path)
    load = asyncio.create_task(keep_asking(30, until_backed_up=True))  # jobs keep coming while the copy is taken
    copy = tmp_path / "backups" / "before.sqlite3"
    status, out, err = await run_command("backup", str(copy), env=bot.environment(), cwd=tmp_path)
    backed_up.set()
    await load
    assert len(read_jobs(bot.database_path)) > len(committed)  # the bot wrote jobs while the backup ran
    assert status == 0, err
    assert bot.alive  # the backup took no lock: the bot ran on all along
    database = bot.database_path
    assert f"Backed up {database} to {copy} (" in out and "integrity check ok" in out
    assert f"cp {copy} {database} && rm -f {database}-wal {database}-shm" in out
    assert not copy.with_name(copy.name + "-wal").exists() and not list(copy.parent.glob("*.part"))
    assert await bot.terminate() == 0

    # Restore into a new folder, as the README says, and start a bot there.
    restored = BotProcess(emu, bot.xai, tmp_path / "restored")
    restored.database_path.parent.mkdir(parents=True)
    restored.database_path.write_bytes(copy.read_bytes())
    assert _integrity(restored.database_path) == ["ok"]
    await restored.start()
    try:
        after = {job["id"]: job for job in read_jobs(restored.database_path)}
        assert set(committed) <= set(after)
        for job_id, job in committed.items():
            assert {key: after[job_id][key] for key in FIXED} == {key: job[key] for key in FIXED}
        restored_inputs = _inputs(restored.database_path)
        assert all(restored_inputs.get(job_id) == data for job_id, data in inputs_before.items())
        # The restored bot carries the jobs in flight at the backup on to an end, as after any restart.
        await emu.wait_for(
            lambda: all(JobStatus(str(job["status"])).is_terminal for job in read_jobs(restored.database_path)), 60
        )
        assert await restored.terminate() == 0
    finally:
        await restored.stop_quietly()
    assert _integrity(restored.database_path) == ["ok"]


async def test_backup_refusals_say_what_to_do(tmp_path: Path) -> None:
    env = {"XAI_API_KEY": "xai-key", "DATABASE_PATH": str(tmp_path / "data" / "bot.sqlite3")}
    status, out, err = await run_command("backup", str(tmp_path / "copy.sqlite3"), env=env, cwd=tmp_path)
    assert status == 1 and out == ""
    assert (
        err.strip()
        == f"error: there is no database at {tmp_path / 'data' / 'bot.sqlite3'} to back up (check DATABASE_PATH)"
    )
    assert not (tmp_path / "data" / "bot.sqlite3").exists()  # nothing was created on the way
    (tmp_path / "data").mkdir()
    sqlite3.connect(tmp_path / "data" / "bot.sqlite3").close()
    status, _, err = await run_command("backup", str(tmp_path / "data"), env=env, cwd=tmp_path)
    assert status == 1 and "is a folder: give the backup a file name" in err
    postgres = {**env, "DATABASE_URL": "postgresql://bot:secret@127.0.0.1:55432/bot"}
    status, out, _ = await run_command("backup", str(tmp_path / "copy.sqlite3"), env=postgres, cwd=tmp_path)
    assert status == 1 and out.startswith("The store is PostgreSQL (DATABASE_URL): back it up with pg_dump")
    assert not (tmp_path / "copy.sqlite3").exists()


def _live_database(folder: Path) -> Path:
    """A WAL-mode store with one job, as the bot keeps it (its ``-wal`` and ``-shm`` beside it, left open)."""
    database = folder / "bot.sqlite3"
    connection = sqlite3.connect(database)
    connection.execute("PRAGMA journal_mode = WAL")
    connection.execute("CREATE TABLE jobs (id INTEGER PRIMARY KEY)")
    connection.execute("INSERT INTO jobs VALUES (1)")
    connection.commit()
    return database


def _reads_back(database: Path) -> int:
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        return int(connection.execute("SELECT COUNT(*) FROM jobs").fetchone()[0])
    finally:
        connection.close()


def test_backup_never_writes_over_the_databases_own_files(tmp_path: Path) -> None:
    """A careless FILE: the database's WAL, its shared memory, its lock, or a hard link to it. Replacing the
    WAL would drop every write not yet checkpointed; replacing the lock would let a second bot in."""
    database = _live_database(tmp_path)
    keep_open = sqlite3.connect(database)  # the running bot
    (tmp_path / "bot.sqlite3.lock").touch()
    (tmp_path / "linked.sqlite3").hardlink_to(database)
    for name in ("bot.sqlite3-wal", "bot.sqlite3-shm", "bot.sqlite3-journal", "bot.sqlite3.lock", "linked.sqlite3"):
        with pytest.raises(BackupError, match="give the backup a file name of its own"):
            back_up(database, tmp_path / name)
    assert _reads_back(database) == 1  # a new reader still finds the database whole
    keep_open.close()


def test_the_copy_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    """The store holds the salt of the user hashes and every prompt: a backup is as private as the database."""
    old = os.umask(0o022)
    try:
        made = back_up(_live_database(tmp_path), tmp_path / "backups" / "copy.sqlite3")
    finally:
        os.umask(old)
    assert stat.S_IMODE(made.target.stat().st_mode) == 0o600 and _reads_back(made.target) == 1


def test_a_folder_that_cannot_be_made_is_one_clear_error(tmp_path: Path) -> None:
    database = _live_database(tmp_path)
    (tmp_path / "backups").write_text("a file where the folder should be")
    with pytest.raises(BackupError, match=r"cannot write .*backups/copy\.sqlite3 \(.*backups: File exists\)"):
        back_up(database, tmp_path / "backups" / "copy.sqlite3")


def test_the_restore_command_works_from_any_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Relative paths (cron's ``cd /opt/grok-video-bot && ... backup data/backups/x``) are printed absolute: the
    report is read later, in a mail or a terminal that is somewhere else."""
    _live_database(tmp_path)
    monkeypatch.chdir(tmp_path)
    report = back_up(Path("bot.sqlite3"), Path("backups/copy.sqlite3")).report()
    database, copy = tmp_path / "bot.sqlite3", tmp_path / "backups" / "copy.sqlite3"
    assert f"cp {copy} {database} && rm -f {database}-wal {database}-shm" in report


def _small_files() -> None:
    """In the child: files may grow to 256 KiB, then writes fail as on a full disk (EFBIG, not a SIGXFSZ kill)."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (256 * 1024, 256 * 1024))


async def test_a_disk_that_fills_mid_copy_leaves_nothing_behind(tmp_path: Path) -> None:
    database = _live_database(tmp_path)
    connection = sqlite3.connect(database)
    connection.execute("CREATE TABLE bulk (data BLOB)")
    connection.executemany("INSERT INTO bulk VALUES (randomblob(4096))", [()] * 512)  # some 2 MiB
    connection.commit()
    connection.close()
    env = {"XAI_API_KEY": "xai-key", "DATABASE_PATH": str(database)}
    copy = tmp_path / "backups" / "copy.sqlite3"
    status, out, err = await run_command("backup", str(copy), env=env, cwd=tmp_path, preexec=_small_files)
    assert status == 1 and out == "", err
    assert err.startswith(f"error: could not back up {database}: ") and err.count("\n") == 1, err
    assert err.endswith(f"(is there room where {copy} goes? Free some, or choose another FILE)\n"), err
    assert list(copy.parent.iterdir()) == []  # no copy, no .part
    assert _reads_back(database) == 1
