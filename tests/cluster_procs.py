"""Several ``python bot.py`` on one PostgreSQL database, each running its own shard: start, find the leader, read.

Shared by the multi-process cluster tests. Each process is a ``BotProcess`` (tests/botprocess.py) with its own
folder, the database's URL, and shard ``i`` of ``len(bots)``; identifies are spaced 50 ms apart instead of 5 s.
"""

from __future__ import annotations

import re
from pathlib import Path

import asyncpg

from services.cluster.leader import LEADER_KEY
from tests.botprocess import BotProcess
from tests.emulators.discord_emulator import DiscordEmulator
from tests.emulators.xai_emulator import XaiEmulator

# pg_locks lists the advisory locks of every database on the server (other tests' clusters too): this one's only.
LEADER_SQL = (
    "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
    "WHERE l.locktype = 'advisory' AND l.granted AND ((l.classid::bigint << 32) | l.objid::bigint) = $1 "
    "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
)


def cluster_of(
    emu: DiscordEmulator, xai: XaiEmulator, tmp_path: Path, url: str, count: int, **overrides: str
) -> list[BotProcess]:
    bots = []
    for shard in range(count):
        folder = tmp_path / f"bot-{shard}"
        folder.mkdir(parents=True)
        settings = {
            "DATABASE_URL": url,
            "DISCORD_SHARD_COUNT": str(count),
            "DISCORD_SHARD_IDS": str(shard),
            "DISCORD_IDENTIFY_INTERVAL_SECONDS": "0.05",
            "DEV_GUILD_ID": "",  # global commands: the guilds of every shard see them
            **overrides,
        }
        bots.append(BotProcess(emu, xai, folder, overrides=settings))
    return bots


async def leader_pid(url: str) -> int | None:
    """The OS process id of the process holding the leader lock (its connection is named with it)."""
    connection = await asyncpg.connect(url, timeout=5)
    try:
        name = await connection.fetchval(LEADER_SQL, LEADER_KEY)
    finally:
        await connection.close()
    found = re.search(r"\(pid (\d+)\)", name or "")
    return int(found.group(1)) if found else None


async def leader_of(bots: list[BotProcess], url: str) -> BotProcess | None:
    pid = await leader_pid(url)
    return next((bot for bot in bots if bot.alive and bot.process is not None and bot.process.pid == pid), None)


async def job_rows(url: str) -> list[dict[str, object]]:
    connection = await asyncpg.connect(url, timeout=5)
    try:
        rows = await connection.fetch("SELECT * FROM jobs ORDER BY id")
    except asyncpg.UndefinedTableError:
        return []
    finally:
        await connection.close()
    return [dict(row) for row in rows]


def guilds_on_shards(emu: DiscordEmulator, count: int) -> list[tuple[int, int]]:
    """One guild per shard, the emulator's person a member of each: (guild, its channel), in shard order."""
    places = []
    for shard in range(count):
        guild = emu.add_guild(f"shard {shard}", shard=(shard, count))
        emu.add_member(guild, emu.user_id)
        places.append((guild, emu.add_channel(guild, "videos")))
    return places
