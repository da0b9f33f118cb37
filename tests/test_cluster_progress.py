"""A job accepted by one process of a cluster and made by another still shows its progress: the leader keeps the
status message up to date with the bot token, as the accepting process would have through the interaction."""

from __future__ import annotations

from pathlib import Path

from tests.cluster_pg import fresh_database
from tests.cluster_procs import cluster_of, guilds_on_shards
from tests.emulators.discord_emulator import DiscordEmulator
from tests.emulators.xai_emulator import XaiEmulator


async def test_the_leader_shows_the_progress_of_jobs_another_process_accepted(tmp_path: Path) -> None:
    async with fresh_database() as url, DiscordEmulator() as emu, XaiEmulator(generation_s=12.0) as xai:
        channels = [channel for _, channel in guilds_on_shards(emu, 2)]
        bots = cluster_of(emu, xai, tmp_path, url, 2)
        try:
            for bot in bots:
                await bot.start()
            await emu.wait_for(lambda: any("Elected the scheduler's leader" in bot.log() for bot in bots), 60)
            await emu.wait_for(lambda: len(emu.gateway.connected_sessions()) == 2, 20)
            # One job on each shard: one of them is accepted by the process that is not the leader.
            asked = [await emu.slash("video", {"prompt": "a slow tide", "duration": 2}, channel_id=c) for c in channels]

            seen: list[set[str]] = [set(), set()]

            def every_state_seen() -> bool:
                for index, states in enumerate(seen):
                    message = emu.messages.get(asked[index].original_message_id or 0)
                    states.add(message.content.split(" ", 1)[0] if message is not None else "")
                return all("✅" in states for states in seen)

            # Progress edits come at most every 10 s, so the clip takes longer than that: whichever process's
            # edit lands first, the leader's next one shows the job generating.
            await emu.wait_for(every_state_seen, 60)
            assert all("🎬" in states for states in seen), seen  # "🎬 Generating ..." on both status messages
        finally:
            for bot in bots:
                await bot.stop_quietly()
