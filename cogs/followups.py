"""Everything after (or beside) ``/video``: context menus on any message's attachment, the reply
trigger, the buttons on results and status messages, and ``/myvideos``.

Like every cog it parses and presents; jobs are built from plain data and handed to the services.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from cogs.buttons import BUTTON_TYPES, result_view, status_view
from cogs.video import (
    missing_permissions,
    permission_problem,
    read_attachment,
    refusal_text,
    requester_of_message,
)
from services.limits import Refused
from services.messages import MODE_NAMES, safe_echo
from services.models import ASPECT_RATIOS, MAX_EDIT_INPUT_S, Job, JobRequest, JobStatus, Mode, Origin, VideoOptions
from services.validation import (
    DEFAULT_MAX_PROMPT_CHARS,
    InputError,
    check_media,
    clean_prompt,
    parse_options,
)

if TYPE_CHECKING:
    from bot import GrokVideoBot
    from cogs.video import VideoCog

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp")
VIDEO_EXTENSIONS = (".mp4", ".mov")
CONTEXT_MENU_HELP = (
    "To animate or edit a message's attachment, right-click the message (long-press on mobile), "
    "choose **Apps**, then **Animate with Grok** or **Edit video with Grok**."
)


def usable_attachment(message: discord.Message, mode: Mode) -> discord.Attachment | None:
    """The first attachment that looks like an image (animate) or a video (edit); content is checked later."""
    extensions = IMAGE_EXTENSIONS if mode is Mode.IMAGE else VIDEO_EXTENSIONS
    family = "image/" if mode is Mode.IMAGE else "video/"
    for attachment in message.attachments:
        kind = attachment.content_type or ""
        if kind.startswith(family) or attachment.filename.lower().endswith(extensions):
            return attachment
    return None


class PromptModal(discord.ui.Modal):
    """Asks for the prompt (and, to animate, duration and aspect ratio) for a context-menu job."""

    def __init__(self, cog: FollowUpCog, mode: Mode, source: discord.Message, attachment: discord.Attachment):
        super().__init__(title="Animate with Grok" if mode is Mode.IMAGE else "Edit video with Grok", timeout=600)
        self.cog, self.mode, self.source, self.attachment = cog, mode, source, attachment
        self.prompt: discord.ui.TextInput[PromptModal] = discord.ui.TextInput(
            label="Prompt",
            custom_id="prompt",
            style=discord.TextStyle.paragraph,
            placeholder="Make the clouds drift slowly" if mode is Mode.IMAGE else "Turn it into a watercolour",
            max_length=DEFAULT_MAX_PROMPT_CHARS,
            required=mode is Mode.EDIT,
        )
        self.add_item(self.prompt)
        self.duration: discord.ui.TextInput[PromptModal] | None = None
        self.aspect_ratio: discord.ui.TextInput[PromptModal] | None = None
        if mode is Mode.IMAGE:
            self.duration = discord.ui.TextInput(
                label="Duration in seconds (1-15, optional)", custom_id="duration", required=False, max_length=3
            )
            self.aspect_ratio = discord.ui.TextInput(
                label="Aspect ratio (optional)",
                custom_id="aspect_ratio",
                placeholder=", ".join(ASPECT_RATIOS),
                required=False,
                max_length=5,
            )
            self.add_item(self.duration)
            self.add_item(self.aspect_ratio)

    async def on_submit(self, interaction: discord.Interaction) -> None:
        callback = await interaction.response.defer(thinking=True)
        try:
            options = parse_options(
                self.mode,
                duration=self.duration.value if self.duration else None,
                aspect_ratio=self.aspect_ratio.value if self.aspect_ratio else None,
            )
            prompt = clean_prompt(self.prompt.value, self.mode)
            data = await read_attachment(self.attachment, self.mode)
            media = await check_media(self.mode, data, self.attachment.filename)
        except InputError as error:
            await interaction.edit_original_response(content=f"❌ {error}")
            return
        request = JobRequest(
            mode=self.mode,
            prompt=prompt,
            options=options,
            origin=_origin(interaction, source_message_id=self.source.id),
            media=media,
            status_message_id=callback.message_id if callback else None,
        )
        await self.cog.video_cog.start_job(interaction, request)


class EditResultModal(discord.ui.Modal, title="Edit this video"):
    prompt: discord.ui.TextInput[EditResultModal] = discord.ui.TextInput(
        label="How should the video change?",
        custom_id="prompt",
        style=discord.TextStyle.paragraph,
        placeholder="Make it look like an old film",
        max_length=DEFAULT_MAX_PROMPT_CHARS,
    )

    def __init__(self, cog: FollowUpCog, job: Job, source_message_id: int | None) -> None:
        super().__init__(timeout=600)
        self.cog, self.job, self.source_message_id = cog, job, source_message_id

    async def on_submit(self, interaction: discord.Interaction) -> None:
        callback = await interaction.response.defer(thinking=True)
        try:
            prompt = clean_prompt(self.prompt.value, Mode.EDIT)
            data = await _read_output(self.job)
            media = await check_media(Mode.EDIT, data, f"grok-video-{self.job.id}.mp4")
        except InputError as error:
            await interaction.edit_original_response(content=f"❌ {error}")
            return
        request = JobRequest(
            mode=Mode.EDIT,
            prompt=prompt,
            options=VideoOptions(),
            origin=_origin(interaction, source_message_id=self.source_message_id),
            media=media,
            parent_job_id=self.job.id,
            status_message_id=callback.message_id if callback else None,
        )
        await self.cog.video_cog.start_job(interaction, request)


class FollowUpCog(commands.Cog):
    def __init__(self, bot: GrokVideoBot) -> None:
        self.bot = bot
        self.menus = [
            app_commands.guild_only(app_commands.ContextMenu(name="Animate with Grok", callback=self.animate_message)),
            app_commands.guild_only(
                app_commands.ContextMenu(name="Edit video with Grok", callback=self.edit_message_video)
            ),
        ]

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

    # -- context menus -------------------------------------------------------------------------

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

    # -- reply trigger -------------------------------------------------------------------------

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        if message.author.bot or message.guild is None or message.reference is None:
            return
        if self.bot.user not in message.mentions:
            return
        assert self.bot.settings.discord is not None
        if not self.bot.settings.discord.enable_reply_trigger or not self.bot.intents.message_content:
            await _answer(message, f"I can't see other messages' attachments here. {CONTEXT_MENU_HELP}")
            return
        try:
            await self._reply_trigger(message)
        except InputError as error:
            await _answer(message, f"❌ {error}")
        except Refused as refused:
            await _answer(message, refusal_text(refused.refusal))

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
        text = _without_mentions_of(message.content, self.bot.user.id)
        if not text.strip():
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
        media = await check_media(mode, await read_attachment(attachment, mode), attachment.filename)
        status = await message.reply("⏳ Got it, getting started…", mention_author=False)
        request = replace(request, media=media, status_message_id=status.id)
        try:
            accepted = await self.bot.runtime.jobs.accept(request, requester)
        except Refused as refused:  # someone else took the last slot while we downloaded
            await status.edit(content=refusal_text(refused.refusal))
            return
        self.bot.delivery.track_message(accepted.job.id, status)
        await self.bot.delivery.refresh(accepted.job.id, position=accepted.position)

    # -- buttons -------------------------------------------------------------------------------

    async def again(self, interaction: discord.Interaction, job_id: int) -> None:
        """The same prompt, options and input, as a new job for whoever clicked."""
        callback = await interaction.response.defer(thinking=True)
        job = await self.bot.runtime.store.get(job_id)
        if job is None:
            await interaction.edit_original_response(content="❌ I no longer have that video's details.")
            return
        problem = permission_problem(interaction)
        if problem is not None:
            await interaction.edit_original_response(content=problem)
            return
        media = await self.bot.runtime.store.get_input(job_id) if job.has_media else None
        request = JobRequest(
            mode=job.mode,
            prompt=job.prompt,
            options=job.options,
            origin=_origin(interaction, source_message_id=interaction.message.id if interaction.message else None),
            media=media,
            parent_job_id=job.id,
            status_message_id=callback.message_id if callback else None,
        )
        await self.video_cog.start_job(interaction, request)

    async def edit_result(self, interaction: discord.Interaction, job_id: int) -> None:
        """Open a prompt for an edit of this result (a modal must be the first answer, so checks come first)."""
        job = await self.bot.runtime.store.get(job_id)
        reason = None
        if job is None or not job.output_path or not Path(job.output_path).is_file():
            reason = "I no longer have this video's file, so I can't edit it."
        elif job.video_duration_s is not None and job.video_duration_s > MAX_EDIT_INPUT_S:
            reason = f"xAI can only edit videos up to {MAX_EDIT_INPUT_S} seconds long; this one is longer."
        elif missing_permissions(interaction):
            reason = permission_problem(interaction)
        if reason is not None or job is None:
            await interaction.response.send_message(f"❌ {reason}", ephemeral=True)
            return
        source = interaction.message.id if interaction.message else None
        await interaction.response.send_modal(EditResultModal(self, job, source))

    async def delete_result(self, interaction: discord.Interaction, job_id: int) -> None:
        """The requester, or anyone who may manage messages, can remove a delivered video."""
        job = await self.bot.runtime.store.get(job_id)
        if not _may_manage(interaction, job):
            await interaction.response.send_message(
                "Only the person who asked for this video, or a moderator, can delete it.", ephemeral=True
            )
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        if interaction.message is not None:
            try:
                await interaction.message.delete()
            except discord.HTTPException as error:
                log.info("Could not delete message %s (%s)", interaction.message.id, error.status)
                await interaction.followup.send("❌ I couldn't delete that message.", ephemeral=True)
                return
        await self.bot.runtime.store.update(job_id, deleted_at=time.time(), deleted_by=interaction.user.id)
        await interaction.followup.send("🗑️ Deleted.", ephemeral=True)

    async def cancel(self, interaction: discord.Interaction, job_id: int) -> None:
        """Stop a waiting or running job (the requester or a moderator)."""
        job = await self.bot.runtime.store.get(job_id)
        if not _may_manage(interaction, job):
            await interaction.response.send_message(
                "Only the person who asked for this video, or a moderator, can cancel it.", ephemeral=True
            )
            return
        was = await self.bot.runtime.jobs.cancel(job_id)
        if was is JobStatus.QUEUED:
            text = f"🛑 Cancelled before it started; nothing was sent to xAI. (job #{job_id})"
        elif was is JobStatus.RUNNING:
            text = f"🛑 Cancelled. xAI may still charge for the work it had started. (job #{job_id})"
        elif was is JobStatus.SUBMITTING:
            text = f"🛑 Cancelling as soon as xAI confirms the request. xAI may still charge for it. (job #{job_id})"
        else:
            await interaction.response.send_message("This job has already finished.", ephemeral=True)
            return
        self.bot.delivery.forget(job_id)
        await interaction.response.edit_message(content=text, view=None)

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
        url = (
            f"https://discord.com/channels/{job.origin.guild_id}/{job.delivered_channel_id}/{job.delivered_message_id}"
        )
        where = f" · [open]({url})"
    status = "deleted" if job.deleted_at else job.status.value
    prompt = safe_echo(job.prompt, 60) if job.prompt else "(no prompt)"
    return f"**#{job.id}** · {status} · {MODE_NAMES[job.mode]} · {when}{where}\n> {prompt}"


def _origin(interaction: discord.Interaction, *, source_message_id: int | None) -> Origin:
    return Origin(
        guild_id=interaction.guild_id,
        channel_id=interaction.channel_id,
        user_id=interaction.user.id,
        source_message_id=source_message_id,
    )


def _may_manage(interaction: discord.Interaction, job: Job | None) -> bool:
    if job is None:
        return bool(interaction.permissions.manage_messages)
    return interaction.user.id == job.origin.user_id or bool(interaction.permissions.manage_messages)


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


def _without_mentions_of(content: str, user_id: int) -> str:
    return re.sub(rf"<@!?{user_id}>", "", content).strip()


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


async def _read_output(job: Job) -> bytes:
    if not job.output_path:
        raise InputError("I no longer have this video's file, so I can't edit it.")
    try:
        return await asyncio.to_thread(Path(job.output_path).read_bytes)
    except OSError:
        raise InputError("I no longer have this video's file, so I can't edit it.") from None


async def setup(bot: GrokVideoBot) -> None:
    await bot.add_cog(FollowUpCog(bot))
