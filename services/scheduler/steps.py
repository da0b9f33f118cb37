"""Each step of a job written to the store: the one place the scheduler's parts change a job.

The parts decide what happens next; this writes it. Every status change is one guarded UPDATE that waits out
a locked or full database (``patiently``) instead of losing the step, and an ending without a video is handed
to the notices, which tell the requester.
"""

from __future__ import annotations

import logging
from typing import Unpack

from services.jobs import endings
from services.jobs.models import ErrorCode, JobStatus, JobUpdate
from services.scheduler.notices import Notices
from services.store.patience import patiently
from services.store.store import Store
from services.xai.answers import PollResult

log = logging.getLogger(__name__)

AT_XAI = (JobStatus.RUNNING, JobStatus.DOWNLOADING)  # where a polled job can be
Expected = JobStatus | tuple[JobStatus, ...]


class JobSteps:
    """Writes a job's steps; endings without a video are told through ``notices``."""

    def __init__(self, store: Store, notices: Notices) -> None:
        self._store = store
        self._notices = notices

    async def move(self, job_id: int, expected: Expected, new: JobStatus, **fields: Unpack[JobUpdate]) -> bool:
        """A guarded status change that waits out a locked database instead of losing the step."""
        return await patiently(
            lambda: self._store.jobs.transition(job_id, expected, new, **fields), what=f"job {job_id} to {new}"
        )

    async def cancel(self, job_id: int, expected: Expected, *, charged: bool) -> bool:
        """Ended by a Cancel; ``charged`` says whether its request may have reached xAI."""
        cancelled = ErrorCode.CANCELLED.value
        return await self.move(job_id, expected, JobStatus.CANCELLED, error_code=cancelled, charged=charged)

    async def cancel_while_at_xai(self, job_id: int) -> bool:
        """RUNNING to cancelled, while xAI goes on generating it (it stays in the making until it is let go)."""
        return await patiently(
            lambda: self._store.jobs.cancel_while_at_xai(
                job_id, JobStatus.RUNNING, error_code=ErrorCode.CANCELLED.value
            ),
            what=f"job {job_id} cancel",
        )

    async def charge(self, job_id: int, send_token: str) -> bool:
        """Charged right before its request goes on the wire, if ``send_token`` holds (``JobRepository.charge``)."""
        return await patiently(lambda: self._store.jobs.charge(job_id, send_token), what=f"job {job_id} charge")

    async def set(self, job_id: int, **fields: Unpack[JobUpdate]) -> None:
        await patiently(lambda: self._store.jobs.update(job_id, **fields), what=f"job {job_id} update")

    async def end(self, job_id: int, expected: Expected, ending: endings.Ending, **fields: Unpack[JobUpdate]) -> None:
        await self.finish(job_id, expected, ending.status, ending.code, ending.message, **fields)

    async def ended_by_xai(self, job_id: int, result: PollResult) -> None:
        """xAI's own verdict on a job that will not have a video: moderated, failed or expired."""
        ending = endings.xai_verdict(result)
        if ending is not None:
            await self.end(job_id, AT_XAI, ending, cost_usd_ticks=ending.cost_usd_ticks)

    async def finish(
        self,
        job_id: int,
        expected: Expected,
        status: JobStatus,
        code: ErrorCode,
        message: str,
        **fields: Unpack[JobUpdate],
    ) -> None:
        """End a job without a video, and tell the requester."""
        fields["error_code"] = code.value
        fields["error_message"] = message
        if await self.move(job_id, expected, status, **fields):
            log.info("Job %d ended %s: %s", job_id, status, code)
            job = await self._store.jobs.get(job_id)
            if job is not None:
                self._notices.ending(job)
