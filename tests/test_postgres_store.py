"""What the PostgreSQL engine must add to the Protocol's promises: limits decided one after the other across
processes, a cut-off transaction leaving nothing (nor its lock) behind, and SQL rewritten without harm."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

from services.jobs.models import JobRequest, Mode, Origin, VideoOptions
from services.store.postgres import numbered, shown_url, url_password, where
from services.store.store import Store
from tests.pgtest import fresh_store_url

ROOT = Path(__file__).resolve().parent.parent

# One "bot process": opens the store, waits for the go file, then races ``count`` requests of member 7 against
# a limit of 5, each reading the history inside its inserting transaction (as services/jobs/accepting.py does).
RACER = """
import asyncio, json, os, sys
from pathlib import Path
from services.jobs.models import JobRequest, Mode, Origin, VideoOptions
from services.policy.guild_policy import GuildPolicy
from services.policy.limits import Refusal, Requester, check_usage
from services.store.store import Store

async def main(url, go, count):
    policy = GuildPolicy(user_videos=5, user_active_jobs=None)
    request = JobRequest(Mode.TEXT, "a fox", VideoOptions(), Origin(guild_id=1, channel_id=2, user_id=7))
    async with await Store.open("unused", url=url) as store:
        print("ready", flush=True)
        while not Path(go).exists():
            await asyncio.sleep(0.01)

        async def one():
            async def refuse(now):
                found = await check_usage(policy, Requester(), request, store.usage, now)
                await asyncio.sleep(0.02)  # a slow decision: the other process would slip in, if it could
                return found
            return await store.jobs.create_unless(request, refuse)

        results = await asyncio.gather(*(one() for _ in range(count)))
        print(json.dumps(sum(not isinstance(r, Refusal) for r in results)), flush=True)

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
"""


async def test_two_processes_racing_for_a_members_last_slots_admit_exactly_the_limit(tmp_path: Path) -> None:
    go = tmp_path / "go"
    async with fresh_store_url() as url:
        async with await Store.open("unused", url=url):
            pass  # migrated once, before the race
        racers = [
            await asyncio.create_subprocess_exec(
                sys.executable, "-c", RACER, url, str(go), "8", cwd=ROOT, stdout=asyncio.subprocess.PIPE
            )
            for _ in range(2)
        ]
        for racer in racers:
            assert racer.stdout is not None
            assert (await asyncio.wait_for(racer.stdout.readline(), 30)).strip() == b"ready"
        go.touch()
        admitted = []
        for racer in racers:
            out, _ = await asyncio.wait_for(racer.communicate(), 60)
            assert racer.returncode == 0
            admitted.append(json.loads(out))
        async with await Store.open("unused", url=url) as store:
            assert await store.usage.counted_count(1, 7, 0) == 5
    assert sum(admitted) == 5, admitted


def _request() -> JobRequest:
    return JobRequest(Mode.TEXT, "a fox", VideoOptions(), Origin(guild_id=1, channel_id=2, user_id=7))


async def test_a_cancelled_transaction_leaves_no_row_and_lets_the_next_one_in() -> None:
    async with fresh_store_url() as url, await Store.open("unused", url=url) as store:
        inside = asyncio.Event()

        async def stalls(now: float) -> None:
            inside.set()
            await asyncio.Event().wait()  # never: cancelled while holding the store's lock

        task = asyncio.ensure_future(store.jobs.create_unless(_request(), stalls))
        await inside.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        job = await asyncio.wait_for(store.jobs.create(_request()), 10)  # the lock was let go
        rows = await store.database.fetch_all("SELECT id FROM jobs")
        assert [row[0] for row in rows] == [job.id]


async def test_a_failed_transaction_rolls_back_every_statement() -> None:
    async with fresh_store_url() as url, await Store.open("unused", url=url) as store:
        with pytest.raises(RuntimeError, match="boom"):
            async with store.database.transaction():
                await store.kv.set("k", "v")
                raise RuntimeError("boom")
        assert await store.kv.get("k") is None
        with pytest.raises(RuntimeError, match="already open"):
            async with store.database.transaction(), store.database.transaction():
                pass


def test_placeholders_are_numbered_outside_quoted_text_only() -> None:
    assert numbered("SELECT '?', \"a?\" FROM t WHERE a = ? AND b IN (?, ?)") == (
        "SELECT '?', \"a?\" FROM t WHERE a = $1 AND b IN ($2, $3)"
    )
    assert numbered("UPDATE t SET s = 'it''s ?' WHERE id = ?") == "UPDATE t SET s = 'it''s ?' WHERE id = $1"


def test_a_url_is_shown_without_its_password() -> None:
    assert shown_url("postgresql://bot:s3cret-pw@db.example:5433/grok") == "postgresql://bot:***@db.example:5433/grok"
    assert shown_url("postgresql://bot@db/grok") == "postgresql://bot@db/grok"
    assert shown_url("postgresql:///grok?host=/run/postgresql") == "postgresql:///grok?host=/run/postgresql"


def test_a_password_anywhere_in_the_url_is_masked_and_known_to_the_redactor() -> None:
    # libpq (and asyncpg) also take the password as a parameter; several hosts make urlsplit's port unreadable.
    url = "postgresql://bot@db/grok?sslmode=require&password=hunter2&sslpassword=k3y"
    assert shown_url(url) == "postgresql://bot@db/grok?sslmode=require&password=***&sslpassword=***"
    assert url_password(url) == "hunter2"
    several = "postgresql://bot:p%40ss%20w@db1:5432,db2:5433/grok"
    assert shown_url(several) == "postgresql://bot:***@db1:5432,db2:5433/grok"
    assert where(several) == "db1:5432,db2:5433/grok" and where("postgresql://bot:pw@db/grok") == "db:5432/grok"


async def test_the_servers_end_a_store_session_whose_process_is_cut_off_or_hangs_in_a_transaction() -> None:
    # Every store transaction holds the one lock all processes' transactions wait for: a process cut off mid-way
    # must not hold it for the kernel's two hours of TCP, nor one that hangs inside it for ever.
    async with fresh_store_url() as url, await Store.open("unused", url=url) as store, store.database.transaction():
        row = await store.database.fetch_one(
            "SELECT current_setting('tcp_keepalives_idle'), current_setting('tcp_keepalives_count'), "
            "current_setting('idle_in_transaction_session_timeout')"
        )
    assert row is not None and tuple(row) == ("5", "3", "1min")
