"""Waiting out a locked database or a full disk: only those are retried, and not forever."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from pathlib import Path

import aiosqlite
import pytest

from services.store import patience


async def test_a_busy_database_is_retried_until_the_write_goes_through(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(patience, "RETRY_DELAYS_S", (0.0,))
    locked = sqlite3.OperationalError("database is locked")
    answers: list[BaseException | str] = [locked, locked, locked, "written"]

    async def write() -> str:
        answer = answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    assert await patience.patiently(write, what="a test write") == "written"
    assert not answers


async def test_other_database_errors_are_not_retried() -> None:
    calls = 0

    async def write() -> None:
        nonlocal calls
        calls += 1
        raise sqlite3.OperationalError("no such table: jobs")

    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        await patience.patiently(write, what="a test write")
    assert calls == 1


@pytest.mark.parametrize(
    ("error", "match"), [("database is locked", "locked"), ("database or disk is full", "full")], ids=["lock", "full"]
)
async def test_a_lock_or_a_disk_that_never_clears_is_given_up_on(
    monkeypatch: pytest.MonkeyPatch, error: str, match: str
) -> None:
    """The give-up bound holds for a full disk as for a lock: the last error is raised."""
    monkeypatch.setattr(patience, "RETRY_DELAYS_S", (0.01,))

    async def write() -> None:
        raise sqlite3.OperationalError(error)

    with pytest.raises(sqlite3.OperationalError, match=match):
        await patience.patiently(write, what="a test write", give_up_after_s=0.05)


async def test_a_full_disk_is_waited_out_and_the_write_lands_once_space_is_freed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite's own "database or disk is full" (the file capped at its size) is retried, saying what to do."""
    monkeypatch.setattr(patience, "RETRY_DELAYS_S", (0.01,))
    caplog.set_level(logging.WARNING)
    async with aiosqlite.connect(tmp_path / "full.sqlite3", isolation_level=None) as db:
        await db.execute("CREATE TABLE notes (body TEXT)")
        async with db.execute("PRAGMA page_count") as cursor:
            row = await cursor.fetchone()
        assert row is not None
        await db.execute(f"PRAGMA max_page_count = {int(row[0])}")  # no room for one more page
        attempts = 0

        async def write() -> None:
            nonlocal attempts
            attempts += 1
            await db.execute("INSERT INTO notes VALUES (?)", ("x" * 20_000,))

        saving = asyncio.ensure_future(patience.patiently(write, what="job 7 update"))
        while attempts < 3:
            await asyncio.sleep(0.01)
        assert not saving.done()
        await db.execute("PRAGMA max_page_count = 1073741823")  # space freed
        await asyncio.wait_for(saving, 5)
        async with db.execute("SELECT COUNT(*) FROM notes") as cursor:
            assert await cursor.fetchone() == (1,)
    [warning] = [record.getMessage() for record in caplog.records if "full" in record.getMessage()]
    assert warning == (
        "The disk holding the database is full (job 7 update could not be saved); "
        "free some space on it and the bot carries on by itself"
    )


async def test_the_warning_is_repeated_every_so_often_not_at_every_try(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While the disk stays full the warning comes back every WARN_EVERY_S, not with each of the many tries."""
    monkeypatch.setattr(patience, "RETRY_DELAYS_S", (0.005,))
    monkeypatch.setattr(patience, "WARN_EVERY_S", 0.05)
    caplog.set_level(logging.WARNING)
    tries = 0

    async def write() -> None:
        nonlocal tries
        tries += 1
        raise sqlite3.OperationalError("database or disk is full")

    with pytest.raises(sqlite3.OperationalError, match="full"):
        await patience.patiently(write, what="a test write", give_up_after_s=0.3)
    warnings = [record for record in caplog.records if "disk holding the database is full" in record.getMessage()]
    assert 2 <= len(warnings) <= 8 and tries > 2 * len(warnings)
