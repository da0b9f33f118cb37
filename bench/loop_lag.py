"""How long the event loop stalls while big edit inputs are sent to xAI (target: under 50 ms).

    python bench/loop_lag.py [--submits 3] [--mib 50]

Sends N edit submits, each with an MiB-sized input video, at once through the real XaiClient to the
xAI emulator, and meanwhile measures how late a 1 ms timer on the same loop fires. The emulator runs
in another process, so its own reading and parsing of the ~70 MB bodies cannot stall (or hold the
GIL against) the loop being measured. Prints one JSON object: the longest stall, the 99th percentile,
the wall time, the bytes sent and this process's peak memory.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import multiprocessing
import os
import resource
import sys
import time
from multiprocessing.connection import Connection
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from services.config import Secret
from services.jobs.models import MediaInput
from services.xai.bodies import EditRequest
from services.xai.client import XaiClient
from tests.emulators.xai_emulator import XaiEmulator

TICK_S = 0.001


def _serve(conn: Connection) -> None:
    """The emulator's process: start it, report its base URL, serve until the parent says stop."""

    async def serve() -> None:
        async with XaiEmulator() as emulator:
            conn.send(emulator.base_url)
            await asyncio.to_thread(conn.recv)

    asyncio.run(serve())


async def _watch(stalls: list[float], stop: asyncio.Event) -> None:
    """Record how much later than asked each 1 ms sleep wakes up: that lateness is the loop's stall."""
    while not stop.is_set():
        started = time.perf_counter()
        await asyncio.sleep(TICK_S)
        stalls.append(time.perf_counter() - started - TICK_S)


async def run(base_url: str, submits: int, mib: int) -> dict[str, object]:
    videos = [MediaInput(os.urandom(mib * 1024 * 1024), "video/mp4", f"clip{n}.mp4") for n in range(submits)]
    requests = [EditRequest(f"make clip {n} sepia", video=video) for n, video in enumerate(videos)]
    async with aiohttp.ClientSession() as session:
        client = XaiClient(session, api_key=Secret("xai-emulated-key"), base_url=base_url, request_timeout_s=300)
        await client.check_key()  # open the connection pool before measuring
        stalls: list[float] = []
        stop = asyncio.Event()
        watcher = asyncio.create_task(_watch(stalls, stop))
        await asyncio.sleep(0.05)
        started = time.perf_counter()
        ids = await asyncio.gather(*(client.submit(request) for request in requests))
        wall_s = time.perf_counter() - started
        stop.set()
        await watcher
    ordered = sorted(stalls)
    p99 = ordered[min(len(ordered) - 1, max(0, math.ceil(0.99 * len(ordered)) - 1))]
    return {
        "submits": len(ids),
        "input_mib": mib,
        "max_stall_ms": round(ordered[-1] * 1000, 1),
        "p99_stall_ms": round(p99 * 1000, 1),
        "target_ms": 50,
        "wall_s": round(wall_s, 2),
        "sent_mb": round(submits * math.ceil(mib * 1024 * 1024 / 3) * 4 / 1e6, 1),
        # the inputs themselves are most of it: N x MiB held in memory before anything is sent
        "peak_memory_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--submits", type=int, default=3)
    parser.add_argument("--mib", type=int, default=50, help="size of each edit input, in MiB")
    args = parser.parse_args()
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    server = context.Process(target=_serve, args=(theirs,), daemon=True)
    server.start()
    try:
        base_url = ours.recv()
        print(json.dumps(asyncio.run(run(base_url, args.submits, args.mib))))
    finally:
        ours.send("stop")
        server.join(timeout=10)


if __name__ == "__main__":
    main()
