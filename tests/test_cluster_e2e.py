"""Two real bot processes on one PostgreSQL database, one shard each: both accept, one schedules, and a third
process naming a shard already run (or none at all) is refused at start."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.botprocess import BotProcess
from tests.cluster_pg import fresh_database
from tests.cluster_procs import cluster_of, guilds_on_shards, job_rows
from tests.emulators.discord_emulator import DiscordEmulator
from tests.emulators.discord_gateway import shard_for
from tests.emulators.xai_emulator import XaiEmulator


async def test_each_process_answers_its_own_shard_and_the_leader_makes_every_video(tmp_path: Path) -> None:
    async with fresh_database() as url, DiscordEmulator() as emu, XaiEmulator(generation_s=0.3) as xai:
        places = guilds_on_shards(emu, 2)
        guilds, channels = [guild for guild, _ in places], [channel for _, channel in places]
        assert [shard_for(guild, 2) for guild in guilds] == [0, 1]
        bots = cluster_of(emu, xai, tmp_path, url, 2)
        try:
            for bot in bots:
                await bot.start()
            await emu.wait_for(lambda: "global" in emu.commands, 20)  # synced by the process with shard 0
            shards = sorted(
                entry["payload"].get("shard")[0] for entry in emu.gateway_log if entry["event"] == "identify"
            )
            assert shards == [0, 1]
            await emu.wait_for(lambda: len(emu.gateway.connected_sessions()) == 2, 20)
            for guild, channel in zip(guilds, channels, strict=True):
                await emu.slash("video", {"prompt": f"a lantern in guild {guild}", "duration": 2}, channel_id=channel)
            await emu.wait_for(
                lambda: (
                    sum(1 for m in emu.world.messages.values() if m.attachments and m.author_id == emu.bot_user_id) == 2
                ),
                30,
            )
            rows: list[dict[str, object]] = []
            for _ in range(100):  # the posts are seen a moment before the leader records them as delivered
                rows = await job_rows(url)
                if all(row["status"] == "delivered" for row in rows):
                    break
                await asyncio.sleep(0.1)
            assert sorted(str(row["status"]) for row in rows) == ["delivered", "delivered"]
            assert sorted(int(str(row["guild_id"])) for row in rows) == sorted(guilds)
            leaders = [bot for bot in bots if "Elected the scheduler's leader" in bot.log()]
            assert len(leaders) == 1, [bot.log() for bot in bots]  # one process made both videos
            # A third process naming shard 1 again, and one with no shard settings (shard 0 of 1): both refused.
            # (The second runs one shard where the others run two: the count is what it is told to fix.)
            for extra, settings, says in (
                (1, {"DISCORD_SHARD_COUNT": "2", "DISCORD_SHARD_IDS": "1"}, "already runs shard 1"),
                (2, {"DISCORD_SHARD_COUNT": "", "DISCORD_SHARD_IDS": ""}, "needs the same DISCORD_SHARD_COUNT"),
            ):
                third = cluster_of(emu, xai, tmp_path / f"extra-{extra}", url, 1, **settings)[0]
                bots.append(third)  # stopped with the others if it did not refuse
                await third.spawn()
                assert third.process is not None
                assert await asyncio.wait_for(third.process.wait(), 30) == 75, third.log()
                assert says in third.log()
        finally:
            for bot in bots:
                await bot.stop_quietly()


async def test_one_process_on_sqlite_runs_every_shard_it_is_given(tmp_path: Path) -> None:
    async with DiscordEmulator() as emu, XaiEmulator(generation_s=0.3) as xai:
        places = guilds_on_shards(emu, 2)
        overrides = {"DISCORD_SHARD_COUNT": "2", "DISCORD_IDENTIFY_INTERVAL_SECONDS": "0.05", "DEV_GUILD_ID": ""}
        bot = BotProcess(emu, xai, tmp_path, overrides=overrides)
        try:
            await bot.start()
            await emu.wait_for(lambda: len(emu.gateway.connected_sessions()) == 2, 20)  # shards 0 and 1, one process
            assert sorted(s.shard for s in emu.gateway.connected_sessions()) == [(0, 2), (1, 2)]
            await emu.wait_for(lambda: "global" in emu.commands, 20)
            _, channel = places[1]
            await emu.slash("video", {"prompt": "a lantern on shard 1", "duration": 2}, channel_id=channel)
            posted = await emu.wait_for_message(lambda m: bool(m.attachments) and m.channel_id == channel, 30)
            assert posted.author_id == emu.bot_user_id
            assert await bot.terminate() == 0
        finally:
            await bot.stop_quietly()
