"""Where a job's messages go, and how Discord is told which job each one belongs to.

The channel it was asked in (a partial one when it is not cached), the reply to the request, the
requester's DM, and the marks that make a repeat harmless: each upload's own file name (how an
earlier post of it is found again) and a nonce per kind of message (Discord drops a second one).
Shared by the status board, the posting chain, notices and the history search.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import discord

from services.jobs.listener import DeliveryError, DeliveryReceipt
from services.jobs.models import Job
from services.permissions import TO_POST_A_FILE, in_channel, missing

T = TypeVar("T")

DEFAULT_UPLOAD_LIMIT = 10 * 1024 * 1024  # what every destination accepts


def or_missing(value: T | None) -> T:
    """discord.py's way of saying "not given" (None would mean "clear it" in some calls)."""
    return discord.utils.MISSING if value is None else value


def video_filename(job: Job) -> str:
    """Each job's upload has its own name, which is how an earlier post of it is recognised."""
    return f"grok-video-{job.id}.mp4"


def nonce(job: Job, kind: str) -> str:
    """Discord drops a second message with the same nonce, so a retried delivery never posts twice."""
    return f"gv{kind}{job.id}"[:25]


def channel_of(client: discord.Client, job: Job) -> discord.abc.Messageable:
    channel_id = job.origin.channel_id or 0
    channel = client.get_channel(channel_id)
    if isinstance(channel, discord.abc.Messageable):
        return channel
    # Not cached (e.g. resumed before the gateway is ready): REST works with a partial channel.
    return client.get_partial_messageable(channel_id, guild_id=job.origin.guild_id)


def reply_reference(job: Job) -> discord.MessageReference:
    """Reply to the request (the person's message, or else the status message); MISSING for none."""
    target = job.origin.source_message_id or job.status_message_id
    if target is None or job.origin.channel_id is None:
        return or_missing(None)
    return discord.MessageReference(
        message_id=target,
        channel_id=job.origin.channel_id,
        guild_id=job.origin.guild_id,
        fail_if_not_exists=False,
    )


def mention_of(job: Job) -> discord.AllowedMentions:
    """A message for the requester pings them, and nobody else."""
    return discord.AllowedMentions(users=[discord.Object(job.origin.user_id or 0)])


async def user_of(client: discord.Client, user_id: int) -> discord.User:
    return client.get_user(user_id) or await client.fetch_user(user_id)


async def send_dm(
    client: discord.Client, job: Job, content: str, *, file: Path | None, embed: discord.Embed | None = None
) -> DeliveryReceipt:
    """The last way to reach the requester: a DM (with the video, or a notice without one)."""
    if job.origin.user_id is None:
        raise DeliveryError("Nobody to deliver this video to.", permanent=True)
    try:
        user = await user_of(client, job.origin.user_id)
        attachment = discord.File(file, filename=video_filename(job)) if file is not None else None
        message = await user.send(
            content, embed=or_missing(embed), file=or_missing(attachment), nonce=nonce(job, "d" if file else "e")
        )
    except discord.HTTPException as error:
        raise DeliveryError(
            "The video was made, but I could not post it in the channel or send it to you in a DM. "
            "Ask a moderator to let the bot post and attach files there.",
            permanent=error.status in (403, 404),
        ) from None
    return DeliveryReceipt("dm", message.channel.id, message.id)


def can_post_in(client: discord.Client, job: Job) -> bool:
    """Whether the bot may post a video in the job's channel now, as far as the cache knows (else yes)."""
    channel = client.get_channel(job.origin.channel_id or 0)
    if not isinstance(channel, discord.abc.GuildChannel | discord.Thread):
        return True
    granted = channel.permissions_for(channel.guild.me)
    return not missing(granted.value, in_channel(TO_POST_A_FILE, thread=isinstance(channel, discord.Thread)))


def upload_limit(client: discord.Client, job: Job) -> int:
    guild = client.get_guild(job.origin.guild_id) if job.origin.guild_id else None
    return guild.filesize_limit if guild is not None else DEFAULT_UPLOAD_LIMIT
