"""Two processes' seats on one PostgreSQL store: only the elected one runs a scheduler; the other accepts, cancels
and wakes it; when the leader's session ends the other takes over and finishes its jobs.

Each "process" is a seat with its own scheduler, budget and listener over its own store connection pool, as
two ``python bot.py`` would have, against the xAI emulator.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from services.cluster.leader import LEADER_KEY, ElectionTiming
from services.cluster.link import JOBS_CHANNEL, connector
from services.cluster.seat import ClusterLinks, LeaderUnavailable, SchedulerSeat, SeatTiming
from services.config import Secret
from services.jobs.accepting import JobService
from services.jobs.models import CancelResult, JobStatus
from services.policy.guild_policy import LimitDefaults
from services.policy.server_rules import ServerRules
from services.scheduler.loop import Scheduler
from services.store.postgres import PostgresDatabase
from services.store.store import Store
from services.xai.budget import RequestBudget
from services.xai.client import XaiClient
from tests.cluster_pg import end_session, fresh_database
from tests.emulators.xai_emulator import Outcome, XaiEmulator
from tests.scheduler_rig import (
    FAST_SETTINGS,
    RecordingListener,
    fast_sleep,
    text_request,
    until,
    wait_for,
)

TIMING = SeatTiming(
    handover_s=0.0, backup_scan_s=0.2, ask_timeout_s=5.0, election=ElectionTiming(retry_s=0.05, check_s=0.05)
)
SUBMITS = "/v1/videos/generations"
UNLIMITED = LimitDefaults(user_videos=None, user_active_jobs=None, server_videos_per_day=None, server_usd_per_day=None)


@dataclass
class Member:
    name: str
    store: Store
    seat: SchedulerSeat
    jobs: JobService
    listener: RecordingListener


@contextlib.asynccontextmanager
async def cluster(
    url: str,
    tmp_path: Path,
    xai: XaiEmulator,
    *,
    max_concurrent: int = 5,
    caps: tuple[int, int] | None = None,
    timing: SeatTiming = TIMING,
    elect: bool = True,
) -> AsyncIterator[list[Member]]:
    members: list[Member] = []
    async with aiohttp.ClientSession() as session, contextlib.AsyncExitStack() as stack:
        for name, cap in zip(("a", "b"), caps or (max_concurrent, max_concurrent), strict=True):
            store = Store(await PostgresDatabase.open(url, tmp_path / name / "db.sqlite3"))
            stack.push_async_callback(store.close)
            listener = RecordingListener()
            budget = RequestBudget(6000)
            client = XaiClient(
                session, api_key=Secret(xai.api_key), base_url=xai.base_url, budget=budget, sleep=fast_sleep
            )

            scheduler = Scheduler(
                store,
                client,
                budget,
                listener,
                session=session,
                media_dir=tmp_path / name / "videos",
                settings=replace(FAST_SETTINGS, max_concurrent=cap),
            )
            links = ClusterLinks(
                election=connector(url, purpose=f"{name} election", idle_timeout_s=15),
                messages=connector(url, purpose=f"{name} messages"),
            )
            seat = SchedulerSeat(scheduler, store, links=links, timing=timing, sleep=fast_sleep)
            stack.push_async_callback(seat.stop)
            members.append(Member(name, store, seat, JobService(store, seat, ServerRules(store, UNLIMITED)), listener))
        for member in members:
            await member.seat.start()
        if elect:
            await until(lambda: any(m.seat.seated for m in members))
        yield members


def leader_and_follower(members: list[Member]) -> tuple[Member, Member]:
    leader = next(m for m in members if m.seat.seated)
    return leader, next(m for m in members if m is not leader)


def submits(xai: XaiEmulator) -> int:
    return sum(1 for r in xai.requests if r.method == "POST" and r.path == SUBMITS)


async def test_a_job_accepted_by_a_follower_is_made_and_delivered_by_the_leader(tmp_path: Path) -> None:
    async with fresh_database() as url, XaiEmulator(generation_s=0.2) as xai, cluster(url, tmp_path, xai) as members:
        leader, follower = leader_and_follower(members)
        accepted = await follower.jobs.accept(text_request("a follower's job"))
        assert accepted.position is None  # only the leader knows the line
        ended = await asyncio.wait_for(leader.listener.ending(accepted.job.id), 10)
        assert ended.id == accepted.job.id and accepted.job.id in leader.listener.delivered
        assert not follower.listener.delivered and submits(xai) == 1
        await wait_for(follower.store, accepted.job.id, lambda job: job.status is JobStatus.DELIVERED)


async def test_a_follower_cancels_a_waiting_job_in_the_store_and_a_running_one_through_the_leader(
    tmp_path: Path,
) -> None:
    async with (
        fresh_database() as url,
        XaiEmulator(generation_s=30) as xai,
        cluster(url, tmp_path, xai, max_concurrent=1) as members,
    ):
        leader, follower = leader_and_follower(members)
        running = (await follower.jobs.accept(text_request("first"))).job
        waiting = (await follower.jobs.accept(text_request("second"))).job
        await until(lambda: submits(xai) == 1)
        assert await follower.jobs.cancel(waiting.id) is CancelResult.BEFORE_SENDING
        await until(lambda: leader.seat.scheduler.queue_position(waiting.id) is None)  # the leader dropped it
        job = await leader.store.jobs.get(running.id)
        assert job is not None
        if job.status is not JobStatus.RUNNING:
            await until(lambda: leader.seat.scheduler.generating == 1 and leader.seat.scheduler.waiting == 0)
        assert await follower.jobs.cancel(running.id) is CancelResult.AFTER_SENDING  # asked of the leader
        stored = await follower.store.jobs.get(waiting.id)
        assert stored is not None and stored.status is JobStatus.CANCELLED and not stored.charged
        assert submits(xai) == 1  # the waiting one never went to xAI


async def test_when_the_leaders_session_ends_the_other_takes_over_and_finishes_its_jobs(tmp_path: Path) -> None:
    async with fresh_database() as url, XaiEmulator(generation_s=0.2) as xai, cluster(url, tmp_path, xai) as members:
        leader, follower = leader_and_follower(members)
        xai.outcomes.extend([Outcome(generation_s=3.0)] * 3)
        ids = [(await follower.jobs.accept(text_request(f"job {n}"))).job.id for n in range(3)]
        await until(lambda: submits(xai) == 3)
        assert leader.seat.leadership is not None and leader.seat.leadership.server_pid is not None
        await end_session(url, leader.seat.leadership.server_pid)
        await until(lambda: follower.seat.seated and not leader.seat.seated)
        for job_id in ids:  # resumed from the store by the new leader: polled, fetched, delivered
            await asyncio.wait_for(follower.listener.ending(job_id), 15)
        assert sorted(follower.listener.delivered) == ids and submits(xai) == 3


async def test_a_leader_whose_limits_differ_from_the_last_ones_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Two processes started with different XAI_MAX_CONCURRENT_JOBS: whichever leads, its own holds for the whole bot,
    # and the cap changes with each handover. The admin reads which, and what to do, when it happens.
    caplog.set_level(logging.INFO, logger="services.cluster.seat")
    async with fresh_database() as url, XaiEmulator() as xai, cluster(url, tmp_path, xai, caps=(5, 2)) as members:
        leader, follower = leader_and_follower(members)
        mine = leader.seat.scheduler.settings.max_concurrent
        await until(lambda: f"runs in this process with XAI_MAX_CONCURRENT_JOBS={mine} " in caplog.text)
        assert leader.seat.leadership is not None and leader.seat.leadership.server_pid is not None
        await end_session(url, leader.seat.leadership.server_pid)
        await until(lambda: "give every process of the bot the same XAI_ settings" in caplog.text)
        other = follower.seat.scheduler.settings.max_concurrent
        warned = next(r.getMessage() for r in caplog.records if "the last leader ran with" in r.getMessage())
        assert (
            f"with XAI_MAX_CONCURRENT_JOBS={other} " in warned and f"ran with XAI_MAX_CONCURRENT_JOBS={mine} " in warned
        )


async def test_hostile_wake_ups_are_ignored_and_the_next_job_still_goes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Anyone who may NOTIFY on the database can send the leader anything: none of it may stop the inbox, or
    # fill the log with tracebacks.
    hostile = [
        "not json",
        "[1, 2]",
        '{"kind": "queued", "job": true}',
        '{"kind": "queued", "job": 99999999999999999999999}',
        '{"kind": "dropped", "job": -1}',
        '{"kind": "cancel", "job": 1e400, "reply": 5}',
        '{"kind": "queued", "job": "1; DROP TABLE jobs"}',
        '{"kind": "queued", "job": 1, "pad": "' + "x" * 7900 + '"}',  # near PostgreSQL's 8000-byte payload limit
    ]
    caplog.set_level(logging.INFO)
    async with fresh_database() as url, XaiEmulator(generation_s=0.2) as xai, cluster(url, tmp_path, xai) as members:
        leader, follower = leader_and_follower(members)
        connection = await asyncpg.connect(url, timeout=5)
        try:
            for payload in hostile:
                await connection.execute("SELECT pg_notify($1, $2)", JOBS_CHANNEL, payload)
        finally:
            await connection.close()
        accepted = await follower.jobs.accept(text_request("after the noise"))
        await asyncio.wait_for(leader.listener.ending(accepted.job.id), 10)
        assert accepted.job.id in leader.listener.delivered
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info], caplog.text


async def test_a_cancel_nobody_answers_says_it_cannot_tell_and_changes_nothing(tmp_path: Path) -> None:
    # No leader (another holds the lock and is not listening, as while one takes over): the follower cannot know
    # where the request stands, so it changes nothing itself and says what it knows.
    timing = replace(TIMING, ask_timeout_s=0.3)
    async with fresh_database() as url, XaiEmulator() as xai:
        holder = await asyncpg.connect(url, timeout=5)
        try:
            assert await holder.fetchval("SELECT pg_try_advisory_lock($1)", LEADER_KEY)
            async with cluster(url, tmp_path, xai, timing=timing, elect=False) as members:
                follower = members[0]
                job = (await follower.jobs.accept(text_request("on its way"))).job
                moves = ((JobStatus.QUEUED, JobStatus.SUBMITTING), (JobStatus.SUBMITTING, JobStatus.RUNNING))
                for before, after in moves:  # sent by a leader that has gone since
                    assert await follower.store.jobs.transition(job.id, before, after, charged=True)
                with pytest.raises(LeaderUnavailable, match="can't tell whether this job was cancelled") as raised:
                    await follower.seat.cancel(job.id)
                assert "Press Cancel again in a few seconds" in str(raised.value)
                stored = await follower.store.jobs.get(job.id)
                assert stored is not None and stored.status is JobStatus.RUNNING
        finally:
            await holder.close()
