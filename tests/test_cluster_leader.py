"""The leader election on a real PostgreSQL: one leader at a time, and a takeover when its session ends."""

from __future__ import annotations

import asyncio

import asyncpg

from services.cluster.leader import ElectionTiming, Leadership
from services.cluster.link import connector
from tests.cluster_pg import end_session, fresh_database
from tests.scheduler_rig import fast_sleep, until

FAST = ElectionTiming(retry_s=0.05, check_s=0.05, check_timeout_s=2.0)


def member(url: str, name: str, log: list[tuple[str, str]]) -> Leadership:
    async def elected() -> None:
        log.append(("elected", name))

    async def deposed() -> None:
        log.append(("deposed", name))

    return Leadership(
        connector(url, purpose=name, idle_timeout_s=15),
        on_elected=elected,
        on_deposed=deposed,
        timing=FAST,
        sleep=fast_sleep,
    )


async def test_one_leader_at_a_time_and_a_takeover_when_its_session_ends() -> None:
    async with fresh_database() as url:
        log: list[tuple[str, str]] = []
        members = {name: member(url, name, log) for name in ("a", "b", "c")}
        tasks = [asyncio.create_task(m.run()) for m in members.values()]
        try:
            await until(lambda: any(m.leading for m in members.values()), timeout=30)
            first = next(name for name, m in members.items() if m.leading)
            others = [m for name, m in members.items() if name != first]
            tried = [m.tries for m in others]
            await until(lambda: all(m.tries >= t + 3 for m, t in zip(others, tried, strict=True)), 30)  # kept asking
            assert [m.leading for m in members.values()].count(True) == 1
            pid = members[first].server_pid
            assert pid is not None
            await end_session(url, pid)  # the leader's host is gone: the server ends its session
            await until(lambda: ("deposed", first) in log, timeout=30)
            await until(
                lambda: sum(m.leading for m in members.values()) == 1 and not members[first].leading, timeout=30
            )
            second = next(name for name, m in members.items() if m.leading)
            assert second != first
            await until(lambda: ("elected", second) in log, timeout=30)  # its term starts as a task of its own
            assert log[0] == ("elected", first) and log.count(("elected", second)) == 1
            # The old leader stands again, as a follower: it asks and is refused while the new one leads.
            tries = members[first].tries
            await until(lambda: members[first].tries >= tries + 3, timeout=30)
            assert not members[first].leading and members[second].leading
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


async def test_a_leader_whose_database_vanishes_steps_down_and_stands_again() -> None:
    async with fresh_database() as url:
        log: list[tuple[str, str]] = []
        alone = member(url, "alone", log)
        task = asyncio.create_task(alone.run())
        try:
            await until(lambda: alone.leading, timeout=30)
            pid = alone.server_pid
            assert pid is not None
            await end_session(url, pid)
            await until(lambda: ("deposed", "alone") in log, timeout=30)
            await until(lambda: alone.leading and alone.terms == 2 and len(log) == 3, 30)  # nobody else: elected again
            assert log == [("elected", "alone"), ("deposed", "alone"), ("elected", "alone")]
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def test_a_term_slower_to_start_than_the_idle_timeout_keeps_its_lock() -> None:
    # A new leader first waits out the handover (a minute at XAI_MAX_REQUESTS_PER_MINUTE=1) and resumes every job
    # in flight: its election session must stay busy meanwhile, or the server ends it as a hung one (and the next
    # leader's start as well: nobody would ever lead).
    async with fresh_database() as url:
        log: list[tuple[str, str]] = []

        async def slow_start() -> None:
            await asyncio.sleep(1.5)  # real time on purpose: idle_session_timeout runs on the server's clock
            log.append(("elected", "slow"))

        async def deposed() -> None:
            log.append(("deposed", "slow"))

        slow = Leadership(
            connector(url, purpose="slow", idle_timeout_s=0.5),
            on_elected=slow_start,
            on_deposed=deposed,
            timing=FAST,
            sleep=fast_sleep,
        )
        task = asyncio.create_task(slow.run())
        try:
            await asyncio.wait_for(slow.first_answer.wait(), 30)
            checks = slow.checks
            await until(lambda: slow.checks >= checks + 3, 30)
            assert log == [("elected", "slow")] and slow.leading and slow.terms == 1
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def test_a_leaders_wait_between_checks_is_always_cancellable() -> None:
    # Stopping the bot cancels the election while the leader waits between two checks of its lock. A cancel that
    # came just as the wait ended (its nap over, the other helper being cancelled) was swallowed: the leader went
    # on checking for ever and the bot's stop hung (seen as tests/test_cluster_seat.py hanging under load).
    async def instant(_seconds: float) -> None:
        return None

    async def nothing() -> None:
        return None

    async def unused() -> asyncpg.Connection:
        raise AssertionError("no connection is needed to wait")

    leadership = Leadership(unused, on_elected=nothing, on_deposed=nothing, timing=FAST, sleep=instant)
    lost = asyncio.Event()
    for turns in range(12):  # a cancel at every point of the wait, one turn of the event loop apart
        waiting = asyncio.ensure_future(leadership._wait(lost, 1.0))
        for _ in range(turns):
            await asyncio.sleep(0)
        if waiting.cancel():
            await asyncio.wait({waiting}, timeout=5)
            assert waiting.cancelled(), f"a cancel {turns} turns in was swallowed"
