"""How close the scheduler gets to what xAI's limits allow, and how soon it notices a finished video.

    python bench/scheduler.py --scenario concurrency-bound --poller policy --seed 1
    python bench/scheduler.py --scenario budget-bound --poller fixed --seed 1
    python bench/scheduler.py --jobs 40 --concurrency 15 --rpm 600 --gen-seconds 2 --gen-cv 0.4
    python bench/scheduler.py --base-url https://api.x.ai/v1 --api-key "$XAI_API_KEY" --jobs 3 ...
    python bench/scheduler.py --scenario budget-bound --processes 3 [--database-url postgresql://...]

N text-to-video jobs go through the real store, scheduler and client, against the xAI emulator (started here)
or any endpoint given by --base-url. The emulator draws each job's generation time from a lognormal with mean
--gen-seconds and coefficient of variation --gen-cv, and answers a share --empty-pending of pending polls with
an empty 202 (xAI's may have no body), both from --seed. The scenarios are issue 12's, xAI's cadence scaled ten
to one (unless a flag says otherwise, both with --gen-cv 0.4 and --empty-pending 0.3):

- ``concurrency-bound``: 60 jobs, 15 at once, 600 requests/min, 6 s mean (the 15 slots are the bottleneck);
- ``budget-bound``: 60 jobs, 60 at once, 300 requests/min, 3 s mean (the requests are).

--poller ``policy`` is the bot's own (services/scheduler/poll_policy.py, its prior at the benchmark's scale:
median --gen-seconds, sigma 0.6); ``fixed`` polls every job every --fixed-every seconds after its submit, as the
official SDKs do every 5 s (0.5 s at this scale), through the same scheduler.

--processes N runs a cluster instead (services/cluster/): N members, each with its own store pool, client,
budget and scheduler, on a fresh PostgreSQL database made on --database-url's server (the development server by
default). Only the elected one schedules; the jobs are accepted round-robin by all N, so most reach the leader
by NOTIFY. The members share this process's event loop (the point is the account's bound, not the CPU): the
throughput of 3 should equal that of 1. Prints one JSON object:

- ``wall_s``, ``ideal_s`` and ``wall_over_ideal``. ``ideal_s`` is a lower bound computed from the generation
  times the emulator actually drew: the jobs packed in submit order onto the concurrent slots, each submit no
  sooner than its own request slot allows, every finished video noticed at once; or 2 requests a job at the
  allowed rate, whichever is longer. (A formula from the mean alone ignores the spread: with a 40 % spread no
  poller, not even one that knows each time, could come within 1.10 of it.) Against --base-url: the old
  formula, from --gen-seconds.
- ``requests_per_job`` (submits and polls through the budget), ``n429``, ``max_concurrent``.
- ``lag_p50`` / ``lag_p95``: from the moment a video was ready at the emulator to the arrival of the first poll
  that saw it done, as a share of the mean generation time drawn (and ``lag_p50_s`` / ``lag_p95_s``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import heapq
import json
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from services.cluster.link import connector
from services.cluster.seat import ClusterLinks, SchedulerSeat
from services.config import Secret
from services.jobs.accepting import JobService
from services.jobs.listener import NullListener
from services.jobs.models import Job, JobRequest, JobStatus, Mode, Origin, VideoOptions
from services.scheduler.loop import Scheduler
from services.scheduler.poll_policy import FixedInterval, GenerationHistory, LogNormal, PollPolicy
from services.scheduler.settings import SchedulerSettings
from services.store.store import Store
from services.xai.budget import RequestBudget
from services.xai.client import XaiClient
from tests.cluster_pg import fresh_database
from tests.emulators.xai_emulator import XaiEmulator

SCENARIOS: dict[str, dict[str, float]] = {
    "concurrency-bound": {"jobs": 60, "concurrency": 15, "rpm": 600, "gen_seconds": 6.0},
    "budget-bound": {"jobs": 60, "concurrency": 60, "rpm": 300, "gen_seconds": 3.0},
}
SCENARIO_SPREAD = {"gen_cv": 0.4, "empty_pending": 0.3}
DEV_SERVER = "postgresql://postgres@127.0.0.1:55432/postgres"
DEFAULTS = {"jobs": 40, "concurrency": 15, "rpm": 600, "gen_seconds": 2.0, "gen_cv": 0.0, "empty_pending": 0.0}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", choices=sorted(SCENARIOS), help="issue 12's cases (flags below override)")
    parser.add_argument("--jobs", type=int, help="how many text-to-video jobs to run (40)")
    parser.add_argument("--concurrency", type=int, help="jobs xAI makes at once, emulator and scheduler (15)")
    parser.add_argument("--rpm", type=float, help="requests a minute the budget (and emulator) allow (600)")
    parser.add_argument("--gen-seconds", type=float, help="the emulator's mean generation time (2)")
    parser.add_argument("--gen-cv", type=float, help="the spread of generation times, lognormal (0: all alike)")
    parser.add_argument("--empty-pending", type=float, help="share of pending answers with no body (0)")
    parser.add_argument("--poller", choices=("policy", "fixed"), default="policy")
    parser.add_argument("--fixed-every", type=float, default=0.5, help="the fixed poller's interval (0.5 s)")
    parser.add_argument("--seed", type=int, default=0, help="the emulator's draws")
    parser.add_argument("--base-url", help="a real endpoint instead of the emulator")
    parser.add_argument("--api-key", default="xai-emulated-key")
    parser.add_argument("--timeout", type=float, default=600, help="give up after this many seconds")
    parser.add_argument("--processes", type=int, help="a cluster of N members on PostgreSQL (see above)")
    parser.add_argument("--database-url", default=DEV_SERVER, help="the PostgreSQL server for --processes")
    args = parser.parse_args(argv)
    given = SCENARIOS[args.scenario] | SCENARIO_SPREAD if args.scenario else {}
    for name, default in DEFAULTS.items():
        if getattr(args, name) is None:
            setattr(args, name, type(default)(given.get(name, default)))
    return args


def _counting_trace(counts: dict[str, int]) -> aiohttp.TraceConfig:
    trace = aiohttp.TraceConfig()

    async def on_end(
        session: aiohttp.ClientSession, context: SimpleNamespace, params: aiohttp.TraceRequestEndParams
    ) -> None:
        if params.response.status == 429:
            counts["n429"] += 1

    trace.on_request_end.append(on_end)
    return trace


def _poller(args: argparse.Namespace) -> PollPolicy:
    if args.poller == "fixed":
        return FixedInterval(args.fixed_every)
    return PollPolicy(GenerationHistory(LogNormal.around(args.gen_seconds, 0.6)))


async def run(args: argparse.Namespace) -> dict[str, object]:
    emulator: XaiEmulator | None = None
    base_url = args.base_url
    if base_url is None:
        emulator = XaiEmulator(
            api_key=args.api_key,
            generation_s=args.gen_seconds,
            requests_per_minute=args.rpm,
            max_concurrent=args.concurrency,
            generation_cv=args.gen_cv,
            empty_pending=args.empty_pending,
            seed=args.seed,
        )
        await emulator.start()
        base_url = emulator.base_url
    counts = {"n429": 0}
    try:
        with tempfile.TemporaryDirectory() as folder:
            async with (
                aiohttp.ClientSession(trace_configs=[_counting_trace(counts)]) as session,
                _members(args, Path(folder), session, base_url) as members,
            ):
                for member in members:
                    await member.seat.start()
                while not any(member.seat.seated for member in members):  # noqa: ASYNC110 - a cluster elects first
                    await asyncio.sleep(0.05)
                started = time.monotonic()
                ids = []
                for number in range(args.jobs):
                    accepting = members[number % len(members)]
                    ids.append((await accepting.jobs.accept(_request(number))).job.id)
                finished = await _wait_for_all(members[0].store, ids, args.timeout)
                wall_s = time.monotonic() - started
                for member in members:
                    await member.seat.stop()
                delivered = [job for job in finished if job.status is JobStatus.DELIVERED]
                budget_granted = sum(member.budget.granted for member in members)
                max_generating = max(member.seat.scheduler.max_generating_seen for member in members)
                terms = sum(member.seat.leadership.terms for member in members if member.seat.leadership)
    finally:
        if emulator is not None:
            await emulator.stop()
    rate = args.rpm / 60
    if emulator is not None:
        drawn = [job.generation_s for job in emulator.jobs.values()]  # in submit order
        ideal_s = max(2 * args.jobs / rate, _packed_s(drawn, args.concurrency, rate))
        mean_s = statistics.fmean(drawn) if drawn else args.gen_seconds
        lags = sorted(
            job.seen_done_at - job.ready_at
            for job in emulator.jobs.values()
            if job.ready_at is not None and job.seen_done_at is not None
        )
    else:
        ideal_s = max(2 * args.jobs / rate, math.ceil(args.jobs / args.concurrency) * args.gen_seconds)
        mean_s, lags = args.gen_seconds, []
    return {
        "scenario": args.scenario,
        "poller": args.poller,
        "seed": args.seed,
        "processes": args.processes,
        "leader_terms": terms if args.processes else None,
        "jobs_done": len(delivered),
        "jobs_failed": len(finished) - len(delivered),
        "wall_s": round(wall_s, 2),
        "ideal_s": round(ideal_s, 2),
        "wall_over_ideal": round(wall_s / ideal_s, 3),
        "requests_per_job": round(budget_granted / max(1, args.jobs), 2),
        "n429": counts["n429"],
        "max_concurrent": max_generating,
        "mean_generation_s": round(mean_s, 3),
        "lag_p50": round(_percentile(lags, 50) / mean_s, 3) if lags else None,
        "lag_p95": round(_percentile(lags, 95) / mean_s, 3) if lags else None,
        "lag_p50_s": round(_percentile(lags, 50), 3) if lags else None,
        "lag_p95_s": round(_percentile(lags, 95), 3) if lags else None,
    }


@dataclass
class _Member:
    store: Store
    budget: RequestBudget
    seat: SchedulerSeat
    jobs: JobService


@contextlib.asynccontextmanager
async def _members(
    args: argparse.Namespace, folder: Path, session: aiohttp.ClientSession, base_url: str
) -> AsyncIterator[list[_Member]]:
    """One member on SQLite, or ``--processes`` members of a cluster on a fresh PostgreSQL database."""
    async with contextlib.AsyncExitStack() as stack:
        if args.processes:
            os.environ["TEST_DATABASE_URL"] = args.database_url  # the server fresh_database makes its database on
        url = await stack.enter_async_context(fresh_database()) if args.processes else None
        members = []
        for number in range(args.processes or 1):
            store = await Store.open(folder / f"bench-{number}.sqlite3", url=url)
            stack.push_async_callback(store.close)
            budget = RequestBudget(args.rpm)
            client = XaiClient(session, api_key=Secret(args.api_key), base_url=base_url, budget=budget)
            scheduler = Scheduler(
                store,
                client,
                budget,
                NullListener(),
                session=session,
                media_dir=folder / f"videos-{number}",
                settings=SchedulerSettings(max_concurrent=args.concurrency, job_timeout_s=args.timeout),
                policy=_poller(args),
                resume_origins=frozenset({"bench"}),  # the leader takes up the jobs the others accepted
            )
            links = None
            if url is not None:
                links = ClusterLinks(
                    connector(url, purpose=f"bench {number} election"), connector(url, purpose="bench")
                )
            seat = SchedulerSeat(scheduler, store, links=links)
            members.append(_Member(store, budget, seat, JobService(store, seat)))
        yield members


def _packed_s(generation_s: Sequence[float], concurrency: int, rate_per_s: float) -> float:
    """The makespan with no detection lag: each job, in submit order, takes the first free concurrent slot, but
    no sooner than its submit's own request slot (the i-th request of the run goes at i / rate at the soonest)."""
    free_at = [0.0] * concurrency
    end = 0.0
    for number, seconds in enumerate(generation_s):
        start = max(heapq.heappop(free_at), number / rate_per_s)
        heapq.heappush(free_at, start + seconds)
        end = max(end, start + seconds)
    return end


def _request(number: int) -> JobRequest:
    return JobRequest(
        mode=Mode.TEXT,
        prompt=f"benchmark video {number}",
        options=VideoOptions(duration=1, resolution="480p"),
        origin=Origin(kind="bench", user_id=number % 7),
    )


async def _wait_for_all(store: Store, ids: list[int], timeout_s: float) -> list[Job]:
    deadline = time.monotonic() + timeout_s
    while True:
        jobs = [await store.jobs.get(job_id) for job_id in ids]
        done = [job for job in jobs if job is not None and job.status.is_terminal]
        if len(done) == len(ids) or time.monotonic() > deadline:
            return done
        await asyncio.sleep(0.05)


def _percentile(values: list[float], percent: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, math.ceil(percent / 100 * len(ordered)) - 1))
    return ordered[index]


if __name__ == "__main__":
    print(json.dumps(asyncio.run(run(parse_args()))))
