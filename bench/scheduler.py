"""How close the scheduler gets to what xAI's limits allow.

    python bench/scheduler.py --jobs 40 --concurrency 15 --rpm 600 --gen-seconds 2
    python bench/scheduler.py --base-url https://api.x.ai/v1 --api-key "$XAI_API_KEY" --jobs 3 ...

N text-to-video jobs go through the real store, scheduler and client, against the xAI emulator
(started here, generating for --gen-seconds) or any endpoint given by --base-url. Prints one JSON object.

``ideal_s`` is a lower bound on the time the limits allow: every job needs at least one submit and
one poll from the shared budget (2N requests at rpm/60 a second), and each of the concurrent slots
runs one job at a time for at least --gen-seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from services.config import Secret
from services.jobs.accepting import JobService
from services.jobs.listener import NullListener
from services.jobs.models import JobRequest, JobStatus, Mode, Origin, VideoOptions
from services.scheduler.loop import Scheduler, SchedulerSettings
from services.store.jobstore import JobStore
from services.xai.budget import RequestBudget
from services.xai.cadence import CadenceSettings, PollCadence
from services.xai.client import XaiClient
from tests.emulators.xai_emulator import XaiEmulator


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=40)
    parser.add_argument("--concurrency", type=int, default=15)
    parser.add_argument("--rpm", type=float, default=600)
    parser.add_argument("--gen-seconds", type=float, default=2.0)
    parser.add_argument("--base-url", help="a real endpoint instead of the emulator")
    parser.add_argument("--api-key", default="xai-emulated-key")
    parser.add_argument("--timeout", type=float, default=600, help="give up after this many seconds")
    return parser.parse_args()


def _counting_trace(counts: dict[str, int]) -> aiohttp.TraceConfig:
    trace = aiohttp.TraceConfig()

    async def on_end(
        session: aiohttp.ClientSession, context: SimpleNamespace, params: aiohttp.TraceRequestEndParams
    ) -> None:
        if params.response.status == 429:
            counts["n429"] += 1

    trace.on_request_end.append(on_end)
    return trace


async def run(args: argparse.Namespace) -> dict[str, object]:
    emulator: XaiEmulator | None = None
    base_url = args.base_url
    if base_url is None:
        emulator = XaiEmulator(
            api_key=args.api_key,
            generation_s=args.gen_seconds,
            requests_per_minute=args.rpm,
            max_concurrent=args.concurrency,
        )
        await emulator.start()
        base_url = emulator.base_url
    counts = {"n429": 0}
    try:
        with tempfile.TemporaryDirectory() as folder:
            async with (
                aiohttp.ClientSession(trace_configs=[_counting_trace(counts)]) as session,
                await JobStore.open(Path(folder) / "bench.sqlite3") as store,
            ):
                budget = RequestBudget(args.rpm)
                client = XaiClient(session, api_key=Secret(args.api_key), base_url=base_url, budget=budget)
                scheduler = Scheduler(
                    store,
                    client,
                    budget,
                    NullListener(),
                    session=session,
                    media_dir=Path(folder) / "videos",
                    settings=SchedulerSettings(max_concurrent=args.concurrency, job_timeout_s=args.timeout),
                    cadence=PollCadence(CadenceSettings(first_poll_s=min(2.0, args.gen_seconds))),
                )
                jobs = JobService(store, scheduler)
                await scheduler.start()
                started = time.monotonic()
                ids = [(await jobs.accept(_request(number))).job.id for number in range(args.jobs)]
                finished = await _wait_for_all(store, ids, args.timeout)
                wall_s = time.monotonic() - started
                await scheduler.stop()
                delivered = [job for job in finished if job.status is JobStatus.DELIVERED]
    finally:
        if emulator is not None:
            await emulator.stop()
    ideal_s = max(2 * args.jobs / (args.rpm / 60), math.ceil(args.jobs / args.concurrency) * args.gen_seconds)
    lags = _lags(emulator) if emulator is not None else []
    return {
        "jobs_done": len(delivered),
        "jobs_failed": len(finished) - len(delivered),
        "wall_s": round(wall_s, 2),
        "ideal_s": round(ideal_s, 2),
        "ratio": round(wall_s / ideal_s, 3),
        "requests_per_job": round(budget.granted / max(1, args.jobs), 2),
        "n429": counts["n429"],
        "max_concurrent": scheduler.max_generating_seen,
        "lag_p50_s": round(statistics.median(lags), 3) if lags else None,
        "lag_p95_s": round(_percentile(lags, 95), 3) if lags else None,
    }


def _request(number: int) -> JobRequest:
    return JobRequest(
        mode=Mode.TEXT,
        prompt=f"benchmark video {number}",
        options=VideoOptions(duration=1, resolution="480p"),
        origin=Origin(kind="bench", user_id=number % 7),
    )


async def _wait_for_all(store: JobStore, ids: list[int], timeout_s: float) -> list:  # type: ignore[type-arg]
    deadline = time.monotonic() + timeout_s
    while True:
        jobs = [await store.get(job_id) for job_id in ids]
        done = [job for job in jobs if job is not None and job.status.is_terminal]
        if len(done) == len(ids) or time.monotonic() > deadline:
            return done
        await asyncio.sleep(0.05)


def _lags(emulator: XaiEmulator) -> list[float]:
    return [
        job.first_download_at - job.ready_at
        for job in emulator.jobs.values()
        if job.ready_at is not None and job.first_download_at is not None
    ]


def _percentile(values: list[float], percent: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, math.ceil(percent / 100 * len(ordered)) - 1))
    return ordered[index]


if __name__ == "__main__":
    print(json.dumps(asyncio.run(run(parse_args()))))
