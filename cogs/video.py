"""``/video`` and ``/quota``: the Discord face of the service. They parse, check and present; services do the work."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from cogs.intake import origin_of, permission_problem, read_media, requester_of, start_or_explain
from services.jobs.accepting import Quota
from services.jobs.models import ASPECT_RATIOS, MAX_DURATION_S, MIN_DURATION_S, RESOLUTIONS, JobRequest
from services.jobs.validation import DEFAULT_MAX_PROMPT_CHARS, InputError, choose_mode, clean_prompt, parse_options
from services.policy.limits import span_words, usd

if TYPE_CHECKING:
    from bot import GrokVideoBot


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
        resolution="480p is faster, 720p is sharper, 1080p only on the 1.5 models; not for edits",
        model="Which xAI model (left out: this server's default); edits run on grok-imagine-video",
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
        model: app_commands.Choice[str] | None = None,
    ) -> None:
        # Acknowledge first, always: Discord gives us 3 seconds, and downloads or probing can take longer.
        callback = await interaction.response.defer(thinking=True)
        request = self._build_request(
            interaction,
            prompt=prompt,
            image=image,
            video=video,
            duration=duration,
            aspect_ratio=aspect_ratio.value if aspect_ratio else None,
            resolution=resolution.value if resolution else None,
            model=model.value if model else None,
            status_message_id=callback.message_id if callback else None,
        )
        await start_or_explain(self.bot, interaction, request)

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
        model: str | None,
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
            origin=origin_of(interaction),
            status_message_id=status_message_id,
            model=model,
        )
        # The server's rules and limits before the download: a refused request costs nobody bandwidth.
        await self.bot.runtime.jobs.screen(request, requester_of(interaction))
        attachment = image or video
        if attachment is None:
            return request
        return replace(request, media=await read_media(attachment, mode))

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
            f"💵 This server: {usd(quota.server_spend_ticks)} of its ${policy.server_usd_per_day:.2f} daily budget "
            "used."
        )
    return "\n".join(lines)


def offer_models(command: app_commands.Command[Any, ..., Any], names: tuple[str, ...]) -> None:
    """``model:``'s choices are the offered models (``XAI_MODELS``), known only once the settings are read; discord.py
    has no public setter for a parameter's choices, so they are set on the command before the cog is added."""
    command._params["model"].choices = [app_commands.Choice(name=name, value=name) for name in names[:25]]


async def setup(bot: GrokVideoBot) -> None:
    cog = VideoCog(bot)
    offer_models(cog.video, bot.runtime.jobs.rules.defaults.catalog.names)
    await bot.add_cog(cog)
