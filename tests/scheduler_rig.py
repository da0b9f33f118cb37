"""The scheduler's own test rig: the real client, store and scheduler against the xAI emulator over HTTP.

Shared by the scheduler's test files. Every retry loop's delays are set tiny here, and the clocks can be
injected, so no test waits out a real delay.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import aiohttp

from services.config import Secret
from services.jobs.accepting import JobService
from services.jobs.listener import DeliveryReceipt
from services.jobs.models import Job, JobRequest, JobStatus, Mode, Origin, VideoOptions
from services.policy.guild_policy import LimitDefaults
from services.policy.server_rules import ServerRules
from services.scheduler.loop import Scheduler
from services.scheduler.poll_policy import PolicySettings
from services.scheduler.settings import Clocks, SchedulerSettings
from services.store.store import Store
from services.xai.budget import RequestBudget
from services.xai.catalog import CLASSIC, build_catalog
from services.xai.client import XaiClient
from tests import pgtest
from tests.emulators.xai_emulator import XaiEmulator


@dataclass
class RecordingListener:
    """Collects what the scheduler reports; each job's ending resolves a future."""

    delivered: dict[int, bytes] = field(default_factory=dict)
    statuses: list[tuple[int, JobStatus, int | None]] = field(default_factory=list)
    positions: list[dict[int, int]] = field(default_factory=list)
    endings: dict[int, asyncio.Future[Job]] = field(default_factory=dict)

    def ending(self, job_id: int) -> asyncio.Future[Job]:
        return self.endings.setdefault(job_id, asyncio.get_running_loop().create_future())

    async def on_queue_changed(self, positions: Mapping[int, int]) -> None:
        self.positions.append(dict(positions))

    async def on_status(self, job: Job) -> None:
        self.statuses.append((job.id, job.status, job.progress))

    async def deliver(self, job: Job, video: Path) -> DeliveryReceipt:
        self.delivered[job.id] = video.read_bytes()
        future = self.ending(job.id)
        if not future.done():
            future.set_result(job)
        return DeliveryReceipt("test", channel_id=1, message_id=job.id)

    async def on_finished_without_video(self, job: Job) -> None:
        future = self.ending(job.id)
        if not future.done():
            future.set_result(job)


SUBMIT = r"^/v1/videos/generations$"  # xAI's submit path, for the emulator's injected failures

FAST_SETTINGS = SchedulerSettings(
    polling=PolicySettings(min_gap_s=0.05, max_interval_s=0.5),
    first_poll_s=0.1,
    download_retry_delays_s=(0.01, 0.01, 0.01),
    delivery_retry_delays_s=(0.01, 0.01),
    notify_retry_delays_s=(0.01, 0.01),
)


@dataclass
class Rig:
    xai: XaiEmulator
    store: Store
    listener: RecordingListener
    session: aiohttp.ClientSession
    tmp_path: Path
    budget: RequestBudget
    schedulers: list[Scheduler] = field(default_factory=list)

    def scheduler(
        self,
        *,
        max_concurrent: int = 15,
        timeout_s: float = 60.0,
        rpm: float | None = None,
        base_url: str | None = None,
        wall_clock: Callable[[], float] | None = None,
        monotonic_clock: Callable[[], float] | None = None,
        request_timeout_s: float = 2.0,
        min_upload_bytes_per_s: float | None = None,
        client_class: type[XaiClient] = XaiClient,
        **settings: Any,
    ) -> Scheduler:
        """A scheduler on this rig's store; ``settings`` override ``SchedulerSettings`` fields, and ``client_class``
        can be a subclass of the real client that injects a fault."""
        if rpm is not None:
            self.budget = RequestBudget(rpm)
        upload: dict[str, Any] = {}
        if min_upload_bytes_per_s is not None:  # the slowest upload the client waits for (the default otherwise)
            upload["min_upload_bytes_per_s"] = min_upload_bytes_per_s
        client = client_class(
            self.session,
            api_key=Secret(self.xai.api_key),
            base_url=base_url or self.xai.base_url,
            budget=self.budget,
            request_timeout_s=request_timeout_s,
            sleep=fast_sleep,
            **upload,
        )
        clocks = Clocks(wall=wall_clock or time.time, monotonic=monotonic_clock or time.monotonic)
        scheduler = Scheduler(
            self.store,
            client,
            self.budget,
            self.listener,
            session=self.session,
            media_dir=self.tmp_path / "videos",
            settings=replace(FAST_SETTINGS, max_concurrent=max_concurrent, job_timeout_s=timeout_s, **settings),
            clocks=clocks,
        )
        self.schedulers.append(scheduler)
        return scheduler

    async def run_job(self, request: JobRequest, scheduler: Scheduler | None = None) -> Job:
        scheduler = scheduler or self.scheduler()
        await scheduler.start()
        accepted = await unlimited_service(self.store, scheduler).accept(request)
        return await self.ended(accepted.job.id)

    async def ended(self, job_id: int, timeout: float = 20) -> Job:
        """The job as stored once the listener heard its ending (delivered, or ended without a video)."""
        await asyncio.wait_for(self.listener.ending(job_id), timeout)
        return await wait_for(self.store, job_id, lambda job: job.status.is_terminal)

    def polls_of(self, request_id: str | None) -> int:
        return sum(1 for r in self.xai.requests if r.method == "GET" and r.path == f"/v1/videos/{request_id}")


@contextlib.asynccontextmanager
async def open_rig(tmp_path: Path, engine: str | None = None) -> AsyncIterator[Rig]:
    """The rig on ``engine``'s store (``sqlite`` or ``postgresql``; by default TEST_ENGINE's, see tests/pgtest.py)."""
    async with (
        XaiEmulator(generation_s=0.3) as xai,
        aiohttp.ClientSession() as session,
        pgtest.store_url(engine) as url,
        await Store.open(tmp_path / "jobs.sqlite3", url=url) as store,
    ):
        rig = Rig(xai, store, RecordingListener(), session, tmp_path, RequestBudget(6000))
        try:
            yield rig
        finally:
            for scheduler in rig.schedulers:
                await scheduler.stop(grace_s=1)


def unlimited_service(store: Store, scheduler: Scheduler) -> JobService:
    """The scheduler's tests are about the scheduler: no server limits in the way, and one model (the classic one,
    whose prices their figures are in; the models' own tests are tests/test_models_*.py)."""
    unlimited = LimitDefaults(
        user_videos=None,
        user_active_jobs=None,
        server_videos_per_day=None,
        server_usd_per_day=None,
        catalog=build_catalog([CLASSIC], {}),
    )
    return JobService(store, scheduler, ServerRules(store, unlimited))


async def fast_sleep(seconds: float) -> None:
    await asyncio.sleep(min(seconds, 0.05))


def text_request(prompt: str = "a lighthouse in a storm", user: int = 1) -> JobRequest:
    return JobRequest(
        mode=Mode.TEXT,
        prompt=prompt,
        options=VideoOptions(duration=3, aspect_ratio="16:9", resolution="480p"),
        origin=Origin(guild_id=1, channel_id=2, user_id=user),
    )


async def wait_for(store: Store, job_id: int, predicate: Callable[[Job], bool], timeout: float = 10) -> Job:
    """The stored job once ``predicate`` holds for it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        job = await store.jobs.get(job_id)
        if job is not None and predicate(job):
            return job
        if loop.time() > deadline:
            raise AssertionError(f"job {job_id} never got there; last seen: {job}")
        await asyncio.sleep(0.01)


async def until(condition: Callable[[], object], timeout: float = 10) -> None:
    """Wait (looking every 10 ms) until ``condition()`` holds; fail after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError("the condition never held")
        await asyncio.sleep(0.01)


async def wait_for_status(store: Store, job_id: int, status: JobStatus) -> Job:
    return await wait_for(store, job_id, lambda job: job.status is status)
