"""Wiring: build the store, budget, client, scheduler and job service from the settings, once.

The bot, the terminal command and the benchmarks all run the same parts through this.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp

from services.config import XaiSettings
from services.jobs.accepting import JobService
from services.jobs.listener import JobListener, NullListener
from services.media.hosts import xai_download_hosts
from services.policy.guild_policy import LimitDefaults
from services.policy.server_rules import ServerRules
from services.process import proxies
from services.scheduler.loop import Scheduler, SchedulerSettings
from services.store.jobstore import JobStore
from services.xai.budget import RequestBudget
from services.xai.cadence import CadenceSettings, PollCadence
from services.xai.client import XaiClient


@dataclass(slots=True)
class Runtime:
    session: aiohttp.ClientSession  # for downloads: no proxy of its own, each request names its own
    store: JobStore
    budget: RequestBudget
    client: XaiClient
    scheduler: Scheduler
    jobs: JobService


@contextlib.asynccontextmanager
async def open_runtime(
    xai: XaiSettings,
    store: JobStore,
    *,
    listener: JobListener | None = None,
    limits: LimitDefaults | None = None,
    resume_origins: frozenset[str] = frozenset({"discord"}),
) -> AsyncIterator[Runtime]:
    """Everything needed to run jobs. The scheduler is built but not started: set its listener, then start it."""
    # HTTPS_PROXY / HTTP_PROXY / NO_PROXY apply, netrc never does (services/process/proxies.py). xAI's client talks to one
    # host, so its session carries that host's proxy; downloads come from other hosts and pick theirs per request.
    async with proxies.session(reaching=xai.base_url) as xai_session, proxies.session() as session:
        budget = RequestBudget(xai.max_requests_per_minute)
        client = XaiClient(
            xai_session,
            api_key=xai.api_key,
            base_url=xai.base_url,
            model=xai.model,
            budget=budget,
            request_timeout_s=xai.request_timeout_s,
        )
        scheduler = Scheduler(
            store,
            client,
            budget,
            listener or NullListener(),
            session=session,
            media_dir=store.path.parent / "videos",
            settings=SchedulerSettings(
                max_concurrent=xai.max_concurrent_jobs,
                job_timeout_s=xai.job_timeout_s,
                max_download_bytes=xai.max_download_bytes,
                download_hosts=xai_download_hosts(xai.base_url, xai.download_hosts),
            ),
            cadence=PollCadence(CadenceSettings(first_poll_s=xai.first_poll_s, max_interval_s=xai.max_poll_interval_s)),
            resume_origins=resume_origins,
        )
        jobs = JobService(store, scheduler, ServerRules(store, limits))
        runtime = Runtime(session, store, budget, client, scheduler, jobs)
        try:
            yield runtime
        finally:
            await scheduler.stop()
