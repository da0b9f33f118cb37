"""``/usage``: who used the video bot here, how much, what it cost and what failed, for moderators.

The same permission as ``/videoadmin`` (checked in code, see cogs/moderators.py). The sums and the CSV are
worked out in a thread (services/policy/usage_export.py), since a long history takes a second to add up, and
every file is sized for this answer's upload limit: a big CSV comes zipped, or, when even that is too
big, the answer says so and how to ask for less.
"""

from __future__ import annotations

import io
import time
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from cogs.moderators import require_manage_server
from services.jobs.wording import safe_echo
from services.policy.limits import usd
from services.policy.usage import Period, UsageReport
from services.policy.usage_chart import render_png_in_thread
from services.policy.usage_export import export_usage

if TYPE_CHECKING:
    from bot import GrokVideoBot


class UsageCog(commands.Cog):
    def __init__(self, bot: GrokVideoBot) -> None:
        self.bot = bot

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        return require_manage_server(interaction)

    @app_commands.command(name="usage", description="Who used the video bot, how much, what it cost, what failed")
    @app_commands.guild_only()
    @app_commands.default_permissions(manage_guild=True)
    @app_commands.describe(period="Which days to count", user="Only this member")
    @app_commands.choices(period=[app_commands.Choice(name=p.label, value=p.value) for p in Period])
    async def usage(
        self,
        interaction: discord.Interaction,
        period: app_commands.Choice[str] | None = None,
        user: discord.Member | None = None,
    ) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        assert interaction.guild_id is not None  # guild-only
        guild_id = interaction.guild_id
        chosen = Period(period.value) if period else Period.WEEK
        now = time.time()
        policy = await self.bot.runtime.jobs.rules.policy(guild_id)
        jobs = await self.bot.runtime.store.usage.in_guild(
            guild_id, since=chosen.since(now), user_id=user.id if user else None
        )
        stem = f"usage-{chosen.value}" + (f"-{user.id}" if user else "")
        limit = interaction.filesize_limit  # per file, for this answer (the server's boost level decides)
        # In a thread: with a long history the sums and the CSV take a second, which the loop cannot spare.
        export = await export_usage(jobs, policy, chosen, now=now, stem=stem, upload_limit=limit)
        report = export.report
        embed = usage_embed(report, user, csv_attached=export.table is not None)
        files = []
        if export.table is not None:
            files.append(discord.File(io.BytesIO(export.table.data), filename=export.table.filename))
        if jobs and report.days:
            png = await render_png_in_thread(report.days, f"Jobs and spend per day, {chosen.label}")
            if len(png) <= limit:
                files.append(discord.File(io.BytesIO(png), filename=f"{stem}.png"))
                embed.set_image(url=f"attachment://{stem}.png")
        note = export.note(limit) or discord.utils.MISSING
        await interaction.followup.send(note, embed=embed, files=files, ephemeral=True)


# Discord's embed limits (discord-platform-facts.md §7): 1024 characters per field value, 6000 in all. The
# fields here stay under 4,500 together (each at most 1024, the short ones a few hundred), so only each value
# needs fitting.
FIELD_VALUE_LIMIT = 1024
REJECTIONS_SHOWN = 8


def usage_embed(report: UsageReport, user: discord.Member | None, *, csv_attached: bool = True) -> discord.Embed:
    """The report as an embed; what does not fit is counted, and pointed to the CSV when it is attached."""
    see = " (see the CSV)" if csv_attached else ""
    who = f" by {user.mention}" if user else ""
    embed = discord.Embed(title=f"Video usage, {report.period.label}", colour=discord.Colour.blurple())
    if not report.jobs:
        embed.description = f"No videos were requested{who} in this period."
        return embed
    estimated = f" (of which ≈${report.usd_estimated:.2f} estimated)" if report.usd_estimated else ""
    embed.description = (
        f"**{report.jobs}** jobs{who} · **{report.video_seconds:g} s** of video · "
        f"**${report.usd:.2f}** spent{estimated}"
    )
    outcomes = "\n".join(f"{name}: {count}" for name, count in sorted(report.outcomes.items()))
    embed.add_field(name="Outcomes", value=outcomes, inline=True)
    if report.failure_reasons:
        reasons = "\n".join(f"{code}: {count}" for code, count in report.failure_reasons.most_common(8))
        embed.add_field(name="Why jobs failed", value=reasons, inline=True)
    if report.models:
        per_model = [f"`{m.model}`: {m.jobs} jobs · {m.seconds:g} s · {usd(m.ticks)}" for m in report.models]
        embed.add_field(name="Spend per model", value=whole_lines(per_model, f" models{see}"), inline=False)
    if user is None and report.top_users:
        top = [f"<@{u.user_id}>: {u.jobs} jobs · {u.seconds:g} s · ${u.usd:.2f}" for u in report.top_users]
        embed.add_field(name="Top users", value=whole_lines(top, ""), inline=False)
    if report.rejections:
        lines = [
            f"#{r.job_id} <@{r.user_id}> <t:{int(r.created_at)}:d>: {safe_echo(r.prompt or '(no prompt)', 80)}"
            for r in report.rejections
        ]
        blocked = whole_lines(lines, see, most=REJECTIONS_SHOWN)
        embed.add_field(name=f"Blocked by moderation ({len(report.rejections)})", value=blocked)
    return embed


def whole_lines(lines: list[str], more: str, *, most: int | None = None, limit: int = FIELD_VALUE_LIMIT) -> str:
    """As many whole ``lines`` as fit in one field (at most ``most``), and when some are left out a last line
    saying how many: Discord refuses a longer value, and a line cut in the middle would show a wrong figure."""
    kept = lines[:most] if most is not None else list(lines)
    while kept:
        left = len(lines) - len(kept)
        text = "\n".join(kept + ([f"…and {left} more{more}"] if left else []))
        if len(text) <= limit:
            return text
        kept.pop()
    return f"…and {len(lines)} more{more}" if lines else ""


async def setup(bot: GrokVideoBot) -> None:
    await bot.add_cog(UsageCog(bot))
