"""Everything after (or beside) ``/video``: context menus on any message's attachment, the reply
trigger, the buttons on results and status messages, and ``/myvideos``.

Like every cog it parses and presents; jobs are built from plain data and handed to the services.
Every interaction is acknowledged before anything slow (a store write, a download): a database that
another program holds locked must not keep anyone past Discord's 3 seconds.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import replace
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from cogs.buttons import BUTTON_TYPES, result_view, status_view
from cogs.forms import FORM_PREFIX, PromptModal, form_values, parse_form_id
from cogs.mentions import (
    CONTEXT_MENU_HELP,
    AnswerCooldown,
    bot_role_id,
    mention_help,
    mentions_explicitly,
    without_bot_mentions,
)
from cogs.replies import error_text, report
from cogs.results import ResultActions, origin_of
from cogs.video import (
    permission_problem,
    read_attachment,
    refusal_text,
    requester_of,
    requester_of_message,
)
from services.jobs.models import Job, JobRequest, Mode, Origin, VideoOptions
from services.jobs.validation import InputError, check_media, clean_prompt, parse_options
from services.jobs.wording import MODE_NAMES, safe_echo
from services.policy.limits import Refused

if TYPE_CHECKING:
    from bot import GrokVideoBot
    from cogs.video import VideoCog

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp")
VIDEO_EXTENSIONS = (".mp4", ".mov")
SOURCE_GONE = "I couldn't download that message's file from Discord; the message may have been deleted."


def usable_attachment(message: discord.Message, mode: Mode) -> discord.Attachment | None:
    """The first attachment that looks like an image (animate) or a video (edit); content is checked later."""
    extensions = IMAGE_EXTENSIONS if mode is Mode.IMAGE else VIDEO_EXTENSIONS
    family = "image/" if mode is Mode.IMAGE else "video/"
    for attachment in message.attachments:
        kind = attachment.content_type or ""
        if kind.startswith(family) or attachment.filename.lower().endswith(extensions):
            return attachment
    return None


class FollowUpCog(commands.Cog):
    def __init__(self, bot: GrokVideoBot) -> None:
        self.bot = bot
        self.menus = [
            app_commands.guild_only(app_commands.ContextMenu(name="Animate with Grok", callback=self.animate_message)),
            app_commands.guild_only(
                app_commands.ContextMenu(name="Edit video with Grok", callback=self.edit_message_video)
            ),
        ]
        self.open_forms: set[str] = set()  # custom ids of the forms this run is waiting for
        self.results = ResultActions(self)  # what the buttons on results and status messages do
        self.answers = AnswerCooldown()  # mentions that start no job: one answer per member per minute

    @property
    def video_cog(self) -> VideoCog:
        cog = self.bot.get_cog("VideoCog")
        assert cog is not None
        return cog  # type: ignore[return-value]

    async def cog_load(self) -> None:
        for menu in self.menus:
            self.bot.tree.add_command(menu)
        self.bot.add_dynamic_items(*BUTTON_TYPES)
        self.bot.delivery.view_factory = result_view
        self.bot.delivery.status_view_factory = status_view

    async def cog_unload(self) -> None:
        for menu in self.menus:
            self.bot.tree.remove_command(menu.name, type=menu.type)
        self.bot.remove_dynamic_items(*BUTTON_TYPES)

    # -- context menus and their form ----------------------------------------------------------

    async def animate_message(self, interaction: discord.Interaction, message: discord.Message) -> None:
        await self._open_prompt(interaction, message, Mode.IMAGE)

    async def edit_message_video(self, interaction: discord.Interaction, message: discord.Message) -> None:
        await self._open_prompt(interaction, message, Mode.EDIT)

    async def _open_prompt(self, interaction: discord.Interaction, message: discord.Message, mode: Mode) -> None:
        attachment = usable_attachment(message, mode)
        if attachment is None:
            what = "image (PNG, JPEG or WebP)" if mode is Mode.IMAGE else "MP4 video (up to 8.7 seconds)"
            await interaction.response.send_message(
                f"That message has no {what} I can use. Try it on a message that carries one, or use `/video` "
                "and attach the file.",
                ephemeral=True,
            )
            return
        problem = permission_problem(interaction)
        if problem is not None:
            await interaction.response.send_message(problem, ephemeral=True)
            return
        await interaction.response.send_modal(PromptModal(self, mode, message, attachment))

    async def submit_prompt_form(
        self,
        interaction: discord.Interaction,
        mode: Mode,
        source_id: int,
        values: dict[str, str],
        attachment: discord.Attachment | None,
    ) -> None:
        """A context-menu form was sent (``attachment`` is None when the form outlived the bot's memory)."""
        callback = await interaction.response.defer(thinking=True)
        request = JobRequest(
            mode=mode,
            prompt="",
            options=VideoOptions(),
            origin=origin_of(interaction, source_message_id=source_id),
            status_message_id=callback.message_id if callback else None,
        )
        try:
            problem = permission_problem(interaction)
            if problem is not None:
                raise InputError(problem.removeprefix("⚠️ "))
            options = parse_options(mode, duration=values.get("duration"), aspect_ratio=values.get("aspect_ratio"))
            request = replace(request, prompt=clean_prompt(values.get("prompt"), mode), options=options)
            await self.bot.runtime.jobs.screen(request, requester_of(interaction))  # before downloading
            if attachment is None:
                attachment = await _attachment_of(interaction, source_id, mode)
            data = await read_attachment(attachment, mode, lost=SOURCE_GONE)
            request = replace(request, media=await check_media(mode, data, attachment.filename))
        except InputError as error:
            await interaction.edit_original_response(content=f"❌ {error}")
            return
        except Refused as refused:
            await interaction.edit_original_response(content=refusal_text(refused.refusal))
            return
        await self.video_cog.start_job(interaction, request)

    @commands.Cog.listener()
    async def on_interaction(self, interaction: discord.Interaction) -> None:
        """A form sent after the bot restarted (or after it stopped waiting) is still understood."""
        if interaction.type is not discord.InteractionType.modal_submit:
            return
        custom_id = interaction.custom_id or ""
        if not custom_id.startswith(FORM_PREFIX) or custom_id in self.open_forms:
            return  # not ours, or the live form object answers it
        form = parse_form_id(custom_id)
        try:
            if form is None:
                raise ValueError(f"unreadable form id {custom_id!r}")
            log.info("Form %s arrived for a form this run did not open; answering it from its id", custom_id)
            values = form_values(interaction.data)
            if form.kind == "result":
                await self.results.submit_result_form(interaction, form.target, form.source, values)
            else:
                await self.submit_prompt_form(interaction, Mode(form.kind), form.target, values, None)
        except Exception as error:
            await report(interaction, error, what=f"form {custom_id} (opened before a restart)")

    # -- reply trigger -------------------------------------------------------------------------

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
        granted = message.channel.permissions_for(message.guild.me)
        missing = [label for attribute, label in _needed(message.channel) if not getattr(granted, attribute)]
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
        media = await check_media(mode, await read_attachment(attachment, mode, lost=SOURCE_GONE), attachment.filename)
        status = await message.reply("⏳ Got it, getting started…", mention_author=False)
        request = replace(request, media=media, status_message_id=status.id)
        try:
            accepted = await self.bot.runtime.jobs.accept(request, requester)
        except Refused as refused:  # someone else took the last slot while we downloaded
            await status.edit(content=refusal_text(refused.refusal))
            return
        except Exception as error:  # the status line must not go on saying "getting started"
            log.exception("Reply trigger: accepting the job failed (message %s)", message.id)
            with contextlib.suppress(discord.HTTPException):
                await status.edit(content=error_text(error))
            return
        self.bot.delivery.track_message(accepted.job.id, status)
        await self.bot.delivery.refresh(accepted.job.id, position=accepted.position)

    # -- /myvideos -----------------------------------------------------------------------------

    @app_commands.command(name="myvideos", description="Your recent videos and how they went")
    @app_commands.guild_only()
    async def my_videos(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        jobs = await self.bot.runtime.store.jobs_of_user(interaction.user.id, limit=10, guild_id=interaction.guild_id)
        if not jobs:
            await interaction.followup.send("You haven't made any videos here yet. Try `/video`!", ephemeral=True)
            return
        lines = [_job_line(job) for job in jobs]
        embed = discord.Embed(title="Your recent videos", description="\n".join(lines), colour=discord.Colour.blurple())
        await interaction.followup.send(embed=embed, ephemeral=True)


def _job_line(job: Job) -> str:
    when = f"<t:{int(job.created_at)}:R>"
    where = ""
    if job.delivered_message_id and job.delivered_channel_id and job.origin.guild_id and not job.deleted_at:
        place = "@me" if job.delivery_method == "dm" else job.origin.guild_id  # a DM's link has no server
        url = f"https://discord.com/channels/{place}/{job.delivered_channel_id}/{job.delivered_message_id}"
        where = f" · [open]({url})"
    status = "deleted" if job.deleted_at else job.status.value
    prompt = safe_echo(job.prompt, 60) if job.prompt else "(no prompt)"
    if job.forgotten_at is not None:
        prompt = job.shown_prompt  # "(forgotten)", as it is, not escaped
    return f"**#{job.id}** · {status} · {MODE_NAMES[job.mode]} · {when}{where}\n> {prompt}"


def _needed(channel: discord.abc.GuildChannel | discord.Thread) -> list[tuple[str, str]]:
    in_thread = isinstance(channel, discord.Thread)
    send = ("send_messages_in_threads", "Send Messages in Threads") if in_thread else ("send_messages", "Send Messages")
    return [
        ("view_channel", "View Channel"),
        send,
        ("attach_files", "Attach Files"),
        ("embed_links", "Embed Links"),
        ("read_message_history", "Read Message History"),
    ]


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


async def _attachment_of(interaction: discord.Interaction, message_id: int, mode: Mode) -> discord.Attachment:
    """The attachment a late form is about, read again from its message."""
    channel = interaction.channel
    if not isinstance(channel, discord.abc.Messageable):
        raise InputError("I can't read that message any more. Right-click it and choose the app again.")
    try:
        message = await channel.fetch_message(message_id)
    except discord.HTTPException:
        raise InputError("I can't find that message any more; it may have been deleted.") from None
    attachment = usable_attachment(message, mode)
    if attachment is None:
        raise InputError("That message no longer has a file I can use.")
    return attachment


async def _answer(message: discord.Message, text: str) -> None:
    try:
        await message.reply(text, mention_author=False)
    except discord.HTTPException as error:
        log.info("Could not answer message %s (%s)", message.id, error.status)


async def setup(bot: GrokVideoBot) -> None:
    await bot.add_cog(FollowUpCog(bot))
