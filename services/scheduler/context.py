"""What every part of one scheduler works with, handed to each part when it is built.

The facade (``services/scheduler/loop.py``) makes these once; admission, tracking and the after-work take
them in their constructors, so no part is wired up after it exists.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from services.scheduler.notices import Notices
from services.scheduler.settings import Clocks, SchedulerSettings
from services.scheduler.steps import JobSteps
from services.scheduler.tasks import TaskRegistry
from services.store.store import Store
from services.xai.client import XaiClient


@dataclass(frozen=True, slots=True)
class Context:
    store: Store
    client: XaiClient
    steps: JobSteps  # every write of a job's step
    notices: Notices  # telling the listener
    tasks: TaskRegistry  # every background task, stopped with the scheduler
    settings: SchedulerSettings
    clocks: Clocks
    wake: Callable[[], None]  # the loop looks again now (a slot freed, a poll came back...)
