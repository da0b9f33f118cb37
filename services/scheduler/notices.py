"""Telling the listener: a job's progress, an ending without a video, and the queue positions.

The listener (Discord, the terminal) may be slow or unreachable, so nothing here ever holds up the loop or
another job: a failing status report is only logged, an ending is told from a task of its own and retried
(the job is marked notified only once it was told; the store's failure outbox covers a restart meanwhile), and
a burst of queue changes costs one report.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from services.jobs.listener import JobListener
from services.jobs.models import Job
from services.scheduler.retrying import retrying
from services.scheduler.settings import Clocks, SchedulerSettings
from services.scheduler.tasks import Spawn
from services.store.patience import patiently
from services.store.store import Store

log = logging.getLogger(__name__)


async def safely(call: Coroutine[Any, Any, None], what: str) -> None:
    """Run a listener call whose failure must not stop the caller (it is logged)."""
    try:
        await call
    except Exception:
        log.exception("Listener %s failed", what)


class Notices:
    """A job's progress and its ending without a video, told to the listener."""

    def __init__(
        self, store: Store, listener: JobListener, spawn: Spawn, settings: SchedulerSettings, clocks: Clocks
    ) -> None:
        self._store = store
        self._listener = listener
        self._spawn = spawn
        self._delays_s = settings.notify_retry_delays_s
        self._clocks = clocks

    async def status(self, job_id: int) -> None:
        job = await self._store.jobs.get(job_id)
        if job is not None:
            await safely(self._listener.on_status(job), "on_status")

    def ending(self, job: Job) -> None:
        """Tell how a job ended, from its own task: Discord being slow (a long 429) must never hold up the loop."""
        self._spawn(self._tell_ending(job), f"notify-{job.id}")

    async def _tell_ending(self, job: Job) -> None:
        """Tell the requester, retrying a while; if Discord stays unreachable, the next start tries again."""
        async for attempt in retrying(self._delays_s, sleep=self._clocks.sleep):
            try:
                await self._listener.on_finished_without_video(job)
            except Exception:
                if attempt.last:
                    log.exception("Job %d: could not tell the requester how it ended; the next start will", job.id)
                    return
                delay = attempt.next_delay_s
                log.warning("Job %d: could not tell the requester how it ended; retrying in %.0fs", job.id, delay)
            else:
                await self._told(job.id, self._clocks.wall())
                return

    async def _told(self, job_id: int, told_at: float) -> None:
        await patiently(lambda: self._store.jobs.update(job_id, notified_at=told_at), what=f"job {job_id} update")


class QueueReports:
    """The waiting jobs' places in line, told to the listener at most once per ``queue_report_interval_s``."""

    def __init__(
        self,
        positions: Callable[[], Mapping[int, int]],
        listener: JobListener,
        spawn: Spawn,
        settings: SchedulerSettings,
        clocks: Clocks,
    ) -> None:
        self._positions = positions
        self._listener = listener
        self._spawn = spawn
        self._interval_s = settings.queue_report_interval_s
        self._sleep = clocks.sleep
        self._pending = False

    def request(self) -> None:
        """The line moved: report it soon, once for a whole burst of changes."""
        if self._pending:
            return
        self._pending = True
        self._spawn(self._report(), "report-queue")

    async def _report(self) -> None:
        await self._sleep(self._interval_s)  # let the rest of a burst land first
        self._pending = False
        await safely(self._listener.on_queue_changed(self._positions()), "on_queue_changed")
