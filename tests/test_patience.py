"""Waiting out a locked database: only "locked"/"busy" errors are retried, and not forever."""

from __future__ import annotations

import sqlite3

import pytest

from services import patience


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


async def test_a_lock_that_never_clears_is_given_up_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(patience, "RETRY_DELAYS_S", (0.01,))

    async def write() -> None:
        raise sqlite3.OperationalError("database is locked")

    with pytest.raises(sqlite3.OperationalError, match="locked"):
        await patience.patiently(write, what="a test write", give_up_after_s=0.05)
