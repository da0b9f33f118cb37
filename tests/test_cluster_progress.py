"""A job accepted by one process of a cluster and made by another still shows its progress: the leader keeps the
status message up to date with the bot token, as the accepting process would have through the interaction."""

from __future__ import annotations

from pathlib import Path

from tests.botprocess import BotProcess
from tests.cluster_pg import fresh_database
from tests.cluster_procs import cluster_of, guilds_on_shards, leader_of
from tests.emulators.discord_emulator import DiscordEmulator
from tests.emulators.xai_emulator import XaiEmulator


async def _started(emu: DiscordEmulator, bots: list[BotProcess]) -> None:
    """Both processes up, one of them elected, both shards connected."""
    for bot in bots:
        await bot.start()
    await emu.wait_for(lambda: any("Elected the scheduler's leader" in bot.log() for bot in bots), 60)
    await emu.wait_for(lambda: len(emu.gateway.connected_sessions()) == 2, 20)


async def test_the_leader_shows_the_progress_of_jobs_another_process_accepted(tmp_path: Path) -> None:
    async with fresh_database() as url, DiscordEmulator() as emu, XaiEmulator(generation_s=12.0) as xai:
        channels = [channel for _, channel in guilds_on_shards(emu, 2)]
        bots = cluster_of(emu, xai, tmp_path, url, 2)
        try:
            await _started(emu, bots)
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


async def test_the_accepting_processs_late_first_edit_does_not_leave_an_older_state_showing(tmp_path: Path) -> None:
    # The follower's first "waiting" edit (through the interaction) is held up in the network while the leader takes
    # the job up and shows it being sent: when it lands, the follower reads the job again and shows where it is now,
    # instead of leaving "waiting" up until the leader's next progress edit, some 10 s later.
    async with fresh_database() as url, DiscordEmulator() as emu, XaiEmulator(generation_s=40.0) as xai:
        channels = [channel for _, channel in guilds_on_shards(emu, 2)]
        bots = cluster_of(emu, xai, tmp_path, url, 2)
        try:
            await _started(emu, bots)
            leader = await leader_of(bots, url)
            assert leader is not None
            follower_channel = channels[1 - bots.index(leader)]
            emu.delay_next("PATCH", r"/webhooks/\d+/[^/]+/messages/@original", 4.0)
            asked = await emu.slash("video", {"prompt": "a slow tide", "duration": 2}, channel_id=follower_channel)

            def contents() -> list[str]:
                message = emu.messages.get(asked.original_message_id or 0)
                return [version.content for version in message.versions] if message is not None else []

            def stale_landed() -> bool:  # the waiting line, landed after the leader's newer one
                shown = contents()
                return any(
                    text.startswith("⏳") and any(earlier.startswith(("📨", "🎬")) for earlier in shown[:index])
                    for index, text in enumerate(shown)
                )

            await emu.wait_for(stale_landed, 30)
            await emu.wait_for(lambda: not contents()[-1].startswith("⏳"), 4)  # well before the next progress edit
        finally:
            for bot in bots:
                await bot.stop_quietly()
