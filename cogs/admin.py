"""``/videoadmin``: the moderators' face (with ``/usage``, cogs/usage.py). Parses, checks permissions,
presents; every command checks Manage Server again in code (cogs/moderators.py).

An option's help, as Discord shows it, is given with ``app_commands.describe`` or, for the commands
with many options, in the ``Args:`` section of the command's docstring (discord.py reads both).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from cogs.moderators import MANAGE_SERVER, require_manage_server
from cogs.video import offer_models
from services.jobs.models import MAX_DURATION_S, RESOLUTIONS, Mode
from services.media.retention import DAY_S, Forgotten, kept_for
from services.policy.guild_policy import GuildPolicy, PolicyError
from services.policy.limits import MODE_WORDS, span_words
from services.policy.server_rules import ServerRules

if TYPE_CHECKING:
    from bot import GrokVideoBot

log = logging.getLogger(__name__)

MAX_COUNT = 100_000
Count = app_commands.Range[int, 0, MAX_COUNT]  # videos per window or per day (0 = no limit)
AtOnce = app_commands.Range[int, 0, 100]  # videos in the making at once (0 = no limit)
BOT_DEFAULT = "the bot's default"  # the model choice that forgets a server's own default


def _given_limits(**options: float | None) -> dict[str, Any]:
    """The options a moderator filled in (left out: unchanged), with 0 meaning "no limit" (None in a policy)."""
    return {name: None if value == 0 else value for name, value in options.items() if value is not None}


def _shown(value: int | float | None) -> str:
    return "no limit" if value is None else f"{value:g}"


def _per(value: int | None, window: str) -> str:
    return "no limit" if value is None else f"{value} per {window}"


class AdminCog(commands.Cog):
    admin = app_commands.Group(
        name="videoadmin",
        description="Set how this server uses the video bot",
        guild_only=True,
        default_permissions=MANAGE_SERVER,
    )

    def __init__(self, bot: GrokVideoBot) -> None:
        self.bot = bot

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        return require_manage_server(interaction)

    @property
    def rules(self) -> ServerRules:
        return self.bot.runtime.jobs.rules

    # -- show ------------------------------------------------------------------------------------

    @admin.command(name="show", description="Show this server's limits and settings")
    async def show(self, interaction: discord.Interaction) -> None:
        await _acknowledge(interaction)
        guild_id = _guild(interaction)
        policy = await self.rules.policy(guild_id)
        banned = await self.bot.runtime.store.servers.banned_users(guild_id)
        await _private(interaction, embed=policy_embed(policy, banned))

    # -- limits ----------------------------------------------------------------------------------

    @admin.command(name="limits", description="Set the limits (0 = no limit); options left out stay as they are")
    async def limits(
        self,
        interaction: discord.Interaction,
        member_videos: Count | None = None,
        window_minutes: app_commands.Range[int, 1, 7 * 24 * 60] | None = None,
        member_active: AtOnce | None = None,
        server_videos_per_day: Count | None = None,
        server_dollars_per_day: app_commands.Range[float, 0, 100_000] | None = None,
    ) -> None:
        """The members' and the whole server's limits (the options' help, as Discord shows it, is below).

        Args:
            member_videos: Videos each member may make per window
            window_minutes: The window for member_videos, in minutes (60 = per hour)
            member_active: Videos each member may have in the making at once
            server_videos_per_day: Videos the whole server may make in 24 hours
            server_dollars_per_day: US dollars the whole server may spend in 24 hours
        """
        changes = _given_limits(
            user_videos=member_videos,
            user_window_minutes=window_minutes,  # at least 1, so never read as "no limit"
            user_active_jobs=member_active,
            server_videos_per_day=server_videos_per_day,
            server_usd_per_day=server_dollars_per_day,
        )
        await self._change(interaction, changes)

    @admin.command(name="staff", description="Who counts as staff, and their own limits (0 = no limit)")
    async def staff(
        self,
        interaction: discord.Interaction,
        role: discord.Role | None = None,
        videos: Count | None = None,
        active: AtOnce | None = None,
        remove_role: bool = False,
    ) -> None:
        """The staff role and the staff's own limits (the options' help, as Discord shows it, is below).

        Args:
            role: Members with this role count as staff (Manage Server always does)
            videos: Videos each staff member may make per window (0 = no limit)
            active: Videos each staff member may have in the making at once (0 = no limit)
            remove_role: Stop treating the staff role as staff
        """
        changes = _given_limits(staff_videos=videos, staff_active_jobs=active)
        if role is not None:
            changes["staff_role_id"] = role.id
        if remove_role:
            changes["staff_role_id"] = None
        await self._change(interaction, changes)

    @admin.command(name="defaults", description="Video defaults and what is allowed here")
    @app_commands.describe(
        duration="Length used when a member does not choose one (seconds)",
        resolution="Resolution used when a member does not choose one",
        max_duration="The longest video a member may ask for (seconds)",
        text="Allow text-to-video",
        image="Allow animating images",
        edit="Allow editing videos",
        extend="Allow extending videos (the Extend button)",
        model="The model used when a member does not choose one",
        allowed_models="The models members may choose: names separated by commas, or all",
        confirm_above="Ask members to confirm a video estimated above this many dollars (0: never ask)",
    )
    @app_commands.choices(resolution=[app_commands.Choice(name=r, value=r) for r in (*RESOLUTIONS, "xAI's default")])
    async def defaults(
        self,
        interaction: discord.Interaction,
        duration: app_commands.Range[int, 1, MAX_DURATION_S] | None = None,
        resolution: app_commands.Choice[str] | None = None,
        max_duration: app_commands.Range[int, 1, MAX_DURATION_S] | None = None,
        text: bool | None = None,
        image: bool | None = None,
        edit: bool | None = None,
        extend: bool | None = None,
        model: app_commands.Choice[str] | None = None,
        allowed_models: app_commands.Range[str, 1, 500] | None = None,
        confirm_above: app_commands.Range[float, 0, 1000] | None = None,
    ) -> None:
        await _acknowledge(interaction)
        changes: dict[str, Any] = {}
        if model is not None:
            changes["default_model"] = None if model.value == BOT_DEFAULT else model.value
        if allowed_models is not None:
            try:
                changes["allowed_models"] = self._model_names(allowed_models)
            except PolicyError as error:
                await _private(interaction, f"❌ {error}. Nothing was changed.")
                return
        if confirm_above is not None:
            changes["confirm_usd"] = confirm_above or None
        if duration is not None:
            changes["default_duration"] = duration
        if resolution is not None:
            changes["default_resolution"] = resolution.value if resolution.value in RESOLUTIONS else None
        if max_duration is not None:
            changes["max_duration"] = max_duration
        toggles = {Mode.TEXT: text, Mode.IMAGE: image, Mode.EDIT: edit, Mode.EXTEND: extend}
        if any(value is not None for value in toggles.values()):
            current = (await self.rules.policy(_guild(interaction))).allowed_modes
            allowed = {m for m in Mode if (toggles[m] if toggles[m] is not None else m in current)}
            changes["allowed_modes"] = sorted(m.value for m in allowed)
        await self._change(interaction, changes)

    def _model_names(self, text: str) -> list[str]:
        """``allowed_models`` as stored: the offered names it lists (empty: all of them)."""
        offered = self.rules.defaults.catalog.names
        names = [name.strip() for name in text.split(",") if name.strip()]
        if [name.lower() for name in names] == ["all"]:
            return []
        unknown = [name for name in names if name not in offered]
        if unknown or not names:
            raise PolicyError(f"{', '.join(unknown) or text!r} is not offered: the models are {', '.join(offered)}")
        return sorted(set(names))

    @admin.command(name="channels", description="Restrict the bot to some channels, or open it everywhere")
    @app_commands.describe(action="Allow a channel, remove one from the list, or allow every channel again")
    @app_commands.choices(
        action=[
            app_commands.Choice(name="allow this channel", value="allow"),
            app_commands.Choice(name="remove this channel", value="remove"),
            app_commands.Choice(name="allow every channel", value="everywhere"),
        ]
    )
    async def channels(
        self,
        interaction: discord.Interaction,
        action: app_commands.Choice[str],
        channel: discord.TextChannel | discord.ForumChannel | None = None,
    ) -> None:
        await _acknowledge(interaction)
        current = set((await self.rules.policy(_guild(interaction))).channel_ids)
        if action.value == "everywhere":
            current.clear()
        else:
            target = channel.id if channel is not None else interaction.channel_id
            if target is None:
                await _private(interaction, "❌ Pick a channel.")
                return
            if action.value == "allow":
                current.add(target)
            else:
                current.discard(target)
        await self._change(interaction, {"channel_ids": sorted(current)})

    @admin.command(name="reset", description="Forget this server's changes: back to the bot's defaults")
    async def reset(self, interaction: discord.Interaction) -> None:
        await _acknowledge(interaction)
        policy = await self.rules.reset(_guild(interaction), by=interaction.user.id)
        log.info("Guild %s settings reset by user %s", interaction.guild_id, interaction.user.id)
        banned = await self.bot.runtime.store.servers.banned_users(_guild(interaction))
        await _private(interaction, "✅ Back to the bot's defaults.", embed=policy_embed(policy, banned))

    # -- bans ------------------------------------------------------------------------------------

    @admin.command(name="ban", description="Block a member from making videos in this server")
    async def ban(self, interaction: discord.Interaction, member: discord.Member, reason: str | None = None) -> None:
        await _acknowledge(interaction)
        added = await self.bot.runtime.store.servers.ban(
            _guild(interaction), member.id, by=interaction.user.id, reason=reason
        )
        log.info("User %s banned from the bot in guild %s by %s", member.id, interaction.guild_id, interaction.user.id)
        text = f"✅ {member.mention} can no longer make videos here." if added else f"{member.mention} already was."
        await _private(interaction, text)

    @admin.command(name="unban", description="Let a blocked member make videos again")
    async def unban(self, interaction: discord.Interaction, member: discord.Member) -> None:
        await _acknowledge(interaction)
        removed = await self.bot.runtime.store.servers.unban(_guild(interaction), member.id)
        log.info("User %s unbanned in guild %s by %s", member.id, interaction.guild_id, interaction.user.id)
        text = f"✅ {member.mention} can make videos again." if removed else f"{member.mention} was not blocked."
        await _private(interaction, text)

    # -- forget ----------------------------------------------------------------------------------

    @admin.command(name="forget", description="Erase a member's prompts and video files here (counts and costs stay)")
    @app_commands.describe(user="The member (or former member) whose prompts, videos and uploads to erase")
    async def forget(self, interaction: discord.Interaction, user: discord.User) -> None:
        await _acknowledge(interaction)
        result = await self.bot.janitor.forget(_guild(interaction), user.id)
        log.info("User %s forgotten in guild %s by %s", user.id, interaction.guild_id, interaction.user.id)
        await _private(interaction, forget_text(result, user.mention, self.bot.janitor.settings.sweep_interval_s))

    # -- shared ----------------------------------------------------------------------------------

    async def _change(self, interaction: discord.Interaction, changes: dict[str, Any]) -> None:
        await _acknowledge(interaction)
        guild_id = _guild(interaction)
        if not changes:
            policy = await self.rules.policy(guild_id)
            note = "Nothing to change: pick at least one option. Here is how things stand."
        else:
            try:
                policy = await self.rules.change(guild_id, changes, by=interaction.user.id)
            except PolicyError as error:
                await _private(interaction, f"❌ {error}. Nothing was changed.")
                return
            log.info("Guild %s settings changed by user %s: %s", guild_id, interaction.user.id, sorted(changes))
            note = "✅ Saved."
        banned = await self.bot.runtime.store.servers.banned_users(guild_id)
        await _private(interaction, note, embed=policy_embed(policy, banned))


async def _acknowledge(interaction: discord.Interaction) -> None:
    """Answer Discord first (privately, "thinking"): store reads and writes may wait out another program's lock."""
    if not interaction.response.is_done():
        await interaction.response.defer(ephemeral=True, thinking=True)


async def _private(interaction: discord.Interaction, content: str = "", *, embed: discord.Embed | None = None) -> None:
    """The private answer, whether or not the command acknowledged first."""
    shown = embed or discord.utils.MISSING
    if interaction.response.is_done():
        await interaction.followup.send(content or discord.utils.MISSING, embed=shown, ephemeral=True)
    else:
        await interaction.response.send_message(content or None, embed=shown, ephemeral=True)


def _guild(interaction: discord.Interaction) -> int:
    assert interaction.guild_id is not None  # every command here is guild-only
    return interaction.guild_id


def forget_text(result: Forgotten, who: str, sweep_interval_s: float) -> str:
    """What ``/videoadmin forget`` did, including what it could not do yet and when that happens."""
    if result.jobs == 0:
        return f"{who} has made no videos here, so there is nothing to forget."
    kept = "Their counts and costs stay, so /usage, /quota and the limits are unchanged."
    if result.newly == 0:
        text = f"Everything {who} made here was already forgotten. {kept}"
    else:
        videos = "video" if result.newly == 1 else "videos"
        which = " of those that are finished" if result.waiting else ""
        erased = (
            f" The prompts, the bot's copies of the videos and the images or clips uploaded for them{which} are erased."
            if result.jobs > result.waiting
            else ""
        )
        text = (
            f"🧹 Forgot {result.newly} {videos} by {who} here.{erased} {kept} Videos already posted in channels "
            "stay there until someone deletes those messages."
        )
    if result.waiting:
        which = "1 of them is" if result.waiting == 1 else f"{result.waiting} of them are"
        every = kept_for(sweep_interval_s / DAY_S)
        text += (
            f"\n⏳ {which} still in progress, so the bot still needs its prompt and files: they will be erased at "
            f"the first cleanup after it has finished (the bot cleans up every {every})."
        )
    return text


def policy_embed(policy: GuildPolicy, banned: list[int]) -> discord.Embed:
    embed = discord.Embed(title="Video bot settings for this server", colour=discord.Colour.blurple())
    window = span_words(policy.user_window_s)
    embed.add_field(
        name="Each member",
        value=f"videos: {_per(policy.user_videos, window)}\nat once: {_shown(policy.user_active_jobs)}",
        inline=True,
    )
    staff_role = f"<@&{policy.staff_role_id}>" if policy.staff_role_id else "none (Manage Server only)"
    embed.add_field(
        name="Staff",
        value=f"role: {staff_role}\nvideos: {_per(policy.staff_videos, window)}\n"
        f"at once: {_shown(policy.staff_active_jobs)}",
        inline=True,
    )
    dollars = "no limit" if policy.server_usd_per_day is None else f"${policy.server_usd_per_day:.2f}"
    embed.add_field(
        name="Whole server, per 24 h",
        value=f"videos: {_shown(policy.server_videos_per_day)}\nspend: {dollars}",
        inline=True,
    )
    channels = ", ".join(f"<#{c}>" for c in sorted(policy.channel_ids)) or "every channel"
    embed.add_field(name="Where", value=channels, inline=False)
    modes = ", ".join(MODE_WORDS[m] for m in Mode if m in policy.allowed_modes)
    embed.add_field(
        name="Videos",
        value=f"allowed: {modes}\nlongest: {policy.max_duration} s\n"
        f"default length: {f'{policy.default_duration} s' if policy.default_duration else 'xAI default'}\n"
        f"default resolution: {policy.default_resolution or 'xAI default'}",
        inline=False,
    )
    models = ", ".join(name for name in policy.catalog.names if policy.allows_model(name))
    confirm = "never" if policy.confirm_usd is None else f"above ${policy.confirm_usd:.2f}"
    embed.add_field(
        name="Models",
        value=f"default: {policy.default_model or policy.catalog.default.name}\nallowed: {models}\n"
        f"members confirm a video: {confirm} (or over half of the day's budget left)",
        inline=False,
    )
    blocked = ", ".join(f"<@{u}>" for u in banned[:40]) + (f" and {len(banned) - 40} more" if len(banned) > 40 else "")
    embed.add_field(name="Blocked members", value=blocked or "nobody", inline=False)
    return embed


async def setup(bot: GrokVideoBot) -> None:
    cog = AdminCog(bot)
    names = bot.runtime.jobs.rules.defaults.catalog.names
    defaults = cog.admin.get_command("defaults")
    assert isinstance(defaults, app_commands.Command)
    offer_models(defaults, (*names, BOT_DEFAULT))
    await bot.add_cog(cog)
