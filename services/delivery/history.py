"""Reading back what the bot already posted for a job, in its channel and in the requester's DM.

An answer from Discord can be lost after the message landed (a reset, a 5xx after the fact, a
restart), and Discord's nonce only dedupes for a few minutes, so before saying anything twice the
posting chain and the notices look here first.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable

import discord

from services.delivery.places import channel_of, user_of
from services.jobs.models import Job

log = logging.getLogger(__name__)

CLOCK_SKEW_S = 120.0  # our clock against Discord's, when searching history for what an earlier run posted
SEARCH_LIMIT = 300  # messages read per place when looking for an earlier post


async def places(client: discord.Client, job: Job) -> list[tuple[str, discord.abc.Messageable]]:
    """Where this job's result or failure may have gone: its channel, then the requester's DM."""
    found: list[tuple[str, discord.abc.Messageable]] = [("channel", channel_of(client, job))]
    if job.origin.user_id is not None:
        try:
            user = await user_of(client, job.origin.user_id)
            found.append(("dm", await user.create_dm()))
        except discord.HTTPException:
            pass
    return found


async def search(
    client: discord.Client,
    channel: discord.abc.Messageable,
    since: float,
    matches: Callable[[discord.Message], bool],
) -> discord.Message | None:
    """The bot's first message after ``since`` (unix time) that ``matches``, among the next few hundred."""
    me = client.user
    after = datetime.datetime.fromtimestamp(since, tz=datetime.UTC)
    try:
        async for message in channel.history(limit=SEARCH_LIMIT, after=after, oldest_first=True):
            if me is not None and message.author.id == me.id and matches(message):
                return message
    except discord.HTTPException as error:
        log.info("Could not read a channel's history (%s %s)", error.status, error.code)
    return None
