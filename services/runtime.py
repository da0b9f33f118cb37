"""Wiring: build the budget, client, scheduler and job service from the settings, once.

The bot and the terminal command run the same parts through this (the benchmarks build the same classes
themselves, to vary their settings). Everything is given what it needs when it is built (the listener too),
and nothing is started here: the caller starts ``runtime.seat`` when it is ready to hear from it, and stops it.
The seat decides who runs the scheduler: this process alone (SQLite), or whichever process of a cluster is
elected (PostgreSQL, given ``links``: services/cluster/seat.py).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp

from services.cluster.seat import ClusterLinks, SchedulerSeat
from services.config import XaiSettings
from services.jobs.accepting import JobService
from services.jobs.listener import JobListener
from services.media.hosts import xai_download_hosts
from services.policy.guild_policy import LimitDefaults
from services.policy.server_rules import ServerRules
from services.process import proxies
from services.scheduler.loop import Scheduler
from services.scheduler.poll_policy import PolicySettings
from services.scheduler.settings import SchedulerSettings
from services.store.store import Store
from services.xai.budget import RequestBudget
from services.xai.client import XaiClient


@dataclass(frozen=True, slots=True)
class Sessions:
    xai: aiohttp.ClientSession  # carries the proxy for xAI's host
    downloads: aiohttp.ClientSession  # no proxy of its own; each request picks its own


@dataclass(slots=True)
class Runtime:
    session: aiohttp.ClientSession  # for downloads: no proxy of its own, each request names its own
    store: Store
    budget: RequestBudget
    client: XaiClient
    seat: SchedulerSeat
    jobs: JobService

    @property
    def scheduler(self) -> Scheduler:
        """This process's scheduler (in a cluster, it runs only while this process is elected)."""
        return self.seat.scheduler


@contextlib.asynccontextmanager
async def open_sessions(xai: XaiSettings) -> AsyncIterator[Sessions]:
    """The two HTTP sessions, closed on exit.

    HTTPS_PROXY / HTTP_PROXY / NO_PROXY apply, netrc never does (services/process/proxies.py). xAI's client talks
    to one host, so its session carries that host's proxy; downloads come from other hosts and pick theirs per
    request.
    """
    async with proxies.session(reaching=xai.base_url) as xai_session, proxies.session() as downloads:
        yield Sessions(xai=xai_session, downloads=downloads)


def build_runtime(
    xai: XaiSettings,
    store: Store,
    sessions: Sessions,
    *,
    listener: JobListener,
    limits: LimitDefaults | None = None,
    resume_origins: frozenset[str] = frozenset({"discord"}),
    links: ClusterLinks | None = None,
) -> Runtime:
    """Everything needed to run jobs, built and not started; ``listener`` hears every job's progress.

    With ``links`` (a PostgreSQL store), the scheduler runs only while this process is the elected leader."""
    budget = RequestBudget(xai.max_requests_per_minute)
    client = XaiClient(
        sessions.xai,
        api_key=xai.api_key,
        base_url=xai.base_url,
        budget=budget,
        request_timeout_s=xai.request_timeout_s,
    )
    settings = SchedulerSettings(
        max_concurrent=xai.max_concurrent_jobs,
        job_timeout_s=xai.job_timeout_s,
        max_download_bytes=xai.max_download_bytes,
        download_hosts=xai_download_hosts(xai.base_url, xai.download_hosts),
        polling=PolicySettings(max_interval_s=xai.max_poll_interval_s),
        first_poll_s=xai.first_poll_s,  # where a fresh bot's first poll lands: the policy's prior
    )
    scheduler = Scheduler(
        store,
        client,
        budget,
        listener,
        session=sessions.downloads,
        media_dir=store.path.parent / "videos",
        settings=settings,
        resume_origins=resume_origins,
    )
    seat = SchedulerSeat(scheduler, store, links=links)
    jobs = JobService(store, seat, ServerRules(store, limits))
    return Runtime(sessions.downloads, store, budget, client, seat, jobs)


@contextlib.asynccontextmanager
async def open_runtime(
    xai: XaiSettings,
    store: Store,
    *,
    listener: JobListener,
    limits: LimitDefaults | None = None,
    resume_origins: frozenset[str] = frozenset({"discord"}),
) -> AsyncIterator[Runtime]:
    """``open_sessions`` and ``build_runtime`` together; the seat (if the caller started it) stops on exit."""
    async with open_sessions(xai) as sessions:
        runtime = build_runtime(xai, store, sessions, listener=listener, limits=limits, resume_origins=resume_origins)
        try:
            yield runtime
        finally:
            await runtime.seat.stop()
