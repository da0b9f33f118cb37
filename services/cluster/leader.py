"""Leader election: the process whose dedicated connection holds ``pg_try_advisory_lock(LEADER_KEY)`` leads.

Every process tries every ``retry_s``; the one that gets the lock runs the scheduler until the connection fails.
The lock lives and dies with that connection's session: a SIGKILLed leader's socket closes and the server frees
the lock at once; a leader whose host vanished is ended by the server's TCP keepalives; a leader that hangs is
ended by ``idle_session_timeout``. The leader checks its connection every ``check_s`` (and hears at once when
asyncpg sees it close) and steps down first, before anyone else can take over, whenever a check fails.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncpg

from services.cluster.link import CONNECTION_LOST, Connect, close_quietly
from services.scheduler.settings import Sleep

log = logging.getLogger(__name__)

LEADER_KEY = 0x6776_625F_6C65_6164  # "gvb_lead": the one lock that says who runs the scheduler


@dataclass(frozen=True, slots=True)
class ElectionTiming:
    retry_s: float = 2.0  # how often a follower asks for the lock (and reconnects after a failure)
    check_s: float = 1.0  # how often the leader makes sure its connection still holds it
    # A check slower than this counts as a lost connection. Kept well under what the server waits before it ends a
    # silent session (TCP keepalives: about 11 s), so a cut-off leader has stepped down before another can take over.
    check_timeout_s: float = 5.0
    # The server ends a leader's session quiet for this long (its checks keep a live one busy every check_s).
    idle_session_timeout_s: float = 15.0


Elected = Callable[[], Awaitable[None]]
Deposed = Callable[[], Awaitable[None]]
Heard = Callable[[object, int, str, object], None]  # (connection, server pid, channel, payload)


class Leadership:
    """Runs the election for this process: ``on_elected()`` when it takes the lock, ``on_deposed()``
    as soon as it may have lost it. ``run`` goes on until cancelled (the lock goes with the connection)."""

    def __init__(
        self,
        connect: Connect,
        *,
        on_elected: Elected,
        on_deposed: Deposed,
        listen: dict[str, Heard] | None = None,
        timing: ElectionTiming | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._connect = connect
        self._on_elected = on_elected
        self._on_deposed = on_deposed
        self._listen = listen or {}  # LISTENed to on the lock's own connection: heard only while it holds the lock
        self.timing = timing or ElectionTiming()
        self._key = LEADER_KEY
        self._sleep = sleep
        self.leading = False
        self.terms = 0  # how many times this process was elected
        self.tries = 0  # how many times it asked for the lock
        self.checks = 0  # how many times, while leading, it made sure it still held it
        self.server_pid: int | None = None  # the session holding the lock while leading (for tests and logs)
        self.first_answer = asyncio.Event()  # set once the first try is over: elected (and started), or not

    async def run(self) -> None:
        while True:
            connection: asyncpg.Connection | None = None
            try:
                connection = await self._connect()
                await self._follow_then_lead(connection)
            except CONNECTION_LOST as error:
                log.warning("Lost the database connection for the leader election (%s); trying again", error)
            except Exception:  # a term that failed to start (the store down mid-resume): step down, stand again
                log.exception("The scheduler's term failed; standing for election again")
            finally:
                self.first_answer.set()
                if self.leading:
                    self.leading = False
                    log.warning("No longer the scheduler's leader: stepping down")
                    await asyncio.shield(self._on_deposed())
                await close_quietly(connection)
            await self._sleep(self.timing.retry_s)

    async def _follow_then_lead(self, connection: asyncpg.Connection) -> None:
        timing = self.timing
        try_lock = "SELECT pg_try_advisory_lock($1)"
        while not await self._try(connection, try_lock):
            self.first_answer.set()
            await self._sleep(timing.retry_s)
        self.server_pid = connection.get_server_pid()
        lost = asyncio.Event()
        connection.add_termination_listener(lambda _connection: lost.set())
        for channel, heard in self._listen.items():
            await connection.add_listener(channel, heard)
        self.leading = True
        self.terms += 1
        log.info("Elected the scheduler's leader (term %d in this process)", self.terms)
        # The term starts (the handover wait, the resume of every job in flight) while the lock is watched: that
        # keeps the session busy, or the server would end it as a hung one once idle_session_timeout had passed.
        starting = asyncio.ensure_future(self._on_elected())
        watching = asyncio.ensure_future(self._hold(connection, lost))
        try:
            await asyncio.wait({starting, watching}, return_when=asyncio.FIRST_COMPLETED)
            if starting.done():
                starting.result()  # a term that failed to start ends here
                self.first_answer.set()
            await watching
        finally:
            for task in (starting, watching):
                task.cancel()
            await asyncio.gather(starting, watching, return_exceptions=True)

    async def _hold(self, connection: asyncpg.Connection, lost: asyncio.Event) -> None:
        """Return once the lock may be lost: the connection closed, or the session no longer holds it."""
        timing = self.timing
        while not lost.is_set():
            await self._wait(lost, timing.check_s)
            if lost.is_set():
                break
            held = await connection.fetchval(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted "
                "AND ((classid::bigint << 32) | objid::bigint) = $1",
                self._key,
                timeout=timing.check_timeout_s,
            )
            self.checks += 1
            if not held:
                log.warning("The leader lock is no longer held by this process's session")
                return
        log.warning("The leader's database connection closed")

    async def _try(self, connection: asyncpg.Connection, sql: str) -> bool:
        self.tries += 1
        return bool(await connection.fetchval(sql, self._key, timeout=self.timing.check_timeout_s))

    async def _wait(self, lost: asyncio.Event, seconds: float) -> None:
        """``seconds`` of the injected sleep, cut short when the connection closes.

        The helpers are awaited with ``asyncio.wait``, which never raises their CancelledError: suppressing it
        around ``await task`` would swallow a cancel of this task arriving meanwhile, and the leader would never
        stop (the bot's shutdown hung on it)."""
        nap = asyncio.ensure_future(self._sleep(seconds))
        closed = asyncio.ensure_future(lost.wait())
        try:
            await asyncio.wait({nap, closed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (nap, closed):
                task.cancel()
            await asyncio.wait({nap, closed})
