"""``/video``: the Discord face of the service. It parses, checks and presents; the services do the work."""

from __future__ import annotations

import logging
import math
from dataclasses import replace
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from services.jobs.accepting import Quota
from services.jobs.models import ASPECT_RATIOS, MAX_DURATION_S, MIN_DURATION_S, RESOLUTIONS, JobRequest, Mode, Origin
from services.jobs.validation import (
    DEFAULT_MAX_PROMPT_CHARS,
    MAX_EDIT_VIDEO_BYTES,
    MAX_IMAGE_BYTES,
    InputError,
    check_media,
    choose_mode,
    clean_prompt,
    parse_options,
)
from services.media.hosts import discord_attachment_hosts
from services.policy.limits import Refusal, Refused, Requester, span_words

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


def refusal_text(refusal: Refusal) -> str:
    """A refusal in words, with the moment the next video is possible in each reader's own time zone."""
    text = f"⛔ {refusal.reason}"
    if refusal.retry_at is not None and math.isfinite(refusal.retry_at):
        moment = int(refusal.retry_at) + 1  # round up: a second early would be refused again
        text += f" Your next video is possible <t:{moment}:R> (at <t:{moment}:f>)."
    return text


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
        except Refused as refused:
            await interaction.edit_original_response(content=refusal_text(refused.refusal))
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
        request = JobRequest(
            mode=mode,
            prompt=text,
            options=options,
            origin=Origin(
                guild_id=interaction.guild_id,
                channel_id=interaction.channel_id,
                user_id=interaction.user.id,
            ),
            status_message_id=status_message_id,
        )
        # The server's rules and limits before the download: a refused request costs nobody bandwidth.
        await self.bot.runtime.jobs.screen(request, requester_of(interaction))
        attachment = image or video
        if attachment is None:
            return request
        media_input = await check_media(mode, await read_attachment(attachment, mode), attachment.filename)
        return replace(request, media=media_input)

    async def start_job(self, interaction: discord.Interaction, request: JobRequest) -> bool:
        """Accept the job and let the delivery adapter keep its status message up to date; False if refused."""
        try:
            accepted = await self.bot.runtime.jobs.accept(request, requester_of(interaction))
        except Refused as refused:
            await interaction.edit_original_response(content=refusal_text(refused.refusal))
            return False
        # No await between accepting and tracking: the scheduler cannot report on the job before we listen.
        self.bot.delivery.track(accepted.job.id, interaction)
        await self.bot.delivery.refresh(accepted.job.id, position=accepted.position)
        return True

    @app_commands.command(name="quota", description="How many videos you can still make here, and when that resets")
    @app_commands.guild_only()
    async def quota(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        assert interaction.guild_id is not None
        quota = await self.bot.runtime.jobs.quota(interaction.guild_id, interaction.user.id, requester_of(interaction))
        await interaction.followup.send(quota_text(quota), ephemeral=True)


def quota_text(quota: Quota) -> str:
    """``/quota`` in words: what is left, what runs, when the oldest video stops counting."""
    if quota.banned:
        return "⛔ A moderator has blocked you from making videos in this server."
    policy = quota.policy
    lines = []
    if quota.videos_limit is None:
        lines.append(f"🎬 No limit on how many videos you make{' (staff)' if quota.staff else ''}.")
    else:
        left = max(0, quota.videos_limit - quota.videos_used)
        window = span_words(policy.user_window_s)
        lines.append(f"🎬 **{left}** of your {quota.videos_limit} videos per {window} left.")
        if quota.next_video_at is not None:
            moment = int(quota.next_video_at) + 1
            verb = "Your next video is possible" if left == 0 else "One more frees up"
            lines.append(f"⏱️ {verb} <t:{moment}:R> (at <t:{moment}:f>).")
    if quota.active_limit is not None:
        lines.append(f"⚙️ {quota.active} of {quota.active_limit} videos in the making at once.")
    if policy.server_videos_per_day is not None:
        lines.append(
            f"🏠 This server: {quota.server_videos_used} of {policy.server_videos_per_day} videos in the last 24 hours."
        )
    if policy.server_usd_per_day is not None:
        lines.append(
            f"💵 This server: ${quota.server_spend_usd:.2f} of its ${policy.server_usd_per_day:.2f} daily budget used."
        )
    return "\n".join(lines)


async def read_attachment(attachment: discord.Attachment, mode: Mode, *, lost: str | None = None) -> bytes:
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


async def setup(bot: GrokVideoBot) -> None:
    await bot.add_cog(VideoCog(bot))
