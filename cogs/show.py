"""``/show job:N``: post a kept result again, with its working buttons, or say exactly why it cannot be.

Anyone in the server may re-post a video in the channel it was delivered to (its maker and a moderator: in
any channel of that server); the re-post pings nobody (its maker is named, not mentioned). A job of another
server, one that ended without a video, one still in the making, and one whose files were swept by retention,
deleted or forgotten each get their own answer, privately. The re-post is fitted to the upload limit like a
delivery; a video too big for it is shown as xAI's temporary link while that lasts. Each member may re-post a few
videos per window (services/policy/reposts.py); past that, the answer says when the next is possible.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from cogs.intake import permission_problem
from cogs.kept import gone_reason
from cogs.results import result_view
from services.delivery.places import upload_limit, video_filename
from services.delivery.posting import jump_url, video_embed, with_link
from services.jobs.listener import DeliveryError
from services.jobs.models import Job, JobStatus
from services.jobs.wording import describe_options, failure_text
from services.media.fitting import discard_shrunk_copies, fit
from services.policy.limits import span_words
from services.policy.reposts import RepostAllowance

if TYPE_CHECKING:
    from bot import GrokVideoBot

log = logging.getLogger(__name__)

NO_MENTIONS = discord.AllowedMentions.none()


class ShowCog(commands.Cog):
    def __init__(self, bot: GrokVideoBot) -> None:
        self.bot = bot
        self.reposts = RepostAllowance()

    @app_commands.command(name="show", description="Post a kept video again, with its buttons")
    @app_commands.guild_only()
    @app_commands.describe(job="The job number of the video (the #N under it)")
    async def show(self, interaction: discord.Interaction, job: app_commands.Range[int, 1, 2**53]) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        found = await self.bot.runtime.store.jobs.get(job)
        reason = (
            why_not_shown(self.bot, found, job, interaction.guild_id)
            or not_here(interaction, found)
            or permission_problem(interaction)
        )
        channel = interaction.channel
        if reason is None and not isinstance(channel, discord.abc.Messageable):
            reason = "❌ I can't post in this kind of channel. Use `/show` in a text channel."
        if reason is not None or found is None or not isinstance(channel, discord.abc.Messageable):
            await interaction.edit_original_response(content=reason or f"❌ There is no job #{job}.")
            return
        guild_id, viewer = found.origin.guild_id or 0, interaction.user.id  # why_not_shown: made in this server
        next_at = self.reposts.take(guild_id, viewer)
        if next_at is not None:
            await interaction.edit_original_response(content=self._too_many(found.id, next_at))
            return
        posted = False
        try:
            answer, posted = await self._post_again(found, channel, viewer)
        finally:
            if not posted:
                self.reposts.give_back(guild_id, viewer)
        await interaction.edit_original_response(content=answer)

    def _too_many(self, job_id: int, next_at: float) -> str:
        moment = int(next_at) + 1  # round up: a second early would be refused again
        return (
            f"⛔ You've posted {self.reposts.most} videos again with `/show` in the last "
            f"{span_words(self.reposts.window_s)}, the most allowed here (each is a whole upload), so I won't post "
            f"job #{job_id} now. You can post another <t:{moment}:R> (at <t:{moment}:f>)."
        )

    async def _post_again(self, job: Job, channel: discord.abc.Messageable, viewer: int) -> tuple[str, bool]:
        """Post the video (or, too big, xAI's link) with its buttons; what to tell the person who asked, and
        whether anything was posted."""
        video = Path(job.output_path or "")
        what = describe_options(job.mode, job.options)
        content = f"🎬 Job #{job.id} by <@{job.origin.user_id}>, posted again for <@{viewer}>. ({what})"
        original = jump_url(job)
        if original:
            content += f" · [first posted here](<{original}>)"
        try:
            try:
                upload = await fit(job, video, upload_limit(self.bot, job))
            except DeliveryError as too_big:
                linked = await with_link(self.bot.runtime.store, job, content, too_big)
                if linked is None:
                    return f"❌ {too_big}", False
                await channel.send(linked, embed=video_embed(job), view=result_view(job), allowed_mentions=NO_MENTIONS)
                return f"✅ Job #{job.id} is too big to upload here, so I posted xAI's link to it below.", True
            file = discord.File(upload, filename=video_filename(job))
            await channel.send(
                content, embed=video_embed(job), file=file, view=result_view(job), allowed_mentions=NO_MENTIONS
            )
        except discord.HTTPException as error:
            log.info("Job %d: /show could not post it (%s)", job.id, error.status)
            return (
                "❌ I couldn't post the video here. Ask a moderator to let me post and attach files in this channel.",
                False,
            )
        finally:
            await discard_shrunk_copies(job, video)
        return f"✅ Posted job #{job.id} again below.", True


def why_not_shown(bot: GrokVideoBot, job: Job | None, number: int, guild_id: int | None) -> str | None:
    """Why job ``number`` cannot be posted again here, in words; None when it can."""
    if job is None:
        return f"❌ There is no job #{number}. The number is the #N under a video, or in `/myvideos`."
    if job.origin.guild_id is None or job.origin.guild_id != guild_id:
        return f"❌ Job #{number} was not made in this server, so I won't post it here."
    if job.status is not JobStatus.DELIVERED:
        if not job.status.is_terminal:
            return f"⏳ Job #{number} is still being made; it will be posted when it's ready."
        return f"Job #{number} ended without a video, so there is nothing to show. {failure_text(job)}"
    if job.deleted_at is not None:
        by = "the person who asked for it or a moderator"
        return f"🗑️ Job #{number}'s video was deleted by {by}, so I won't post it again."
    gone = gone_reason(bot, job)
    if gone is not None:
        return f"❌ {gone}, so I can't post job #{number} again."
    if not job.output_path or not Path(job.output_path).is_file():
        return f"❌ I no longer have job #{number}'s file, so I can't post it again."
    return None


def not_here(interaction: discord.Interaction, job: Job | None) -> str | None:
    """Job numbers are easy to guess: someone else's video goes again only where it was posted (so no one
    carries it out of a channel they may not see, or out of its maker's DMs); its maker and a moderator may
    post it anywhere in the server."""
    if job is None or interaction.user.id == job.origin.user_id or interaction.permissions.manage_messages:
        return None
    if job.delivery_method != "dm" and interaction.channel_id == job.delivered_channel_id:
        return None
    where = (
        "" if job.delivery_method == "dm" else f"; use `/show` in <#{job.delivered_channel_id}>, where it was posted"
    )
    return f"🔒 Only the person who asked for job #{job.id} or a moderator can post it in another channel{where}."


async def setup(bot: GrokVideoBot) -> None:
    await bot.add_cog(ShowCog(bot))
