"""Shard settings, Discord's routing of a guild to its shard, and identifies spaced across processes."""

from __future__ import annotations

import asyncio
import logging
import socket

import asyncpg
import pytest

from services.cluster.gateway import IdentifyQueue, ShardClaim, ShardTaken
from services.cluster.link import close_quietly, connector
from services.cluster.shards import ShardPlan, ShardSettingError, parse_shard_ids, shard_plan
from services.cluster.wiring import identify_queue, links_for
from services.config import ConfigError, load_settings
from tests.cluster_pg import end_session, fresh_database
from tests.scheduler_rig import fast_sleep, until


def test_shard_ids_take_numbers_and_ranges() -> None:
    assert parse_shard_ids("0-3", 8) == (0, 1, 2, 3)
    assert parse_shard_ids("4, 0,2", 8) == (0, 2, 4)
    assert parse_shard_ids("0-1,6-7", 8) == (0, 1, 6, 7)
    assert shard_plan("4", None) == ShardPlan(4, None) and ShardPlan(4).mine == (0, 1, 2, 3)
    assert shard_plan(None, None) is None
    assert ShardPlan(4, (1, 2)).runs_shard_zero is False


@pytest.mark.parametrize(
    ("count", "ids", "says"),
    [
        ("4", "3-1", "runs backwards"),
        ("4", "4", "DISCORD_SHARD_COUNT=4 means shards 0 to 3"),
        ("4", "1,1", "names a shard twice"),
        ("4", "one", "such as 0-3 or 0,2"),
        ("4", "0-", "such as 0-3 or 0,2"),  # a range without its end is not shard 0
        ("4", "-2", "such as 0-3 or 0,2"),
        ("4", "1-2-3", "such as 0-3 or 0,2"),
        ("0", "", "a whole number from 1 to 65535"),
        ("65536", "", "a whole number from 1 to 65535"),  # the locks keep a shard id in 16 bits
        ("", "0-1", "needs DISCORD_SHARD_COUNT"),
    ],
)
def test_a_wrong_shard_setting_says_how_to_write_it(count: str, ids: str, says: str) -> None:
    with pytest.raises(ShardSettingError, match=says):
        shard_plan(count, ids)
    environment = {"XAI_API_KEY": "k", "DISCORD_TOKEN": "t", "DISCORD_SHARD_COUNT": count, "DISCORD_SHARD_IDS": ids}
    with pytest.raises(ConfigError, match=says):
        load_settings(environment)


async def test_identifies_of_two_processes_wait_their_turn() -> None:
    async with fresh_database() as url:
        gate = asyncio.Event()

        async def held(_seconds: float) -> None:
            await gate.wait()  # the identify interval, ended when the test says

        first = IdentifyQueue(connector(url, purpose="a"), sleep=held)
        second = IdentifyQueue(connector(url, purpose="b"), sleep=held)
        try:
            await first.before_identify(0)
            waiting = asyncio.create_task(second.before_identify(1))
            await _waits_on_a_lock(url, "grok-video-bot b")  # the server holds the second back
            assert not waiting.done() and second.identifies == 0
            gate.set()  # five seconds have passed since the first IDENTIFY
            await asyncio.wait_for(waiting, 10)
            assert second.identifies == 1
        finally:
            gate.set()
            await first.close()
            await second.close()


async def test_a_process_that_hangs_holding_the_identify_turn_is_ended_by_the_server() -> None:
    # A frozen process (SIGSTOP, a stalled VM) still answers TCP keepalives: only the server's idle_session_timeout
    # frees the turn it held, without which no other process could ever identify (or reconnect) again.
    async with fresh_database() as url:
        gate = asyncio.Event()

        async def frozen(_seconds: float) -> None:
            await gate.wait()  # never returns by itself: the process froze while holding the turn

        hung = IdentifyQueue(connector(url, purpose="a", idle_timeout_s=0.3), sleep=frozen)
        other = IdentifyQueue(connector(url, purpose="b"), sleep=fast_sleep)
        try:
            await hung.before_identify(0)
            await asyncio.wait_for(other.before_identify(1), 10)
            assert other.identifies == 1
        finally:
            gate.set()
            await hung.close()
            await other.close()


async def test_the_bots_identify_and_election_sessions_end_when_they_go_quiet() -> None:
    async with fresh_database() as url:
        settings = load_settings({"XAI_API_KEY": "k", "DISCORD_TOKEN": "t", "DATABASE_URL": url})
        links = links_for(settings)
        assert links is not None
        for connect in (links.election, identify_queue(settings)._connect):  # the turn's connection is private
            assert connect is not None
            connection = await connect()
            try:
                assert await connection.fetchval("SHOW idle_session_timeout") in ("15s", "30s")
            finally:
                await close_quietly(connection)


async def test_a_shard_is_run_by_one_process_only() -> None:
    async with fresh_database() as url:
        held = await _claimed(url, "a", ShardPlan(4, (0, 1)))
        try:
            with pytest.raises(ShardTaken, match="already runs shard 1"):
                await _claimed(url, "b", ShardPlan(4, (1, 2)))
            other = await _claimed(url, "d", ShardPlan(4, (2, 3)))
            await other.close()
        finally:
            await held.close()
        # The claim goes with its connection (a process that died): another process may run the shards now.
        again = await _claimed(url, "e", ShardPlan(4, (0, 1)))
        await again.close()
        alone = await _claimed(url, "f", None)
        try:
            with pytest.raises(ShardTaken, match="without shard settings"):
                await _claimed(url, "g", None)  # shard 0 of 1 twice
        finally:
            await alone.close()


async def test_processes_with_different_shard_counts_are_refused() -> None:
    # Discord routes a server's events by (id >> 22) % count: shards 0 of 2 and 1-3 of 4 would split them wrongly.
    async with fresh_database() as url:
        held = await _claimed(url, "a", ShardPlan(2, (0,)))
        try:
            with pytest.raises(ShardTaken, match="runs with DISCORD_SHARD_COUNT=2, and this one with DISCORD_SHARD_C"):
                await _claimed(url, "b", ShardPlan(4, (1, 2, 3)))
            with pytest.raises(ShardTaken, match="every process needs the same DISCORD_SHARD_COUNT"):
                await _claimed(url, "c", None)
            same = await _claimed(url, "d", ShardPlan(2, (1,)))
            await same.close()
        finally:
            await held.close()


async def test_shards_are_claimed_again_when_the_session_holding_them_ends() -> None:
    # A server restart, a cut network or pg_terminate_backend ends the session and its locks with it: a process
    # started then on the same shards would answer the same interactions twice.
    async with fresh_database() as url:
        held = await _claimed(url, "a", ShardPlan(2, (0,)))
        try:
            first = held.server_pid
            assert first is not None
            await end_session(url, first)
            await until(lambda: held.retakes == 1 and held.held)
            assert held.server_pid != first
            with pytest.raises(ShardTaken, match="already runs shard 0"):
                await _claimed(url, "b", ShardPlan(2, (0,)))
        finally:
            await held.close()


async def _claimed(url: str, name: str, plan: ShardPlan | None) -> ShardClaim:
    claim = ShardClaim(connector(url, purpose=name), plan, check_s=0.05)
    await claim.claim()
    return claim


async def _waits_on_a_lock(url: str, application: str) -> None:
    connection = await asyncpg.connect(url, timeout=5)
    try:
        sql = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND application_name LIKE $1"
        for _ in range(500):
            if await connection.fetchval(sql, application + "%"):
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"{application} never waited for the identify lock")
    finally:
        await connection.close()


async def test_an_identify_given_up_while_it_waits_for_the_turn_leaves_no_turn_held() -> None:
    # discord.py gives up a shard's connect after 60 s (180 s at launch), cancelling the hook while another
    # process holds the turn: the next identify of this process must still get its turn, and the server no lock.
    async with fresh_database() as url:
        gate = asyncio.Event()

        async def held(_seconds: float) -> None:
            await gate.wait()

        other = IdentifyQueue(connector(url, purpose="a"), sleep=held)
        mine = IdentifyQueue(connector(url, purpose="b"), sleep=fast_sleep)
        try:
            await other.before_identify(0)
            given_up = asyncio.create_task(mine.before_identify(1))
            await _waits_on_a_lock(url, "grok-video-bot b")
            given_up.cancel()
            await asyncio.gather(given_up, return_exceptions=True)
            gate.set()  # the other process's turn ends
            await asyncio.wait_for(mine.before_identify(2), 10)
            assert mine.identifies == 1
            await _no_session_of(url, "grok-video-bot b")  # the given-up try's connection was closed, not left
        finally:
            gate.set()
            await other.close()
            await mine.close()


async def _no_session_of(url: str, application: str) -> None:
    connection = await asyncpg.connect(url, timeout=5)
    try:
        sql = "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE $1"
        for _ in range(500):
            if not await connection.fetchval(sql, application + "%"):
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"{application} left a session open")
    finally:
        await connection.close()


def _nothing_listens() -> str:
    """A PostgreSQL URL on a loopback port where nothing listens (a server that is restarting refuses so)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"postgresql://postgres@127.0.0.1:{port}/postgres"


async def test_the_first_claim_waits_for_a_database_that_is_restarting(caplog: pytest.LogCaptureFixture) -> None:
    # The store opened a moment ago, then PostgreSQL restarts (or is at max_connections) just as the shards are
    # claimed: the claim waits for it as opening the store does, saying so once, rather than end the bot.
    caplog.set_level(logging.WARNING, logger="services.cluster")
    async with fresh_database() as url:
        real, refused = connector(url, purpose="a"), connector(_nothing_listens(), purpose="a")
        refusals = [3]

        async def restarting() -> asyncpg.Connection:
            if refusals[0]:
                refusals[0] -= 1
                return await refused()
            return await real()

        waits: list[float] = []

        async def wait(seconds: float) -> None:
            waits.append(seconds)

        claim = ShardClaim(restarting, ShardPlan(2, (0,)), check_s=0.05)
        await asyncio.wait_for(claim.claim(wait=wait), 10)
        try:
            assert claim.held and waits == [0.05] * 3
        finally:
            await claim.close()
        with pytest.raises(OSError):  # without a wait (the tests' own claims), it is said at once
            await ShardClaim(refused, None).claim()
    said = [record.getMessage() for record in caplog.records]
    assert len(said) == 1 and said[0].startswith("Cannot reach the database to claim shard(s) 0 (")
    assert said[0].endswith("); trying again every 0.05 s")
