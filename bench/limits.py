"""How fast the bot decides whether to accept a request, on a store with a long history.

    python bench/limits.py --users 1000 --requests 5000 --past-jobs 100000

A fresh SQLite store is filled with --past-jobs finished jobs spread over a year, several servers
and all the users; then --users members of one server send --requests ``/video`` requests at once,
all through the real ``JobService.accept`` (server rules, bans, and the usage limits decided inside
the inserting transaction) with the bot's default member limits. The server-wide caps are set high
by default so that every check runs for every request and the server's daily count keeps growing
through the burst (the slowest case); pass smaller ones to see refusals by them. Prints one JSON object:

- ``decisions_per_s``: requests decided (accepted or refused) per second of the burst.
- ``decision_p50_ms`` / ``decision_p99_ms``: the time one decision holds the store. Decisions are
  serialised by SQLite's write lock, so this is the gap between consecutive decisions.
- ``burst_wait_p50_ms`` / ``burst_wait_p99_ms``: from a request arriving to its answer, queueing
  behind the rest of the burst included (what the last of 5,000 simultaneous requests waits).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from services.config import Secret
from services.jobs.accepting import JobService
from services.jobs.listener import NullListener
from services.jobs.models import JobRequest, Mode, Origin, VideoOptions
from services.policy.guild_policy import LimitDefaults
from services.policy.limits import Refused, Requester
from services.policy.server_rules import ServerRules
from services.scheduler.loop import Scheduler
from services.scheduler.settings import SchedulerSettings
from services.store.store import Store
from services.xai.budget import RequestBudget
from services.xai.client import XaiClient

GUILD = 1
SERVERS = 10
STATUSES = ("delivered",) * 8 + ("failed", "moderated")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--past-jobs", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--server-videos-per-day", type=int, default=1_000_000)
    parser.add_argument("--server-usd-per-day", type=float, default=1_000_000.0)
    return parser.parse_args()


def fill_history(path: Path, past_jobs: int, users: int, seed: int) -> None:
    """Past jobs written in bulk with plain sqlite3 (before the event loop starts, so nothing blocks it)."""
    rng = random.Random(seed)
    now = time.time()
    rows = []
    for _ in range(past_jobs):
        created = now - rng.uniform(0, 365 * 86400)
        status = rng.choice(STATUSES)
        rows.append(
            (
                created,
                created + 60,
                rng.randint(1, SERVERS),
                10,
                rng.randint(1, users),
                "text",
                "a past video",
                8,
                "480p",
                status,
                None if status == "failed" else 4_000_000_000,
                status != "failed",  # every other past job reached xAI, so it counts (the "charged" rule)
            )
        )
    with sqlite3.connect(path) as db:
        db.executemany(
            """
            INSERT INTO jobs (created_at, updated_at, guild_id, channel_id, user_id, mode, prompt, duration,
                              resolution, status, cost_usd_ticks, charged)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """,
            rows,
        )


async def prepare(path: Path) -> None:
    async with await Store.open(path):
        pass  # creates the schema


async def burst(path: Path, users: int, requests: int, limits: LimitDefaults) -> dict[str, object]:
    async with aiohttp.ClientSession() as session, await Store.open(path) as store:
        budget = RequestBudget(60)
        client = XaiClient(session, api_key=Secret("unused"), base_url="http://127.0.0.1:9", budget=budget)
        scheduler = Scheduler(  # never started: the bench measures accepting, not generating
            store, client, budget, NullListener(), session=session, media_dir=path.parent, settings=SchedulerSettings()
        )
        service = JobService(store, scheduler, ServerRules(store, limits))
        outcomes: Counter[str] = Counter()
        waits: list[float] = []
        finished: list[float] = []

        async def one(number: int) -> None:
            request = JobRequest(
                mode=Mode.TEXT,
                prompt=f"request {number}",
                options=VideoOptions(duration=6, resolution="480p"),
                origin=Origin(guild_id=GUILD, channel_id=10, user_id=1 + number % users),
            )
            arrived = time.perf_counter()
            try:
                await service.accept(request, Requester())
                outcomes["accepted"] += 1
            except Refused as refused:
                outcomes[f"refused_{refused.refusal.limit}"] += 1
            done = time.perf_counter()
            waits.append(done - arrived)
            finished.append(done)

        started = time.perf_counter()
        await asyncio.gather(*(one(number) for number in range(requests)))
        wall = time.perf_counter() - started
    finished.sort()
    gaps = [later - earlier for earlier, later in zip([started, *finished], finished, strict=False)]
    return {
        "requests": requests,
        "users": users,
        "decisions_per_s": round(requests / wall, 1),
        "decision_p50_ms": round(_percentile(gaps, 50) * 1000, 3),
        "decision_p99_ms": round(_percentile(gaps, 99) * 1000, 3),
        "burst_wait_p50_ms": round(_percentile(waits, 50) * 1000, 1),
        "burst_wait_p99_ms": round(_percentile(waits, 99) * 1000, 1),
        "wall_s": round(wall, 3),
        "outcomes": dict(sorted(outcomes.items())),
    }


def _percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def main() -> None:
    args = parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bench.sqlite3"
        asyncio.run(prepare(path))
        started = time.perf_counter()
        fill_history(path, args.past_jobs, args.users, args.seed)
        filled_s = time.perf_counter() - started
        limits = LimitDefaults(
            server_videos_per_day=args.server_videos_per_day or None, server_usd_per_day=args.server_usd_per_day or None
        )
        result = asyncio.run(burst(path, args.users, args.requests, limits))
    print(json.dumps({"past_jobs": args.past_jobs, "history_fill_s": round(filled_s, 2), **result}))


if __name__ == "__main__":
    main()
