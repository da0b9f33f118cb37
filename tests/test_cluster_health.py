"""``/healthz`` in a cluster: the process that is not the leader runs no scheduler, and is healthy all the same;
the leader is healthy because its scheduler runs."""

from __future__ import annotations

import socket
from pathlib import Path

from tests.cluster_pg import fresh_database
from tests.cluster_procs import cluster_of, guilds_on_shards
from tests.emulators.discord_emulator import DiscordEmulator
from tests.emulators.xai_emulator import XaiEmulator
from tests.observe_pages import wait_for_health


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_the_leader_and_the_process_standing_by_are_both_healthy(tmp_path: Path) -> None:
    async with fresh_database() as url, DiscordEmulator() as emu, XaiEmulator(generation_s=0.3) as xai:
        guilds_on_shards(emu, 2)
        bots = cluster_of(emu, xai, tmp_path, url, 2)
        ports = [_free_port() for _ in bots]
        for bot, port in zip(bots, ports, strict=True):
            bot.overrides["HTTP_PORT"] = str(port)
        try:
            for bot in bots:
                await bot.start()
            await emu.wait_for(lambda: any("Elected the scheduler's leader" in bot.log() for bot in bots), 60)
            for port in ports:
                assert await wait_for_health(f"http://127.0.0.1:{port}", 200, timeout=60) == "ok\n"
        finally:
            for bot in bots:
                await bot.stop_quietly()
