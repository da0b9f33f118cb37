"""How fast the bot acknowledges a burst of /video commands (Discord allows 3 seconds).

    python bench/ack.py [--interactions 200]

Starts the Discord and xAI emulators and the real bot in this process, injects N /video interactions
at once through the Discord emulator, and prints one JSON object: p50 and p99 of the time from the
emulator dispatching an interaction to receiving the bot's acknowledgement, how many missed the
3-second window, and the process's peak memory (bot and emulators together, so an upper bound).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.emulators.discord_emulator import DiscordEmulator
from tests.emulators.xai_emulator import XaiEmulator
from tests.harness import BotRig


def _percentile(values: list[float], percent: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(percent / 100 * len(ordered)) - 1))]


async def run(count: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as folder:
        async with DiscordEmulator() as discord_emu, XaiEmulator(generation_s=1.0) as xai:
            rig = BotRig(discord_emu, xai, Path(folder))
            async with rig.running(progress_interval_s=10.0):
                started = time.monotonic()
                interactions = await asyncio.gather(
                    *(discord_emu.slash("video", {"prompt": f"burst {n}"}) for n in range(count))
                )
                await discord_emu.wait_for(lambda: all(i.acked or i.ack_rejected for i in interactions), 60)
                burst_s = time.monotonic() - started
                # Let every command finish accepting its job before the bot shuts down.
                await discord_emu.wait_for(lambda: all("job #" in rig.answer_to(i) for i in interactions), 60)
            latencies = [i.ack_latency_s for i in interactions if i.ack_latency_s is not None]
            missed = sum(1 for i in interactions if i.ack_rejected or (i.ack_latency_s or 0) > 3.0)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "interactions": count,
        "acknowledged": len(latencies),
        "ack_p50_ms": round(_percentile(latencies, 50) * 1000, 1),
        "ack_p99_ms": round(_percentile(latencies, 99) * 1000, 1),
        "ack_max_ms": round(max(latencies) * 1000, 1),
        "missed_3s_window": missed,
        "burst_s": round(burst_s, 2),
        "peak_memory_mib": round(peak_kib / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--interactions", type=int, default=200)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.interactions))))


if __name__ == "__main__":
    main()
