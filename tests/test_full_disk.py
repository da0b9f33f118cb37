"""A full disk under the database: the job's steps wait for space, say so in the log, and carry on once it is freed.

The disk is filled for real, as far as SQLite can tell: ``PRAGMA max_page_count`` caps the store's file
at its current size, so a write that needs one more page fails with SQLite's own "database or disk is
full" (SQLITE_FULL), exactly as on a full disk. Raising the cap is freeing space.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from services.jobs.models import JobStatus
from services.store.store import Store
from tests.emulators.xai_emulator import Outcome
from tests.scheduler_rig import open_rig, text_request, unlimited_service

pytestmark = pytest.mark.sqlite_only  # a full SQLite file (PostgreSQL's disk is the server's)

FULL = "The disk holding the database is full"


async def _fill_the_disk(store: Store) -> None:
    """No room for one more page of the store's file (the connection's own cap, set on the store's connection)."""
    row = await store.database.fetch_one("PRAGMA page_count")
    assert row is not None
    await store.database.execute(f"PRAGMA max_page_count = {int(row[0])}")


async def _free_space(store: Store) -> None:
    await store.database.execute("PRAGMA max_page_count = 1073741823")


async def _logged(caplog: pytest.LogCaptureFixture, text: str, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not any(text in record.getMessage() for record in caplog.records):
        assert asyncio.get_running_loop().time() < deadline, f"never logged {text!r}: the step was not waited out"
        await asyncio.sleep(0.02)


async def test_a_job_whose_step_meets_a_full_disk_ends_once_space_is_freed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The step that cannot be saved waits (the job is not lost in memory); freeing space lets it end as xAI said."""
    caplog.set_level(logging.WARNING)
    async with open_rig(tmp_path) as rig:
        rig.xai.prompt_outcomes["full-disk"] = Outcome(kind="failed", error_message="The render farm is down. " * 12)
        scheduler = rig.scheduler()
        # A long prompt makes the job's row fill its page, so xAI's reason cannot be written without a new page.
        job = (await unlimited_service(rig.store, scheduler).accept(text_request("full-disk " + "p" * 3700))).job
        await _fill_the_disk(rig.store)
        await scheduler.start()
        await _logged(caplog, FULL)
        stuck = await rig.store.jobs.get(job.id)
        assert stuck is not None and not stuck.status.is_terminal
        await _free_space(rig.store)
        ended = await rig.ended(job.id)
    assert ended.status is JobStatus.FAILED and "render farm is down" in (ended.error_message or "")
    warning = next(record.getMessage() for record in caplog.records if FULL in record.getMessage())
    assert "free some space" in warning and "carries on by itself" in warning
