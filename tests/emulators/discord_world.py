"""The emulated Discord world: users, guilds, roles, channels, messages, attachments, and who may do what.

Its JSON shapes are in ``discord_payloads``, a mixin of `World`.
"""

from __future__ import annotations

import secrets
import time
from typing import Any
from urllib.parse import quote

from .discord_models import (
    ADMINISTRATOR,
    ALL_PERMISSIONS,
    CHANNEL_DM,
    CHANNEL_PUBLIC_THREAD,
    CHANNEL_TEXT,
    DEFAULT_BOT_PERMISSIONS,
    DEFAULT_MEMBER_PERMISSIONS,
    AttachmentRecord,
    ChannelState,
    GuildState,
    MemberState,
    MessageRecord,
    RoleState,
    SnowflakeMinter,
    UserState,
    filesize_limit_for_tier,
    infer_content_type,
)
from .discord_payloads import Payloads


class World(Payloads):
    """Plain state of the emulated Discord (its JSON comes from `Payloads`). Mutated only by the emulator."""

    def __init__(self, *, minter: SnowflakeMinter, http_base: str, application_id: int, bot_user_id: int) -> None:
        self.minter = minter
        self.http_base = http_base  # "http://127.0.0.1:PORT"
        self.application_id = application_id
        self.bot_user_id = bot_user_id
        self.users: dict[int, UserState] = {}
        self.guilds: dict[int, GuildState] = {}
        self.channels: dict[int, ChannelState] = {}
        self.messages: dict[int, MessageRecord] = {}
        self.attachments: dict[int, AttachmentRecord] = {}
        # interaction id -> the `interaction_metadata` object messages created for it carry
        self.interaction_metadata: dict[int, dict[str, Any]] = {}

    # --- construction ------------------------------------------------------------------------------
    def new_user(self, name: str, *, bot: bool = False, user_id: int | None = None) -> UserState:
        user = UserState(id=user_id or self.minter.mint(), username=name, bot=bot)
        self.users[user.id] = user
        return user

    def new_guild(self, name: str, premium_tier: int, owner_id: int, *, at: float | None = None) -> GuildState:
        gid = self.minter.mint(at)  # ``at`` picks the id's time part, and so its shard: (id >> 22) % count
        guild = GuildState(id=gid, name=name, premium_tier=premium_tier, owner_id=owner_id, created_at=time.time())
        # The @everyone role shares the guild's id.
        guild.roles[gid] = RoleState(
            id=gid, guild_id=gid, name="@everyone", permissions=DEFAULT_MEMBER_PERMISSIONS, position=0
        )
        self.guilds[gid] = guild
        return guild

    def new_role(self, guild_id: int, name: str, permissions: int, *, bot_id: int | None = None) -> RoleState:
        guild = self.guilds[guild_id]
        role = RoleState(
            id=self.minter.mint(),
            guild_id=guild_id,
            name=name,
            permissions=permissions,
            position=len(guild.roles),
            bot_id=bot_id,
        )
        guild.roles[role.id] = role
        return role

    def add_member(self, guild_id: int, user_id: int, *, permissions: int, roles: list[int]) -> MemberState:
        guild = self.guilds[guild_id]
        for role_id in roles:
            if role_id not in guild.roles:
                raise KeyError(f"role {role_id} is not in guild {guild_id}")
        member = MemberState(user_id=user_id, roles=list(roles), permissions=permissions, joined_at=time.time())
        guild.members[user_id] = member
        return member

    def new_channel(
        self,
        guild_id: int | None,
        name: str,
        *,
        type: int = CHANNEL_TEXT,
        bot_permissions: int | None = None,
        parent_id: int | None = None,
        recipient_id: int | None = None,
    ) -> ChannelState:
        position = 0
        if guild_id is not None:
            position = len(self.guilds[guild_id].channel_ids)
        if type == CHANNEL_TEXT and bot_permissions is None:
            bot_permissions = DEFAULT_BOT_PERMISSIONS
        channel = ChannelState(
            id=self.minter.mint(),
            type=type,
            name=name,
            guild_id=guild_id,
            position=position,
            parent_id=parent_id,
            bot_permissions=bot_permissions,
            recipient_id=recipient_id,
            owner_id=self.bot_user_id if type == CHANNEL_PUBLIC_THREAD else None,
        )
        self.channels[channel.id] = channel
        if guild_id is not None:
            self.guilds[guild_id].channel_ids.append(channel.id)
        return channel

    def dm_channel(self, user_id: int) -> ChannelState:
        """The bot's DM channel with `user_id`, created on first use."""
        user = self.users[user_id]
        if user.dm_channel_id is None:
            channel = self.new_channel(None, "", type=CHANNEL_DM, recipient_id=user_id)
            user.dm_channel_id = channel.id
        return self.channels[user.dm_channel_id]

    def new_attachment(
        self,
        data: bytes,
        filename: str,
        content_type: str | None = None,
        *,
        description: str | None = None,
        title: str | None = None,
        width: int | None = None,
        height: int | None = None,
        duration_secs: float | None = None,
    ) -> AttachmentRecord:
        aid = self.minter.mint()
        now = int(time.time())
        signature = secrets.token_hex(16)
        url = f"{self.http_base}/attachments/{aid}/{quote(filename)}?ex={now + 86400:x}&is={now:x}&hm={signature}&"
        att = AttachmentRecord(
            id=aid,
            filename=filename,
            content_type=content_type if content_type is not None else infer_content_type(filename),
            data=data,
            url=url,
            description=description,
            title=title,
            width=width,
            height=height,
            duration_secs=duration_secs,
            spoiler=filename.startswith("SPOILER_"),
        )
        self.attachments[aid] = att
        return att

    # --- lookups -----------------------------------------------------------------------------------
    def bot_permissions(self, channel_id: int) -> int:
        """The bot's computed permissions in a channel (threads inherit their parent unless overridden)."""
        channel = self.channels[channel_id]
        if channel.is_dm:
            return ALL_PERMISSIONS
        if channel.bot_permissions is not None:
            return channel.bot_permissions
        if channel.parent_id is not None:
            return self.bot_permissions(channel.parent_id)
        return DEFAULT_BOT_PERMISSIONS

    def base_permissions(self, guild_id: int, user_id: int) -> int:
        """A member's server-wide permissions from @everyone and their roles (owners and admins: all)."""
        guild = self.guilds[guild_id]
        if guild.owner_id == user_id:
            return ALL_PERMISSIONS
        permissions = guild.roles[guild_id].permissions
        for role_id in guild.members[user_id].roles:
            permissions |= guild.roles[role_id].permissions
        return ALL_PERMISSIONS if permissions & ADMINISTRATOR else permissions

    def filesize_limit(self, guild_id: int | None) -> int:
        if guild_id is None:
            return filesize_limit_for_tier(0)
        return filesize_limit_for_tier(self.guilds[guild_id].premium_tier)
