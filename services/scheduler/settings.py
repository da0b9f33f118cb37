"""What a scheduler is told when it is built: every delay it may wait, and the clocks it reads.

Nothing in the scheduler waits a fixed number of seconds of its own: each delay is a field here, so the bot
sets real ones from its configuration and tests set them tiny instead of sleeping for real.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from services.media.hosts import AllowedHosts
from services.scheduler.poll_policy import PolicySettings

URL_LIFETIME_S = 24 * 3600.0  # xAI's SDK: "The returned URL is valid for 24 hours"
Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class SchedulerSettings:
    max_concurrent: int = 15
    job_timeout_s: float = 600.0  # after this, a poll that finds the job still pending ends it as timed out
    max_download_bytes: int = 200 * 1024 * 1024
    download_timeout_s: float = 120.0
    download_hosts: AllowedHosts | None = None  # where finished videos may come from (None: anywhere)
    video_url_lifetime_s: float = URL_LIFETIME_S  # how long xAI's address of a finished video stays good
    # Which job each free request slot polls (services/scheduler/poll_policy.py); every job is asked at least
    # every ``polling.max_interval_s``.
    polling: PolicySettings = field(default_factory=PolicySettings)
    # A fresh bot's first poll of a job, until generation times are learnt (the policy's prior is built so its
    # probe lands here); also the first wait after a failed poll, doubling up to ``polling.max_interval_s``.
    first_poll_s: float = 2.0
    # Queue positions go out at most this often: a burst of requests then costs one recount, not one each.
    queue_report_interval_s: float = 0.5
    # The waits between tries of each retry loop (services/scheduler/retrying.py).
    download_retry_delays_s: tuple[float, ...] = (1.0, 5.0, 15.0)  # a failed or damaged copy
    delivery_retry_delays_s: tuple[float, ...] = (2.0, 10.0, 30.0, 60.0)
    notify_retry_delays_s: tuple[float, ...] = (2.0, 10.0, 30.0, 60.0, 300.0)
    rate_limit_pause_s: float = 5.0  # every request waits this long after a 429 that named no Retry-After
    step_failure_pause_s: float = 1.0  # the loop's breath after one of its own steps broke
    stop_grace_s: float = 5.0  # how long a stop lets requests already on the wire finish


@dataclass(frozen=True, slots=True)
class Clocks:
    """The scheduler's time: ages, deadlines and poll times on ``monotonic``; what is stored on ``wall``."""

    monotonic: Callable[[], float] = time.monotonic
    wall: Callable[[], float] = time.time  # submitted_at..., read back to age a resumed job
    sleep: Sleep = asyncio.sleep
