"""When a message is a request to the bot, what a mention without one gets, and how often.

Discord lists the replied-to author in ``message.mentions`` for every reply that pings (the default),
so "lol this is great" under a delivered video "mentions" the bot. Only a mention written in the text
counts: ``<@id>`` / ``<@!id>``, or the mention of the bot's own managed role (``guild.self_role``),
which is what Discord's client inserts when someone picks the bot's role from the @ list.

The reply trigger (opt-in, it needs the Message Content intent): reply to a message with an image or
an MP4, mention the bot and say what to do; the status line is the bot's own reply, and the video
replies to the request.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

import discord
from discord.ext import commands

from cogs.confirm import ask_in_message
from cogs.intake import (
    SOURCE_GONE,
    missing_in,
    read_media,
    refusal_text,
    requester_of_message,
    usable_attachment,
)
from cogs.replies import error_text
from services.jobs.accepting import Quote
from services.jobs.models import JobRequest, Mode, Origin, VideoOptions
from services.jobs.validation import InputError, clean_prompt
from services.policy.limits import Refused, Requester

if TYPE_CHECKING:
    from bot import GrokVideoBot

log = logging.getLogger(__name__)

CONTEXT_MENU_HELP = (
    "To animate or edit a message's attachment, right-click the message (long-press on mobile), "
    "choose **Apps**, then **Animate with Grok** or **Edit video with Grok**."
)


ANSWER_COOLDOWN_S = 60.0  # a member's mentions get at most one explanation this often


class AnswerCooldown:
    """At most one answer per member per ``window_s`` to mentions that start no job.

    Help, "I can't see attachments here", a refusal or a mistake explained: each is a message in the
    channel, and without a pause a member mentioning the bot in a loop would make it spam the channel.
    The repeats get nothing; a request that starts a job is not held back (the limits govern those).
    The clock is injected so tests can move past the pause without waiting for it.
    """

    def __init__(self, window_s: float = ANSWER_COOLDOWN_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.window_s = window_s
        self.clock = clock
        self._answered: dict[tuple[int, int], float] = {}  # (guild, member) -> when they were last answered

    def allow(self, guild_id: int, user_id: int) -> bool:
        """Whether this member may be answered now; a yes counts as the answer (decided before any await)."""
        now = self.clock()
        self._answered = {key: at for key, at in self._answered.items() if now - at < self.window_s}
        key = (guild_id, user_id)
        if key in self._answered:
            return False
        self._answered[key] = now
        return True


def bot_role_id(message: discord.Message) -> int | None:
    """The managed role Discord gave the bot in this server, if the gateway told us about it."""
    role = message.guild.self_role if message.guild is not None else None
    return role.id if role is not None else None


def mentions_explicitly(message: discord.Message, bot_id: int) -> bool:
    """Whether the text itself mentions the bot (or its role); a reply's automatic ping does not count."""
    if bot_id in message.raw_mentions:
        return True
    role_id = bot_role_id(message)
    if role_id is None:
        return False
    # ``role_mentions`` comes from Discord's mention_roles, which a reply never fills in by itself, and is
    # there even when the Message Content intent hides the text.
    return role_id in message.raw_role_mentions or any(role.id == role_id for role in message.role_mentions)


def without_bot_mentions(content: str, bot_id: int, role_id: int | None) -> str:
    """The prompt: the text with the bot's mentions (user and role) taken out."""
    text = re.sub(rf"<@!?{bot_id}>", "", content)
    if role_id is not None:
        text = text.replace(f"<@&{role_id}>", "")
    return text.strip()


def mention_help(bot_name: str, *, reply_trigger: bool) -> str:
    """The short help for a mention that is not a request (the README promises it)."""
    lines = [
        "👋 I make short videos with Grok Imagine. Nothing was started.",
        "• Type `/video` with a prompt; attach an image to animate it, or an MP4 of up to 8.7 seconds to edit it.",
        "• Right-click a message with an image or an MP4 (long-press on mobile), choose **Apps**, then "
        "**Animate with Grok** or **Edit video with Grok**.",
    ]
    if reply_trigger:
        lines.append(
            f"• Or reply to such a message, mention me and say what to do, e.g. `@{bot_name} make the clouds move`."
        )
    return "\n".join(lines)


class MentionsCog(commands.Cog):
    """Every message that mentions the bot: a reply-trigger job, or a short answer saying how to ask."""

    def __init__(self, bot: GrokVideoBot) -> None:
        self.bot = bot
        self.answers = AnswerCooldown()  # mentions that start no job: one answer per member per minute

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        if message.author.bot or message.guild is None:
            return
        if not mentions_explicitly(message, self.bot.user.id):
            return  # a reply's automatic ping (or no mention at all) is not a request: stay quiet
        try:
            await self._on_mention(message)
        except Exception as error:
            log.exception(
                "Answering a mention failed (message %s, user %s, guild %s)",
                message.id,
                message.author.id,
                message.guild.id,
            )
            await self._explain(message, error_text(error))

    async def _on_mention(self, message: discord.Message) -> None:
        assert self.bot.settings.discord is not None
        trigger = self.bot.settings.discord.enable_reply_trigger and self.bot.intents.message_content
        reference = message.reference
        is_reply = reference is not None and reference.type is discord.MessageReferenceType.reply
        if not is_reply or reference is None or reference.message_id is None:
            # A mention alone (with words or not) is not a clear request: no job, just how to ask.
            await self._explain(message, mention_help(self.bot.user.display_name, reply_trigger=trigger))
            return
        if not trigger:
            await self._explain(message, f"I can't see other messages' attachments here. {CONTEXT_MENU_HELP}")
            return
        try:
            await self._reply_trigger(message)
        except InputError as error:
            await self._explain(message, f"❌ {error}")
        except Refused as refused:
            await self._explain(message, refusal_text(refused.refusal))

    async def _explain(self, message: discord.Message, text: str) -> None:
        """Answer a mention that started no job, unless this member was answered a moment ago."""
        assert message.guild is not None
        if not self.answers.allow(message.guild.id, message.author.id):
            log.debug("Not answering message %s: its author %s was answered moments ago", message.id, message.author.id)
            return
        await _answer(message, text)

    async def _reply_trigger(self, message: discord.Message) -> None:
        source = await _referenced(message)
        if source is None:
            raise InputError("I can't find the message you replied to. It may have been deleted.")
        image = usable_attachment(source, Mode.IMAGE)
        video = usable_attachment(source, Mode.EDIT)
        if image is None and video is None:
            raise InputError(
                "That message has no image or MP4 I can use. Reply to a message with a PNG, JPEG or WebP image "
                "(to animate it) or an MP4 up to 8.7 seconds (to edit it)."
            )
        mode = Mode.IMAGE if image is not None else Mode.EDIT
        attachment = image or video
        assert attachment is not None
        text = without_bot_mentions(message.content, self.bot.user.id, bot_role_id(message))
        if not text:
            raise InputError(
                f"Tell me what to do after the mention, for example: {self.bot.user.mention} make the clouds move"
            )
        assert isinstance(message.channel, discord.abc.GuildChannel | discord.Thread)
        assert isinstance(message.guild, discord.Guild)
        missing = missing_in(message.channel, message.channel.permissions_for(message.guild.me))
        if missing:
            log.info("Reply trigger in channel %s refused: missing %s", message.channel.id, missing)
            return  # we cannot even answer here
        request = JobRequest(
            mode=mode,
            prompt=clean_prompt(text, mode),
            options=VideoOptions(),
            origin=Origin(
                guild_id=message.guild.id,
                channel_id=message.channel.id,
                user_id=message.author.id,
                source_message_id=message.id,
            ),
        )
        requester = requester_of_message(message)
        await self.bot.runtime.jobs.screen(request, requester)  # before downloading anything
        media = await read_media(attachment, mode, lost=SOURCE_GONE)
        status = await message.reply("⏳ Got it, getting started…", mention_author=False)
        request = replace(request, media=media, status_message_id=status.id)
        quote = await self._quote(request, requester, status)
        if quote is not None and quote.confirm:  # a costly video waits for its requester's Confirm

            async def go(_: discord.Interaction) -> None:  # the priced request: its model stays what was shown
                await self._accept(quote.request, requester, status, message.id)

            await ask_in_message(self.bot, status, quote, go)
            return
        if quote is not None:
            await self._accept(request, requester, status, message.id)

    async def _quote(self, request: JobRequest, requester: Requester, status: discord.Message) -> Quote | None:
        """The price, and whether to ask first; None (the status message says why) when it is refused."""
        try:
            return await self.bot.runtime.jobs.quote(request, requester)
        except Refused as refused:
            await status.edit(content=refusal_text(refused.refusal))
            return None

    async def _accept(self, request: JobRequest, requester: Requester, status: discord.Message, source: int) -> None:
        try:
            accepted = await self.bot.runtime.jobs.accept(request, requester)
        except Refused as refused:  # someone else took the last slot while we downloaded
            await status.edit(content=refusal_text(refused.refusal))
            return
        except Exception as error:  # the status line must not go on saying "getting started"
            log.exception("Reply trigger: accepting the job failed (message %s)", source)
            with contextlib.suppress(discord.HTTPException):
                await status.edit(content=error_text(error))
            return
        self.bot.delivery.board.track_message(accepted.job.id, status)
        await self.bot.delivery.board.refresh(accepted.job.id, position=accepted.position)


async def _referenced(message: discord.Message) -> discord.Message | None:
    reference = message.reference
    if reference is None or reference.message_id is None:
        return None
    if isinstance(reference.resolved, discord.Message):
        return reference.resolved
    try:
        return await message.channel.fetch_message(reference.message_id)
    except discord.HTTPException:
        return None


async def _answer(message: discord.Message, text: str) -> None:
    try:
        await message.reply(text, mention_author=False)
    except discord.HTTPException as error:
        log.info("Could not answer message %s (%s)", message.id, error.status)


async def setup(bot: GrokVideoBot) -> None:
    await bot.add_cog(MentionsCog(bot))
