"""``/myvideos``: the caller's recent videos in this server, how each went, and a link to each one posted."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from services.jobs.models import Job
from services.jobs.wording import MODE_NAMES, safe_echo

if TYPE_CHECKING:
    from bot import GrokVideoBot


class MyVideosCog(commands.Cog):
    """Only the caller's own jobs in this server, answered privately: it needs the store and nothing else."""

    def __init__(self, bot: GrokVideoBot) -> None:
        self.store = bot.runtime.store

    @app_commands.command(name="myvideos", description="Your recent videos and how they went")
    @app_commands.guild_only()
    async def my_videos(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        jobs = await self.store.jobs.of_user(interaction.user.id, limit=10, guild_id=interaction.guild_id)
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


async def setup(bot: GrokVideoBot) -> None:
    await bot.add_cog(MyVideosCog(bot))
