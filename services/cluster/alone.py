"""``generate`` on a PostgreSQL store: the terminal's own scheduler takes the leader's lock for as long as it runs.

On SQLite the file's instance lock keeps ``generate`` and the bot apart; on PostgreSQL the same rule is the leader
lock, since whoever holds it runs the one scheduler that may spend the xAI account's budget. So ``generate`` is
refused while a bot process leads, and no bot process is elected until it is done.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from services.cluster.leader import LEADER_KEY
from services.cluster.link import close_quietly, connector


class SchedulerBusy(Exception):
    """A bot process runs the scheduler on this database; ``str()`` says what to do instead."""


@contextlib.asynccontextmanager
async def the_only_scheduler(url: str) -> AsyncIterator[None]:
    connection = await connector(url, purpose="generate")()
    try:
        if not await connection.fetchval("SELECT pg_try_advisory_lock($1)", LEADER_KEY):
            raise SchedulerBusy(
                "a bot runs its scheduler on this database (DATABASE_URL); a generate beside it would spend the "
                "same xAI budget a second time. Make the video with /video in Discord, or stop the bots first"
            )
        yield  # the lock goes with the connection
    finally:
        await close_quietly(connection)
