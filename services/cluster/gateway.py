"""The Discord side of a cluster: shards claimed once in the database, and identifies spaced across processes.

Every process claims each shard it runs with ``pg_try_advisory_lock(SHARD_KEY + id)`` on a connection it keeps:
a second process naming a shard already run (or two started without shard settings, which both mean shard 0)
is refused at start, since both would receive, and answer, the same interactions. Discord allows one IDENTIFY per
5 seconds per ``max_concurrency`` bucket for the whole bot; discord.py only spaces them within one process, so
``IdentifyQueue`` takes ``pg_advisory_lock(IDENTIFY_KEY + bucket)`` before each and holds it ``interval_s`` after.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

import asyncpg

from services.cluster.link import CONNECTION_LOST, Connect, close_quietly
from services.cluster.shards import ShardPlan
from services.scheduler.settings import Sleep

log = logging.getLogger(__name__)

SHARD_KEY = 0x6776_625F_7368_0000  # "gvb_sh" + the shard id
IDENTIFY_KEY = 0x6776_625F_6964_0000  # "gvb_id" + the bucket
IDENTIFY_INTERVAL_S = 5.0  # Discord's rule: one IDENTIFY per 5 s per bucket


class ShardTaken(Exception):
    """Another process runs a shard this one was told to run; ``str()`` says what to change."""


async def claim_shards(connect: Connect, plan: ShardPlan | None) -> asyncpg.Connection:
    """Claim this process's shards (shard 0 of 1 without a plan) for as long as the returned connection lives."""
    shards = plan.mine if plan is not None else (0,)
    connection = await connect()
    try:
        for shard in shards:
            if not await connection.fetchval("SELECT pg_try_advisory_lock($1)", SHARD_KEY + shard):
                raise ShardTaken(_taken_text(shard, plan))
    except BaseException:
        await close_quietly(connection)
        raise
    log.info("Running shard(s) %s of %d", ", ".join(map(str, shards)), plan.count if plan else 1)
    return connection


def _taken_text(shard: int, plan: ShardPlan | None) -> str:
    if plan is None:
        return (
            "another bot process already runs on this database without shard settings, and both would answer every "
            "interaction. Give each process the same DISCORD_SHARD_COUNT and its own DISCORD_SHARD_IDS "
            "(for example 0 and 1 of DISCORD_SHARD_COUNT=2)"
        )
    return (
        f"another bot process on this database already runs shard {shard}. Give each process its own "
        "DISCORD_SHARD_IDS (no shard in two), with the same DISCORD_SHARD_COUNT"
    )


class IdentifyQueue:
    """``before_identify_hook`` for every process of one bot: identifies one at a time per bucket, ``interval_s``
    apart, whichever process sends them; in one process alone (no database) the same spacing in memory."""

    def __init__(
        self,
        connect: Connect | None,
        *,
        interval_s: float = IDENTIFY_INTERVAL_S,
        max_concurrency: int = 1,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._connect = connect
        self.interval_s = interval_s
        self._max_concurrency = max(1, max_concurrency)
        self._sleep = sleep
        self._local = asyncio.Lock()
        self._releases: set[asyncio.Task[None]] = set()
        self.identifies = 0

    async def before_identify(self, shard_id: int | None) -> None:
        """Wait for this shard's turn; the turn is held ``interval_s`` after return (when the IDENTIFY goes)."""
        bucket = (shard_id or 0) % self._max_concurrency
        await self._local.acquire()  # one at a time here too: a process's shards queue before they reach the lock
        connection = None
        if self._connect is not None:
            try:
                connection = await self._connect()
                await connection.execute("SELECT pg_advisory_lock($1)", IDENTIFY_KEY + bucket)
            except CONNECTION_LOST as error:
                log.warning("Identifying without the database's turn (%s): spacing it in this process only", error)
                await close_quietly(connection)
                connection = None
        self.identifies += 1
        self._spawn(self._release_later(connection))

    async def close(self) -> None:
        for task in list(self._releases):
            task.cancel()
        await asyncio.gather(*self._releases, return_exceptions=True)

    async def _release_later(self, connection: asyncpg.Connection | None) -> None:
        try:
            await self._sleep(self.interval_s)
            if connection is not None:
                await connection.execute("SELECT pg_advisory_unlock_all()")
        except CONNECTION_LOST:
            pass  # the session is gone, and its lock with it
        finally:
            await close_quietly(connection)
            self._local.release()

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._releases.add(task)
        task.add_done_callback(self._releases.discard)
