"""Accepting jobs: the one door through which every request enters.

The job row is written first, then the scheduler hears about it. Whatever happens afterwards,
the store already knows the job exists.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from services.models import Job, JobRequest, JobStatus
from services.scheduler import Scheduler
from services.store import JobStore

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Accepted:
    job: Job
    position: int | None  # place in line, or None when it starts at once


class JobService:
    def __init__(self, store: JobStore, scheduler: Scheduler) -> None:
        self.store = store
        self.scheduler = scheduler

    async def accept(self, request: JobRequest) -> Accepted:
        """Store the job (status queued) and put it in line."""
        job = await self.store.create_job(request)
        log.info("Job %d accepted: %s from user %s", job.id, job.mode, job.origin.user_id)
        self.scheduler.enqueue(job)
        return Accepted(job=job, position=self.scheduler.queue_position(job.id))

    async def cancel(self, job_id: int) -> JobStatus | None:
        return await self.scheduler.cancel(job_id)

    async def get(self, job_id: int) -> Job | None:
        return await self.store.get(job_id)
