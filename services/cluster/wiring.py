"""What bot.py asks of the cluster, from the settings: the links for the seat, the shard claim, the identify queue.

On SQLite (no DATABASE_URL) there is no cluster: no links, no claim, identifies spaced in this process only.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from services.cluster.gateway import IDENTIFY_INTERVAL_S, IdentifyQueue, ShardClaim
from services.cluster.link import connector
from services.cluster.seat import ClusterLinks
from services.config import Settings
from services.scheduler.settings import Sleep


def _url(settings: Settings) -> str | None:
    return settings.database_url.reveal() if settings.database_url is not None else None


def links_for(settings: Settings) -> ClusterLinks | None:
    url = _url(settings)
    if url is None:
        return None
    return ClusterLinks(
        election=connector(url, purpose="leader election", idle_timeout_s=15.0),
        messages=connector(url, purpose="messages"),
    )


def identify_queue(settings: Settings) -> IdentifyQueue:
    url = _url(settings)
    interval = settings.discord.identify_interval_s if settings.discord is not None else IDENTIFY_INTERVAL_S
    # A process that hangs while it holds the turn would stall every other process's identify (and so every
    # reconnect to the gateway) for good: the server ends its quiet session, well after the turn's interval.
    connect = connector(url, purpose="identify", idle_timeout_s=max(30.0, 3 * interval)) if url is not None else None
    return IdentifyQueue(connect, interval_s=interval)


def syncs_commands(settings: Settings) -> bool:
    """Only the process running shard 0 pushes the commands (the one that also gets the DMs): one push per start
    of the cluster, whichever process is the leader then."""
    plan = settings.discord.shards if settings.discord is not None else None
    return plan is None or plan.runs_shard_zero


@contextlib.asynccontextmanager
async def shards_claimed(settings: Settings, *, claim: bool = True, wait: Sleep | None = None) -> AsyncIterator[None]:
    """Hold this process's shards in the database while the bot runs; ``ShardTaken`` when another has one (or
    another DISCORD_SHARD_COUNT). ``claim=False`` (``python bot.py sync``, which never connects to the gateway)
    holds nothing. ``wait``: how start-up waits out a database it cannot reach yet (``ShardClaim.claim``)."""
    url = _url(settings)
    if url is None or not claim:
        yield
        return
    shards = ShardClaim(connector(url, purpose="shards"), settings.discord.shards if settings.discord else None)
    await shards.claim(wait=wait)  # held, and taken again after a server restart, until the bot stops
    try:
        yield
    finally:
        await shards.close()
