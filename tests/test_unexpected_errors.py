"""A bug inside the bot (any exception that is not xAI's answer) never kills a job's task and leaves it stuck.

A poll that blows up is asked again; a submit or a download that blows up ends its job in words that say
whether anything reached xAI. The faults come from subclasses of the real client and fetcher that raise once;
everything else is the real scheduler, store and xAI emulator.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from services.jobs.models import ErrorCode, JobStatus
from services.scheduler.fetching import Fetched, ResultFetcher
from services.xai.answers import PollResult
from services.xai.bodies import SubmitRequest
from services.xai.client import XaiClient
from services.xai.gate import SubmitGate
from tests.scheduler_rig import Rig, open_rig, text_request


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    async with open_rig(tmp_path) as rig:
        yield rig


class PollBreaksOnce(XaiClient):
    broke = False  # per client: a class-wide flag would stay set for a second run in the same process

    async def poll(self, request_id: str) -> PollResult:
        if not self.broke:
            self.broke = True
            raise RuntimeError("a bug in reading the answer")
        return await super().poll(request_id)


class SubmitBreaks(XaiClient):
    async def submit(self, request: SubmitRequest, *, gate: SubmitGate | None = None) -> str:
        raise RuntimeError("a bug before anything was sent")


class FetchBreaks(ResultFetcher):
    async def fetch(self, job_id: int, request_id: str, url: str, dest: Path, *, url_age_s: float) -> Fetched:
        raise RuntimeError("a bug while saving the video")


async def test_a_poll_that_breaks_inside_the_bot_is_asked_again(rig: Rig) -> None:
    scheduler = rig.scheduler(client_class=PollBreaksOnce)
    job = await rig.run_job(text_request(), scheduler)
    assert isinstance(scheduler.client, PollBreaksOnce) and scheduler.client.broke
    assert job.status is JobStatus.DELIVERED


async def test_a_submit_that_breaks_inside_the_bot_ends_the_job_in_words(rig: Rig) -> None:
    job = await rig.run_job(text_request(), rig.scheduler(client_class=SubmitBreaks))
    assert job.status is JobStatus.FAILED and not job.charged
    assert "nothing reached xAI and it costs nothing" in (job.error_message or "")
    assert not rig.xai.requests


async def test_a_download_that_breaks_inside_the_bot_ends_the_job_in_words(rig: Rig) -> None:
    scheduler = rig.scheduler()
    aftercare: Any = scheduler._aftercare
    fetcher = aftercare.fetcher
    aftercare.fetcher = FetchBreaks(fetcher.session, fetcher.client, fetcher.settings, fetcher.clocks)
    job = await rig.run_job(text_request(), scheduler)
    assert (job.status, job.error_code) == (JobStatus.FAILED, ErrorCode.DOWNLOAD_FAILED)
    assert "xAI may still charge for it" in (job.error_message or "") and job.charged
