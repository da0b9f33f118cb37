"""``generate`` on a PostgreSQL store: refused while a bot process leads (it would spend the same xAI budget a
second time), as it is refused beside a bot on the same SQLite file; it runs, and stores its job, when none does."""

from __future__ import annotations

from pathlib import Path

import asyncpg

from services.cluster.leader import LEADER_KEY
from tests.cluster_pg import fresh_database
from tests.cluster_procs import job_rows
from tests.emulators.xai_emulator import XaiEmulator
from tests.test_terminal import generate


async def test_generate_waits_its_turn_behind_the_leader(xai: XaiEmulator, tmp_path: Path) -> None:
    async with fresh_database() as url:
        leader = await asyncpg.connect(url)  # what a bot process that leads holds
        try:
            assert await leader.fetchval("SELECT pg_try_advisory_lock($1)", LEADER_KEY)
            status, _, err = await generate(xai, tmp_path, "a fox", "--duration", "2", DATABASE_URL=url)
            assert status == 75, err
            assert "a bot runs its scheduler on this database" in err and "/video" in err
            assert xai.submits() == []
        finally:
            await leader.close()
        status, _, err = await generate(xai, tmp_path, "a fox", "--duration", "2", DATABASE_URL=url)
        assert status == 0, err
        assert [row["status"] for row in await job_rows(url)] == ["delivered"]
