"""How fast the bot acknowledges a burst of /video commands (Discord allows 3 seconds).

    python bench/ack.py [--interactions 200] [--processes 3 [--database-url postgresql://...]]

Starts the Discord and xAI emulators and the real bot in this process, injects N /video interactions
at once through the Discord emulator, and prints one JSON object: p50 and p99 of the time from the
emulator dispatching an interaction to receiving the bot's acknowledgement, how many missed the
3-second window, and the process's peak memory (bot and emulators together, so an upper bound).

--processes N runs N real ``python bot.py`` processes instead, on a fresh PostgreSQL database made on
--database-url's server (else TEST_DATABASE_URL's, else the development server), each with one shard of N; the
interactions are spread round-robin over one server per shard, so each process acknowledges its own share while
one of them also runs the scheduler. Peak memory is then this process's alone (the emulators).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.cluster_pg import fresh_database
from tests.cluster_procs import cluster_of, guilds_on_shards
from tests.emulators.discord_emulator import DiscordEmulator, InteractionRecord
from tests.emulators.xai_emulator import XaiEmulator
from tests.harness import BotRig

DEV_SERVER = "postgresql://postgres@127.0.0.1:55432/postgres"  # the development server


def _percentile(values: list[float], percent: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(percent / 100 * len(ordered)) - 1))]


async def run(count: int, processes: int | None = None) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as folder:
        async with DiscordEmulator() as discord_emu, XaiEmulator(generation_s=1.0) as xai:
            if processes:
                interactions, burst_s = await _cluster_burst(discord_emu, xai, Path(folder), count, processes)
            else:
                rig = BotRig(discord_emu, xai, Path(folder))
                async with rig.running(progress_interval_s=10.0):
                    interactions, burst_s = await _burst(discord_emu, [None], count)
            latencies = [i.ack_latency_s for i in interactions if i.ack_latency_s is not None]
            missed = sum(1 for i in interactions if i.ack_rejected or (i.ack_latency_s or 0) > 3.0)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "processes": processes or 1,
        "interactions": count,
        "acknowledged": len(latencies),
        "ack_p50_ms": round(_percentile(latencies, 50) * 1000, 1),
        "ack_p99_ms": round(_percentile(latencies, 99) * 1000, 1),
        "ack_max_ms": round(max(latencies) * 1000, 1),
        "missed_3s_window": missed,
        "burst_s": round(burst_s, 2),
        "peak_memory_mib": round(peak_kib / 1024, 1),
    }


async def _burst(emu: DiscordEmulator, channels: list[int | None], count: int) -> tuple[list[InteractionRecord], float]:
    """``count`` /video at once, spread over ``channels``; waits until each was answered with its job number."""
    started = time.monotonic()
    interactions = await asyncio.gather(
        *(emu.slash("video", {"prompt": f"burst {n}"}, channel_id=channels[n % len(channels)]) for n in range(count))
    )
    await emu.wait_for(lambda: all(i.acked or i.ack_rejected for i in interactions), 60)
    burst_s = time.monotonic() - started

    # Let every command finish accepting its job before the bots shut down.
    def answer(i: InteractionRecord) -> str:
        message = emu.messages.get(i.original_message_id or 0)
        return message.content if message is not None else ""

    await emu.wait_for(lambda: all("job #" in answer(i) for i in interactions), 60)
    return interactions, burst_s


async def _cluster_burst(
    emu: DiscordEmulator, xai: XaiEmulator, folder: Path, count: int, processes: int
) -> tuple[list[InteractionRecord], float]:
    places = guilds_on_shards(emu, processes)
    async with fresh_database() as url:
        bots = cluster_of(emu, xai, folder, url, processes)
        try:
            for bot in bots:
                await bot.start()
            await emu.wait_for(lambda: "global" in emu.commands, 30)
            return await _burst(emu, [channel for _, channel in places], count)
        finally:
            for bot in bots:
                await bot.stop_quietly()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--interactions", type=int, default=200)
    parser.add_argument("--processes", type=int, help="N real bot processes on PostgreSQL, one shard each")
    parser.add_argument("--database-url", help="the PostgreSQL server for --processes (TEST_DATABASE_URL's)")
    args = parser.parse_args()
    if args.database_url or not os.environ.get("TEST_DATABASE_URL"):
        os.environ["TEST_DATABASE_URL"] = args.database_url or DEV_SERVER
    print(json.dumps(asyncio.run(run(args.interactions, args.processes))))


if __name__ == "__main__":
    main()
