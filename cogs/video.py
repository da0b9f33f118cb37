"""``/video``: the Discord face of the service. It parses, checks and presents; the services do the work."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from services.hosts import discord_attachment_hosts
from services.models import ASPECT_RATIOS, MAX_DURATION_S, MIN_DURATION_S, RESOLUTIONS, JobRequest, Mode, Origin
from services.validation import (
    DEFAULT_MAX_PROMPT_CHARS,
    MAX_EDIT_VIDEO_BYTES,
    MAX_IMAGE_BYTES,
    InputError,
    check_media,
    choose_mode,
    clean_prompt,
    parse_options,
)

if TYPE_CHECKING:
    from bot import GrokVideoBot

log = logging.getLogger(__name__)

# What the bot must be allowed to do in a channel to deliver there, by name as Discord shows it.
NEEDED_PERMISSIONS: tuple[tuple[str, str], ...] = (
    ("view_channel", "View Channel"),
    ("send_messages", "Send Messages"),
    ("attach_files", "Attach Files"),
    ("embed_links", "Embed Links"),
    ("read_message_history", "Read Message History"),
)


def missing_permissions(interaction: discord.Interaction) -> list[str]:
    """Permissions the bot lacks where the command was used (from ``app_permissions``, no request needed)."""
    granted = interaction.app_permissions
    in_thread = isinstance(interaction.channel, discord.Thread)
    missing = []
    for attribute, label in NEEDED_PERMISSIONS:
        if attribute == "send_messages" and in_thread:
            attribute, label = "send_messages_in_threads", "Send Messages in Threads"
        if not getattr(granted, attribute):
            missing.append(label)
    return missing


def permission_problem(interaction: discord.Interaction) -> str | None:
    missing = missing_permissions(interaction)
    if not missing:
        return None
    return (
        f"⚠️ I can't post videos in this channel: I'm missing {', '.join(missing)}. Ask a moderator to give me "
        "those permissions here, or use me in another channel. Nothing was sent to xAI."
    )


class VideoCog(commands.Cog):
    def __init__(self, bot: GrokVideoBot) -> None:
        self.bot = bot

    @app_commands.command(name="video", description="Make a short video with Grok Imagine")
    @app_commands.guild_only()
    @app_commands.describe(
        prompt="What the video should show (or, with a video attached, how to change it)",
        image="An image to animate (PNG, JPEG or WebP, up to 10 MiB)",
        video="A video to edit (MP4, up to 8.7 seconds)",
        duration=f"Length in seconds ({MIN_DURATION_S}-{MAX_DURATION_S}); not for edits",
        aspect_ratio="Shape of the video; not for edits",
        resolution="480p is faster, 720p is sharper; not for edits",
    )
    @app_commands.choices(
        aspect_ratio=[app_commands.Choice(name=ratio, value=ratio) for ratio in ASPECT_RATIOS],
        resolution=[app_commands.Choice(name=res, value=res) for res in RESOLUTIONS],
    )
    async def video(
        self,
        interaction: discord.Interaction,
        prompt: app_commands.Range[str, 1, DEFAULT_MAX_PROMPT_CHARS] | None = None,
        image: discord.Attachment | None = None,
        video: discord.Attachment | None = None,
        duration: app_commands.Range[int, MIN_DURATION_S, MAX_DURATION_S] | None = None,
        aspect_ratio: app_commands.Choice[str] | None = None,
        resolution: app_commands.Choice[str] | None = None,
    ) -> None:
        # Acknowledge first, always: Discord gives us 3 seconds, and downloads or probing can take longer.
        callback = await interaction.response.defer(thinking=True)
        try:
            request = await self._build_request(
                interaction,
                prompt=prompt,
                image=image,
                video=video,
                duration=duration,
                aspect_ratio=aspect_ratio.value if aspect_ratio else None,
                resolution=resolution.value if resolution else None,
                status_message_id=callback.message_id if callback else None,
            )
        except InputError as error:
            await interaction.edit_original_response(content=f"❌ {error}")
            return
        await self.start_job(interaction, request)

    async def _build_request(
        self,
        interaction: discord.Interaction,
        *,
        prompt: str | None,
        image: discord.Attachment | None,
        video: discord.Attachment | None,
        duration: int | None,
        aspect_ratio: str | None,
        resolution: str | None,
        status_message_id: int | None,
    ) -> JobRequest:
        problem = permission_problem(interaction)
        if problem is not None:
            raise InputError(problem.removeprefix("⚠️ "))
        mode = choose_mode(has_image=image is not None, has_video=video is not None)
        text = clean_prompt(prompt, mode)
        options = parse_options(mode, duration=duration, aspect_ratio=aspect_ratio, resolution=resolution)
        attachment = image or video
        media_input = None
        if attachment is not None:
            media_input = await check_media(mode, await read_attachment(attachment, mode), attachment.filename)
        return JobRequest(
            mode=mode,
            prompt=text,
            options=options,
            origin=Origin(
                guild_id=interaction.guild_id,
                channel_id=interaction.channel_id,
                user_id=interaction.user.id,
            ),
            media=media_input,
            status_message_id=status_message_id,
        )

    async def start_job(self, interaction: discord.Interaction, request: JobRequest) -> None:
        """Accept the job and let the delivery adapter keep its status message up to date."""
        accepted = await self.bot.runtime.jobs.accept(request)
        # No await between accepting and tracking: the scheduler cannot report on the job before we listen.
        self.bot.delivery.track(accepted.job.id, interaction)
        await self.bot.delivery.refresh(accepted.job.id, position=accepted.position)


async def read_attachment(attachment: discord.Attachment, mode: Mode) -> bytes:
    """The attachment's bytes, taken at once (Discord's links expire), after cheap host and size checks."""
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
        raise InputError("I couldn't download your attachment from Discord. Please attach it again.") from None
    if len(data) > limit:  # Discord said one size and sent another: trust the bytes
        raise InputError(f"That file is over the {limit // 1024 // 1024} MiB limit. Attach a smaller file.")
    return data


async def setup(bot: GrokVideoBot) -> None:
    await bot.add_cog(VideoCog(bot))
