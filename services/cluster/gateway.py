"""The Discord side of a cluster: shards claimed once in the database, and identifies spaced across processes.

Every process claims each shard it runs with ``pg_try_advisory_lock(SHARD_KEY + id)`` on a connection it keeps:
a second process naming a shard already run (or two started without shard settings, which both mean shard 0)
is refused at start, since both would receive, and answer, the same interactions. Discord allows one IDENTIFY per
5 seconds for the whole bot (at ``max_concurrency`` 1, what bots below very large sizes get); discord.py only spaces
them within one process, so ``IdentifyQueue`` takes ``pg_advisory_lock(IDENTIFY_KEY)`` before each and holds it
``interval_s`` after.
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
IDENTIFY_KEY = 0x6776_625F_6964_0000  # "gvb_id"
IDENTIFY_INTERVAL_S = 5.0  # Discord's rule: one IDENTIFY per 5 s
CHECK_TIMEOUT_S = 5.0  # a claim's query slower than this counts as a lost session


class ShardTaken(Exception):
    """Another process runs a shard this one was told to run; ``str()`` says what to change."""


COUNT_KEY = 0x6776_625F_636E_0000  # "gvb_cn" + the shard count: held shared by every process, so all name one
HELD_SQL = (
    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted "
    "AND ((classid::bigint << 32) | objid::bigint) = ANY($1::bigint[])"
)
OTHER_COUNTS_SQL = (
    "SELECT DISTINCT objid::bigint - $2 FROM pg_locks WHERE locktype = 'advisory' AND granted "
    "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
    "AND classid::bigint = $1 AND objid::bigint BETWEEN $2 AND $2 + 65535 AND objid::bigint <> $2 + $3"
)


class ShardClaim:
    """This process's shards (shard 0 of 1 without a plan) held in the database while it runs.

    The locks live as long as the session holding them: a server restart, a cut network or an admin's
    ``pg_terminate_backend`` ends it, and a second process could then start on the same shards. So the claim
    checks its session every ``check_s`` and, when it is gone, takes the shards again on a new one (trying every
    ``check_s`` until it can). Every process also holds its DISCORD_SHARD_COUNT (shared): one started with another
    count is refused, since Discord routes each server's events by the count and the two would split them wrongly.
    """

    def __init__(
        self, connect: Connect, plan: ShardPlan | None, *, check_s: float = 2.0, sleep: Sleep = asyncio.sleep
    ) -> None:
        self._connect = connect
        self._plan = plan
        self.shards = plan.mine if plan is not None else (0,)
        self.count = plan.count if plan is not None else 1
        self._check_s = check_s
        self._sleep = sleep
        self._connection: asyncpg.Connection | None = None
        self._keeping: asyncio.Task[None] | None = None
        self.held = False  # whether the database holds every shard for this process now
        self.retakes = 0  # how many times the shards were taken again after their session ended
        self.server_pid: int | None = None  # the session holding them (for tests and logs)

    async def claim(self, *, wait: Sleep | None = None) -> None:
        """The first claim, at start: ``ShardTaken`` when another process runs one of the shards, or another count.

        A database that cannot be reached (restarting, at its connection limit) is tried again every ``check_s``
        through ``wait`` (the start-up's own, which a stop ends), said once; without ``wait`` it is raised."""
        shards = ", ".join(map(str, self.shards))
        said: set[str] = set()
        while True:
            try:
                await self._take()
                break
            except CONNECTION_LOST as error:
                if wait is None:
                    raise
                if _first("unreachable", said):
                    log.warning(
                        "Cannot reach the database to claim shard(s) %s (%s); trying again every %g s",
                        shards,
                        error,
                        self._check_s,
                    )
                await wait(self._check_s)
        log.info("Running shard(s) %s of %d", shards, self.count)
        self._keeping = asyncio.create_task(self._keep(), name="shard-claim")

    async def close(self) -> None:
        if self._keeping is not None:
            self._keeping.cancel()
            await asyncio.gather(self._keeping, return_exceptions=True)
            self._keeping = None
        connection, self._connection = self._connection, None
        self.held = False
        await close_quietly(connection)

    async def _take(self) -> None:
        connection = await self._connect()
        try:
            count_key = COUNT_KEY + self.count
            await connection.fetchval("SELECT pg_try_advisory_lock_shared($1)", count_key, timeout=CHECK_TIMEOUT_S)
            others = await connection.fetch(
                OTHER_COUNTS_SQL, COUNT_KEY >> 32, COUNT_KEY & 0xFFFF_FFFF, self.count, timeout=CHECK_TIMEOUT_S
            )
            if others:
                raise ShardTaken(_other_count_text(int(others[0][0]), self._plan))
            for shard in self.shards:
                if not await connection.fetchval("SELECT pg_try_advisory_lock($1)", SHARD_KEY + shard):
                    raise ShardTaken(_taken_text(shard, self._plan))
        except BaseException:
            await close_quietly(connection)
            raise
        self._connection, self.held, self.server_pid = connection, True, connection.get_server_pid()

    async def _keep(self) -> None:
        while True:
            await self._sleep(self._check_s)
            if await self._still_held():
                continue
            self.held = False
            shards = ", ".join(map(str, self.shards))
            log.warning("The database no longer holds shard(s) %s for this process; claiming them again", shards)
            connection, self._connection = self._connection, None
            await close_quietly(connection)
            said: set[str] = set()  # each reason said once per outage, not every check_s for as long as it lasts
            while not self.held:
                try:
                    await self._take()
                except ShardTaken as taken:  # for about 11 s after a cut network, the server may keep our old session
                    if _first("taken", said):
                        log.error("Shard(s) %s cannot be claimed again yet (trying on): %s", shards, taken)
                except CONNECTION_LOST as error:
                    if _first("unreachable", said):
                        log.warning("Cannot reach the database to claim shard(s) %s again (%s)", shards, error)
                if not self.held:
                    await self._sleep(self._check_s)
            self.retakes += 1
            log.info("Shard(s) %s claimed again in the database", shards)

    async def _still_held(self) -> bool:
        connection = self._connection
        if connection is None or connection.is_closed():
            return False
        keys = [SHARD_KEY + shard for shard in self.shards]
        try:
            return bool(await connection.fetchval(HELD_SQL, keys, timeout=CHECK_TIMEOUT_S) == len(keys))
        except CONNECTION_LOST:
            return False


def _first(reason: str, said: set[str]) -> bool:
    if reason in said:
        return False
    said.add(reason)
    return True


def _other_count_text(other: int, plan: ShardPlan | None) -> str:
    mine = f"DISCORD_SHARD_COUNT={plan.count}" if plan is not None else "no shard settings (one shard)"
    theirs = f"DISCORD_SHARD_COUNT={other}" if other != 1 else "one shard (DISCORD_SHARD_COUNT=1, or none set)"
    return (
        f"another bot process on this database runs with {theirs}, and this one with {mine}. Discord sends each "
        "server's events by the count, so every process needs the same DISCORD_SHARD_COUNT"
    )


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
    """``before_identify_hook`` for every process of one bot: identifies one at a time, ``interval_s`` apart,
    whichever process sends them; in one process alone (no database) the same spacing in memory."""

    def __init__(
        self,
        connect: Connect | None,
        *,
        interval_s: float = IDENTIFY_INTERVAL_S,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._connect = connect
        self.interval_s = interval_s
        self._sleep = sleep
        self._local = asyncio.Lock()
        self._releases: set[asyncio.Task[None]] = set()
        self.identifies = 0

    async def before_identify(self, shard_id: int | None) -> None:
        """Wait for this shard's turn; the turn is held ``interval_s`` after return (when the IDENTIFY goes)."""
        await self._local.acquire()  # one at a time here too: a process's shards queue before they reach the lock
        connection = None
        if self._connect is not None:
            try:
                connection = await self._connect()
                await connection.execute("SELECT pg_advisory_lock($1)", IDENTIFY_KEY)
            except CONNECTION_LOST as error:
                log.warning("Identifying without the database's turn (%s): spacing it in this process only", error)
                await close_quietly(connection)
                connection = None
            except BaseException:  # given up while waiting (discord.py cancels a shard's slow connect): no turn kept
                await asyncio.shield(self._let_go(connection))
                raise
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
            await self._let_go(connection)

    async def _let_go(self, connection: asyncpg.Connection | None) -> None:
        """End a turn: the session (and any lock it holds or waits for) closed, this process's next one let in."""
        try:
            await close_quietly(connection)
        finally:
            self._local.release()

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._releases.add(task)
        task.add_done_callback(self._releases.discard)
