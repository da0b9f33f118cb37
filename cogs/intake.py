"""Taking a request in, the same way for every trigger (``/video``, a context menu, a reply, a button).

Who is asking (as the limits see them), whether the bot may post here, the attachment's bytes, a
refusal in words, and starting the job: accepted by the services, its status message handed to the
delivery's status board before anything else can happen to it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable
from typing import TYPE_CHECKING

import discord

from cogs.confirm import ask_first
from services.jobs.models import JobRequest, MediaInput, Mode, Origin
from services.jobs.validation import MAX_EDIT_VIDEO_BYTES, MAX_IMAGE_BYTES, InputError, check_media
from services.media.hosts import discord_attachment_hosts
from services.permissions import in_channel, missing
from services.policy.limits import Refusal, Refused, Requester

if TYPE_CHECKING:
    from bot import GrokVideoBot

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp")
VIDEO_EXTENSIONS = (".mp4", ".mov")
SOURCE_GONE = "I couldn't download that message's file from Discord; the message may have been deleted."


# -- may the bot post here -------------------------------------------------------------------------


def missing_in(channel: object, granted: discord.Permissions) -> list[str]:
    """What the bot lacks in ``channel`` to deliver a video there, by name as Discord shows it."""
    return missing(granted.value, in_channel(thread=isinstance(channel, discord.Thread)))


def permission_problem(interaction: discord.Interaction) -> str | None:
    """Why the bot cannot take a job where this command was used (from ``app_permissions``, no request)."""
    lacking = missing_in(interaction.channel, interaction.app_permissions)
    if not lacking:
        return None
    return (
        f"⚠️ I can't post videos in this channel: I'm missing {', '.join(lacking)}. Ask a moderator to give me "
        "those permissions here, or use me in another channel. Nothing was sent to xAI."
    )


# -- who asks, and from where ----------------------------------------------------------------------


def requester_of(interaction: discord.Interaction) -> Requester:
    """Who is asking, as the limits need it: staff or not, their roles, the thread's parent channel."""
    return _requester(interaction.user, bool(interaction.permissions.manage_guild), interaction.channel)


def requester_of_message(message: discord.Message) -> Requester:
    manages = isinstance(message.author, discord.Member) and message.author.guild_permissions.manage_guild
    return _requester(message.author, manages, message.channel)


def _requester(user: discord.abc.User, manages_server: bool, channel: object) -> Requester:
    roles = frozenset(role.id for role in user.roles) if isinstance(user, discord.Member) else frozenset()
    parent = channel.parent_id if isinstance(channel, discord.Thread) else None
    return Requester(manages_server=manages_server, role_ids=roles, channel_parent_id=parent)


def origin_of(interaction: discord.Interaction, *, source_message_id: int | None = None) -> Origin:
    """Where an interaction came from, as a job records it."""
    return Origin(
        guild_id=interaction.guild_id,
        channel_id=interaction.channel_id,
        user_id=interaction.user.id,
        source_message_id=source_message_id,
    )


def refusal_text(refusal: Refusal) -> str:
    """A refusal in words, with the moment the next video is possible in each reader's own time zone."""
    text = f"⛔ {refusal.reason}"
    if refusal.retry_at is not None and math.isfinite(refusal.retry_at):
        moment = int(refusal.retry_at) + 1  # round up: a second early would be refused again
        text += f" Your next video is possible <t:{moment}:R> (at <t:{moment}:f>)."
    return text


# -- the attachment --------------------------------------------------------------------------------


def usable_attachment(message: discord.Message, mode: Mode) -> discord.Attachment | None:
    """The first attachment that looks like an image (animate) or a video (edit); content is checked later."""
    extensions = IMAGE_EXTENSIONS if mode is Mode.IMAGE else VIDEO_EXTENSIONS
    family = "image/" if mode is Mode.IMAGE else "video/"
    for attachment in message.attachments:
        kind = attachment.content_type or ""
        if kind.startswith(family) or attachment.filename.lower().endswith(extensions):
            return attachment
    return None


async def read_media(attachment: discord.Attachment, mode: Mode, *, lost: str | None = None) -> MediaInput:
    """The attachment, downloaded and checked by its content (only after the request was screened)."""
    return await check_media(mode, await _read_attachment(attachment, mode, lost=lost), attachment.filename)


async def _read_attachment(attachment: discord.Attachment, mode: Mode, *, lost: str | None) -> bytes:
    """The attachment's bytes, taken at once (Discord's links expire), after cheap host and size checks.

    ``lost`` is what to say when Discord will not hand the file over (default: attach it again)."""
    limit = MAX_IMAGE_BYTES if mode is Mode.IMAGE else MAX_EDIT_VIDEO_BYTES
    # Only from Discord's CDN (or the configured API proxy): an attachment's URL is data, not trust.
    refusal = discord_attachment_hosts(discord.http.Route.BASE).refusal(attachment.url)
    if refusal is not None:
        log.warning("Refused attachment %s: %s", attachment.id, refusal)
        raise InputError("That file is not stored on Discord, so I won't fetch it. Upload it to Discord and try again.")
    if attachment.size > limit:
        kind = "image" if mode is Mode.IMAGE else "video"
        raise InputError(
            f"That {kind} is {attachment.size / 1024 / 1024:.1f} MiB; the limit is {limit // 1024 // 1024} MiB. "
            "Attach a smaller file."
        )
    try:
        data = await attachment.read()
    except discord.HTTPException:
        raise InputError(lost or "I couldn't download your attachment from Discord. Please attach it again.") from None
    if len(data) > limit:  # Discord said one size and sent another: trust the bytes
        raise InputError(f"That file is over the {limit // 1024 // 1024} MiB limit. Attach a smaller file.")
    return data


# -- starting the job ------------------------------------------------------------------------------


async def start_or_explain(bot: GrokVideoBot, interaction: discord.Interaction, build: Awaitable[JobRequest]) -> bool:
    """Start the job ``build`` describes, or answer why not (a mistake in the request, a refusal)."""
    try:
        request = await build
    except InputError as error:
        await interaction.edit_original_response(content=f"❌ {error}")
        return False
    except Refused as refused:
        await interaction.edit_original_response(content=refusal_text(refused.refusal))
        return False
    return await start_job(bot, interaction, request)


async def start_job(
    bot: GrokVideoBot, interaction: discord.Interaction, request: JobRequest, *, confirmed: bool = False
) -> bool:
    """Accept the job and let the delivery's status board keep its status message up to date; False if refused.

    Every way a job starts comes through here: a costly one first waits for its requester's Confirm
    (cogs/confirm.py), which comes back here with ``confirmed``; nothing is written until then."""
    requester = requester_of(interaction)
    try:
        if not confirmed:
            quote = await bot.runtime.jobs.quote(request, requester)
            if quote.confirm:

                async def go() -> bool:  # the priced request: its model stays what was shown
                    return await start_job(bot, interaction, quote.request, confirmed=True)

                await ask_first(bot, interaction, quote, go)
                return True
        accepted = await bot.runtime.jobs.accept(request, requester)
    except Refused as refused:
        await interaction.edit_original_response(content=refusal_text(refused.refusal))
        return False
    # No await between accepting and tracking: the scheduler cannot report on the job before we listen.
    bot.delivery.board.track(accepted.job.id, interaction)
    await bot.delivery.board.refresh(accepted.job.id, position=accepted.position)
    return True
