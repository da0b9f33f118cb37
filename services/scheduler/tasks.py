"""The scheduler's background tasks: each one held (never fired and forgotten), its crash logged, and all of
them stopped together, given a grace period to finish first."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import re
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

log = logging.getLogger(__name__)

# The job a task works on ("submit-12", "poll-12", "download-12"...), for every log line written in it and in
# the tasks it starts (LOG_FORMAT=json names it: services/observe/logformat.py). None outside per-job work.
CURRENT_JOB: contextvars.ContextVar[int | None] = contextvars.ContextVar("current_job", default=None)
_PER_JOB = re.compile(r"^[a-z]+-(\d+)$")

Spawn = Callable[[Coroutine[Any, Any, None], str], None]


class TaskRegistry:
    """Every task the scheduler's parts start (a submit, a poll, a download, a notice, a queue report)."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def __iter__(self) -> Iterator[asyncio.Task[Any]]:
        return iter(list(self._tasks))

    def spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        context = contextvars.copy_context()
        if (per_job := _PER_JOB.match(name)) is not None:
            context.run(CURRENT_JOB.set, int(per_job.group(1)))
        task = asyncio.create_task(coro, name=name, context=context)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("Task %s crashed", task.get_name(), exc_info=task.exception())

    async def stop(self, grace_s: float) -> None:
        """Let the running tasks finish for up to ``grace_s``, then cancel what is left and wait for it."""
        pending = {task for task in self._tasks if not task.done()}
        if not pending:
            return
        _, still = await asyncio.wait(pending, timeout=grace_s)
        for task in still:
            task.cancel()
        if still:
            await asyncio.gather(*still, return_exceptions=True)
