"""Who runs the scheduler in this process: always (SQLite: one process), or while elected (PostgreSQL).

``SchedulerSeat`` is what accepting calls (the ``JobRunner``). On SQLite it is the scheduler itself. In a
cluster, only the elected leader runs it, started afresh for each term as a restart starts it (the store's jobs
in flight resumed by the same rules), and stopped at once when the term ends. Every other process still accepts
jobs: it writes the row, then sends a wake-up the leader hears with ``LISTEN``; a Cancel of a waiting job is written
to the store directly (one guarded move) and the leader told to drop it; a Cancel of a job being sent or generated
is asked of the leader, which alone knows where the request stands. The leader also re-reads the waiting jobs every
``backup_scan_s``, so a wake-up lost while no leader listened only delays a job.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from services.cluster.leader import ElectionTiming, Leadership
from services.cluster.link import JOBS_CHANNEL, Connect, Message, Messenger, decode
from services.jobs.models import CancelResult, ErrorCode, Job, JobStatus
from services.scheduler.loop import Scheduler
from services.scheduler.settings import Sleep
from services.store.store import Store

log = logging.getLogger(__name__)


LIMITS_KEY = "cluster_leader_limits"  # the last leader's limits, in words, to tell an admin whose settings differ


class LeaderUnavailable(Exception):
    """No process answered for the scheduler in time (one is taking over); ``str()`` says what to do."""


@dataclass(frozen=True, slots=True)
class SeatTiming:
    # A new leader waits this long before its first request to xAI, since the old one's last may have just gone
    # out: None means one slot of the request budget, so the requests of two terms are spaced as those of one.
    handover_s: float | None = None
    backup_scan_s: float = 5.0  # how often the leader re-reads the waiting jobs, in case a wake-up was lost
    ask_timeout_s: float = 5.0  # how long a Cancel waits for the leader's answer
    election: ElectionTiming = field(default_factory=ElectionTiming)


@dataclass(frozen=True, slots=True)
class ClusterLinks:
    """The two dedicated connections a clustered process opens: the election's and the messenger's."""

    election: Connect
    messages: Connect


class SchedulerSeat:
    """The ``JobRunner`` accepting talks to, and who starts and stops this process's ``Scheduler``."""

    def __init__(
        self,
        scheduler: Scheduler,
        store: Store,
        *,
        links: ClusterLinks | None = None,
        timing: SeatTiming | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._store = store
        self.scheduler = scheduler
        self.timing = timing = timing or SeatTiming()
        self._sleep = sleep
        self._seated = False  # this process's scheduler runs now
        self._leaving = False  # the bot is shutting down: a leader's last term ends in order, not at once
        self._tasks: set[asyncio.Task[Any]] = set()
        self._election_task: asyncio.Task[None] | None = None
        self._inbox: asyncio.Queue[Message] = asyncio.Queue()  # the leader's wake-ups, in the order heard
        self.messenger = Messenger(links.messages) if links is not None else None
        self.leadership = (
            Leadership(
                links.election,
                on_elected=self._elected,
                on_deposed=self._deposed,
                listen={JOBS_CHANNEL: self._heard},  # heard only once seated (see _heard)
                timing=timing.election,
                sleep=sleep,
            )
            if links is not None
            else None
        )

    @property
    def seated(self) -> bool:
        """Whether this process's scheduler is the one to run jobs now (always, alone; while elected, in a cluster)."""
        return self._seated or self.leadership is None

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Alone: start the scheduler. In a cluster: stand for election, and return once the first try is over
        (elected and started, like a process alone, or refused: it goes on trying in the background)."""
        if self.leadership is None:
            await self.scheduler.start()
            self._seated = True
        elif self._election_task is None:
            self._election_task = asyncio.create_task(self.leadership.run(), name="leader-election")
            await self.leadership.first_answer.wait()

    async def stop(self) -> None:
        self._leaving = True
        if self._election_task is not None:
            self._election_task.cancel()
            await asyncio.gather(self._election_task, return_exceptions=True)
            self._election_task = None
        if self.leadership is None or self._seated:  # a cluster's leader stepped down as its election ended
            self._seated = False
            await self.scheduler.stop()
        if self.messenger is not None:
            await self.messenger.close()

    # -- what accepting calls ------------------------------------------------------------------

    def enqueue(self, job: Job) -> None:
        if self.seated:
            self.scheduler.enqueue(job)
        elif self.messenger is not None:
            self._spawn(self.messenger.send({"kind": "queued", "job": job.id}))

    def queue_position(self, job_id: int) -> int | None:
        return self.scheduler.queue_position(job_id) if self.seated else None

    async def cancel(self, job_id: int) -> CancelResult | None:
        if self.seated or self.messenger is None:
            return await self.scheduler.cancel(job_id)
        # Waiting: nothing can have reached xAI, and the leader's own move out of "queued" is guarded the same way.
        if await self._store.jobs.transition(
            job_id, JobStatus.QUEUED, JobStatus.CANCELLED, error_code=ErrorCode.CANCELLED.value, charged=False
        ):
            self._spawn(self.messenger.send({"kind": "dropped", "job": job_id}))
            return CancelResult.BEFORE_SENDING
        reply = await self.messenger.ask({"kind": "cancel", "job": job_id}, self.timing.ask_timeout_s)
        if reply is None:
            # No answer in time: no leader now (one is taking over), or one too slow that may still cancel it.
            raise LeaderUnavailable(
                "The bot's scheduler did not answer in time (it may be changing hands between the bot's processes), "
                "so I can't tell whether this job was cancelled. Press Cancel again in a few seconds."
            )
        result = reply.get("result")
        return CancelResult(result) if isinstance(result, str) else None

    # -- the election's callbacks --------------------------------------------------------------

    async def _elected(self) -> None:
        scheduler = self.scheduler
        handover = self.timing.handover_s
        await self._sleep(scheduler.budget.interval_s if handover is None else handover)
        await scheduler.start()  # resumes every job in flight, as a restart does
        self._seated = True
        await self._say_limits(scheduler)
        # Anything queued between the resume's read and now had its wake-up go unheard (not seated): read once more.
        await scheduler.take_up()
        self._spawn(self._read_inbox(scheduler, self._inbox))
        self._spawn(self._backup_scans(scheduler))

    async def _say_limits(self, scheduler: Scheduler) -> None:
        """While it leads, this process's XAI_MAX_CONCURRENT_JOBS and request rate are the whole bot's: said at
        each election, and warned of when the last leader's were other ones (processes started with different
        settings), since the account's limits would then change with each handover."""
        mine = (
            f"XAI_MAX_CONCURRENT_JOBS={scheduler.settings.max_concurrent} and one xAI request every "
            f"{scheduler.budget.interval_s:.2f} s (from XAI_MAX_REQUESTS_PER_MINUTE)"
        )
        try:
            last = await self._store.kv.get(LIMITS_KEY)
            await self._store.kv.set(LIMITS_KEY, mine)
        except Exception:  # only a courtesy: the term goes on
            log.exception("Could not compare this leader's limits with the last one's")
            return
        if last is not None and last != mine:
            log.warning(
                "The scheduler now runs in this process with %s, but the last leader ran with %s: give every "
                "process of the bot the same XAI_ settings, or its limits change with each handover",
                mine,
                last,
            )
        else:
            log.info("The scheduler runs in this process with %s", mine)

    async def _deposed(self) -> None:
        """Stop at once when the lock may be lost (another process may be elected as soon as it is free); at
        shutdown, with the requests on the wire given their grace first, as a process alone stops."""
        self._seated = False
        self._inbox = asyncio.Queue()  # the next term re-reads the store: what this one heard is done with
        tasks, self._tasks = self._tasks, set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.scheduler.stop(grace_s=None if self._leaving else 0)

    def _heard(self, _connection: object, _pid: int, _channel: str, payload: object) -> None:
        message = decode(payload)
        if message is None or not self._seated:
            return
        if message.get("kind") == "cancel":  # answered at once, whatever else waits
            self._spawn(self._act_on(self.scheduler, message))
        else:
            self._inbox.put_nowait(message)

    async def _read_inbox(self, scheduler: Scheduler, inbox: asyncio.Queue[Message]) -> None:
        """Wake-ups acted on one at a time, in the order sent: a job's "dropped" acted on before its "queued" has
        been read from the store would leave the cancelled job in the line."""
        while True:
            message = await inbox.get()
            try:
                await self._act_on(scheduler, message)
            except Exception:  # a failing store now: the backup scan takes the job up later
                log.exception("Acting on a message from another process failed")

    async def _act_on(self, scheduler: Scheduler, message: Message) -> None:
        job_id = message.get("job")
        if not isinstance(job_id, int) or isinstance(job_id, bool) or not 0 < job_id < 2**63:
            return  # not a job id (anyone who may NOTIFY on the database can send anything)
        kind = message.get("kind")
        if kind == "queued":
            await scheduler.take_up(job_id)
        elif kind == "dropped" and scheduler.queue_position(job_id) is not None:
            await scheduler.cancel(job_id)  # already cancelled in the store: this only takes it out of the line
        elif kind == "cancel" and isinstance(token := message.get("reply"), str) and self.messenger is not None:
            result = await scheduler.cancel(job_id)
            await self.messenger.answer(token, {"result": result.value if result is not None else None})

    async def _backup_scans(self, scheduler: Scheduler) -> None:
        while True:
            await self._sleep(self.timing.backup_scan_s)
            try:
                joined = await scheduler.take_up()
            except Exception:  # a failing store now is no reason to stop scanning later
                log.exception("Reading the waiting jobs failed; trying again")
                continue
            if joined:
                log.info("%d waiting job(s) taken up whose wake-up was not heard", joined)

    def _spawn(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("A cluster task failed", exc_info=task.exception())
