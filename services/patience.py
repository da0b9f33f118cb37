"""Waiting out a busy database instead of dropping a job's step on the floor.

SQLite answers "database is locked" when another process (a backup, a second bot, an admin's
``sqlite3`` shell) holds the write lock longer than ``busy_timeout``. A job step whose write fails
that way would otherwise vanish from memory while the store still shows the old status, so the job
would sit until the next restart. Every step the scheduler records goes through ``patiently``.
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


def is_busy(error: BaseException) -> bool:
    """SQLite's "someone else holds the lock" errors: temporary by nature."""
    if not isinstance(error, sqlite3.OperationalError):
        return False
    text = str(error).lower()
    return "locked" in text or "busy" in text


async def patiently(call: Callable[[], Awaitable[T]], *, what: str, give_up_after_s: float = 600.0) -> T:
    """Run ``call`` (a store write), retrying while the database is locked by someone else.

    Other errors pass through at once. After ``give_up_after_s`` of locking the last error is raised.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + give_up_after_s
    attempt = 0
    while True:
        try:
            return await call()
        except sqlite3.OperationalError as error:
            if not is_busy(error) or loop.time() >= deadline:
                raise
            delay = RETRY_DELAYS_S[min(attempt, len(RETRY_DELAYS_S) - 1)]
            attempt += 1
            if attempt == 1 or attempt % 10 == 0:
                log.warning("The database is locked by another process (%s); trying again", what)
            await asyncio.sleep(delay)
