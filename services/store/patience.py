"""Waiting out a busy or full database instead of dropping a job's step on the floor.

SQLite answers "database is locked" when another process (a backup, a second bot, an admin's
``sqlite3`` shell) holds the write lock longer than ``busy_timeout``, and "database or disk is full"
when the disk has no room left. A job step whose write fails either way would otherwise vanish from
memory while the store still shows the old status, so the job would sit until the next restart.
Both pass once someone acts (the lock is let go, space is freed), so every step the scheduler records
goes through ``patiently``, which tries again and, for a full disk, keeps telling the admin what to do.

These are SQLite's errors. On PostgreSQL there is no file lock to wait for (writers queue on row locks inside
the server), and a full disk is the server's to report: its errors pass through here at once.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Awaitable, Callable
from typing import TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")

RETRY_DELAYS_S: tuple[float, ...] = (0.2, 0.5, 1.0, 2.0, 5.0)
# How often the warning is repeated while the write keeps failing: often enough to be seen in the log,
# rarely enough not to flood it (a full disk is no place for a flood of log lines).
WARN_EVERY_S = 60.0


def is_busy(error: BaseException) -> bool:
    """SQLite's "someone else holds the lock" errors: temporary by nature."""
    if not isinstance(error, sqlite3.OperationalError):
        return False
    text = str(error).lower()
    return "locked" in text or "busy" in text


def is_full(error: BaseException) -> bool:
    """SQLite's "database or disk is full" (SQLITE_FULL): over once space is freed."""
    if not isinstance(error, sqlite3.OperationalError):
        return False
    code = getattr(error, "sqlite_errorcode", None)  # set by sqlite3 itself, absent when raised by hand
    return code == sqlite3.SQLITE_FULL or "database or disk is full" in str(error).lower()


def _warning(error: BaseException, what: str) -> str:
    if is_full(error):
        return (
            f"The disk holding the database is full ({what} could not be saved); free some space on it and "
            "the bot carries on by itself"
        )
    return f"The database is locked by another process ({what}); trying again"


async def patiently(call: Callable[[], Awaitable[T]], *, what: str, give_up_after_s: float = 600.0) -> T:
    """Run ``call`` (a store write), retrying while the database is locked by someone else or its disk is full.

    Other errors pass through at once. After ``give_up_after_s`` of failing the last error is raised.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + give_up_after_s
    attempt = 0
    warned: tuple[str, float] | None = None  # the last warning's text and when it was logged
    while True:
        try:
            return await call()
        except sqlite3.OperationalError as error:
            if not (is_busy(error) or is_full(error)) or loop.time() >= deadline:
                raise
            now, text = loop.time(), _warning(error, what)
            if warned is None or warned[0] != text or now - warned[1] >= WARN_EVERY_S:
                log.warning("%s", text)
                warned = (text, now)
            delay = RETRY_DELAYS_S[min(attempt, len(RETRY_DELAYS_S) - 1)]
            attempt += 1
            await asyncio.sleep(delay)
