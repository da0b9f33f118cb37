"""Building the world a test needs: guilds, channels, people, roles, permissions, the files people upload.

Each change reaches connected clients as on Discord (GUILD_CREATE, CHANNEL_UPDATE, GUILD_ROLE_CREATE...), so a
bot that is already running sees it. A mixin of `DiscordEmulator`, which provides the state it names.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .discord_models import (
    ALL_PERMISSIONS,
    CHANNEL_PUBLIC_THREAD,
    DEFAULT_MEMBER_PERMISSIONS,
    DISCORD_EPOCH_MS,
    INTENT_GUILD_MEMBERS,
    SnowflakeMinter,
)

if TYPE_CHECKING:
    from .discord_gateway import Gateway
    from .discord_world import World


class WorldSetup:
    """What a test may change about the emulated world, before or while the bot runs."""

    minter: SnowflakeMinter
    world: World
    gateway: Gateway
    bot_user_id: int
    owner_id: int
    guild_id: int

    def mint_snowflake(self, at: float | None = None) -> int:
        """A new unique snowflake whose timestamp is `at` (unix time; default now)."""
        return self.minter.mint(at)

    def guild_filesize_limit(self, guild_id: int | None) -> int:
        """Per-file upload limit for bot-token posts: by boost tier (10/10/50/100 MiB); 10 MiB in DMs."""
        return self.world.filesize_limit(guild_id)

    def add_guild(
        self, name: str = "Emulated Guild", premium_tier: int = 0, *, shard: tuple[int, int] | None = None
    ) -> int:
        """A guild with the bot and `owner_id` as members. Connected clients get GUILD_CREATE.

        ``shard=(id, count)``: its id is chosen so Discord routes its events to that shard."""
        at = None
        if shard is not None:
            shard_id, count = shard
            ms = int(time.time() * 1000) - DISCORD_EPOCH_MS
            at = (ms + (shard_id - ms) % count + DISCORD_EPOCH_MS + 0.5) / 1000.0  # (id >> 22) is the ms part
        guild = self.world.new_guild(name, premium_tier, self.owner_id, at=at)
        self.world.add_member(guild.id, self.bot_user_id, permissions=0, roles=[])
        self.world.add_member(guild.id, self.owner_id, permissions=ALL_PERMISSIONS, roles=[])
        self.gateway.dispatch(
            "GUILD_CREATE",
            lambda s: self.world.guild_json(
                guild.id, full=True, include_members=bool(s.intents & INTENT_GUILD_MEMBERS)
            ),
        )
        return guild.id

    def set_premium_tier(self, guild_id: int, premium_tier: int) -> None:
        """Change a guild's boost tier (and so its upload limit). Connected clients get GUILD_UPDATE."""
        self.world.guilds[guild_id].premium_tier = premium_tier
        self.gateway.dispatch("GUILD_UPDATE", self.world.guild_json(guild_id))

    def add_channel(
        self,
        guild_id: int,
        name: str,
        *,
        bot_permissions: int | None = None,
        thread_parent_id: int | None = None,
    ) -> int:
        """A text channel, or a public thread (type 11) of `thread_parent_id`. Threads inherit the parent's
        bot permissions unless `bot_permissions` is given. Connected clients get CHANNEL_CREATE/THREAD_CREATE."""
        if thread_parent_id is not None:
            if self.world.channels[thread_parent_id].guild_id != guild_id:
                raise ValueError(f"thread parent {thread_parent_id} is not in guild {guild_id}")
            channel = self.world.new_channel(
                guild_id, name, type=CHANNEL_PUBLIC_THREAD, bot_permissions=bot_permissions, parent_id=thread_parent_id
            )
            self.gateway.dispatch("THREAD_CREATE", self.world.channel_json(channel.id) | {"newly_created": True})
        else:
            channel = self.world.new_channel(guild_id, name, bot_permissions=bot_permissions)
            self.gateway.dispatch("CHANNEL_CREATE", self.world.channel_json(channel.id))
        return channel.id

    def add_user(
        self,
        name: str,
        *,
        guild_id: int | None = None,
        permissions: int = DEFAULT_MEMBER_PERMISSIONS,
        roles: Sequence[int] = (),
        bot: bool = False,
    ) -> int:
        """A user who is a member of `guild_id` (None: the default guild; 0: no guild at all).
        `permissions` is what interactions report as `member.permissions`."""
        user = self.world.new_user(name, bot=bot)
        gid = self.guild_id if guild_id is None else guild_id
        if gid:
            self.add_member(gid, user.id, permissions=permissions, roles=roles)
        return user.id

    def add_member(
        self, guild_id: int, user_id: int, *, permissions: int = DEFAULT_MEMBER_PERMISSIONS, roles: Sequence[int] = ()
    ) -> None:
        """Make an existing user a member of another guild. Clients with the members intent get GUILD_MEMBER_ADD."""
        self.world.add_member(guild_id, user_id, permissions=permissions, roles=list(roles))
        self.gateway.dispatch(
            "GUILD_MEMBER_ADD",
            self.world.member_json(guild_id, user_id) | {"guild_id": str(guild_id)},
            intent=INTENT_GUILD_MEMBERS,
        )

    def add_role(self, guild_id: int, name: str, permissions: int = 0) -> int:
        role = self.world.new_role(guild_id, name, permissions)
        self.gateway.dispatch("GUILD_ROLE_CREATE", {"guild_id": str(guild_id), "role": self.world.role_json(role)})
        return role.id

    def add_bot_role(self, guild_id: int, name: str = "emulated-bot", permissions: int = 0) -> int:
        """The bot's managed role, as Discord makes it when a bot joins with permissions (tags.bot_id, so
        discord.py's `guild.self_role` finds it), given to the bot. `<@&id>` of it in a message's content
        lands in `mention_roles` like any role mention. Connected clients get GUILD_ROLE_CREATE."""
        role = self.world.new_role(guild_id, name, permissions, bot_id=self.bot_user_id)
        self.gateway.dispatch("GUILD_ROLE_CREATE", {"guild_id": str(guild_id), "role": self.world.role_json(role)})
        self.give_role(guild_id, self.bot_user_id, role.id)
        return role.id

    def set_role_permissions(self, guild_id: int, role_id: int, permissions: int) -> None:
        """Change a role's server-wide permissions (the @everyone role's id is the guild's). Connected clients get
        GUILD_ROLE_UPDATE. What REST enforces stays per channel (`set_bot_permissions`)."""
        role = self.world.guilds[guild_id].roles[role_id]
        role.permissions = permissions
        self.gateway.dispatch("GUILD_ROLE_UPDATE", {"guild_id": str(guild_id), "role": self.world.role_json(role)})

    def give_role(self, guild_id: int, user_id: int, role_id: int) -> None:
        """Add a role to a member (the bot included). Clients with the members intent get GUILD_MEMBER_UPDATE."""
        member = self.world.guilds[guild_id].members[user_id]
        if role_id not in self.world.guilds[guild_id].roles:
            raise KeyError(f"role {role_id} is not in guild {guild_id}")
        if role_id not in member.roles:
            member.roles.append(role_id)
        self.gateway.dispatch(
            "GUILD_MEMBER_UPDATE",
            self.world.member_json(guild_id, user_id) | {"guild_id": str(guild_id)},
            intent=INTENT_GUILD_MEMBERS,
        )

    def set_bot_permissions(self, channel_id: int, permissions: int) -> None:
        """The bot's permissions in a channel (enforced on REST, reported as app_permissions). Text channels also
        get a CHANNEL_UPDATE so discord.py's `channel.permissions_for(guild.me)` agrees."""
        channel = self.world.channels[channel_id]
        channel.bot_permissions = permissions
        if not channel.is_thread and not channel.is_dm:
            self.gateway.dispatch("CHANNEL_UPDATE", self.world.channel_json(channel_id))

    def set_user_permissions(self, guild_id: int, user_id: int, permissions: int) -> None:
        """What interactions from this member report as `member.permissions`."""
        self.world.guilds[guild_id].members[user_id].permissions = permissions

    def close_dms(self, user_id: int) -> None:
        """DMs to this user answer 403 / 50007 "Cannot send messages to this user"."""
        self.world.users[user_id].dms_closed = True

    def dm_channel(self, user_id: int) -> int:
        """The id of the bot's DM channel with `user_id` (created on first use)."""
        return self.world.dm_channel(user_id).id

    def add_attachment(
        self,
        data: bytes,
        filename: str,
        content_type: str | None = None,
        *,
        description: str | None = None,
        width: int | None = None,
        height: int | None = None,
        duration_secs: float | None = None,
    ) -> dict[str, Any]:
        """Store a file a user uploads; returns its Discord attachment object (served at its `url`).
        Pass it as a slash option value or in `user_message(attachments=[...])`."""
        att = self.world.new_attachment(
            data,
            filename,
            content_type,
            description=description,
            width=width,
            height=height,
            duration_secs=duration_secs,
        )
        return att.to_json()
