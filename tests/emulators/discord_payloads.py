"""The emulated world as JSON, in the complete shapes discord.py 2.7 parses.

A missing key inside a gateway dispatch raises inside discord.py's parser and kills the client, so every
builder fills every field. A mixin of `World`, which holds the state these read.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .discord_models import (
    ALL_PERMISSIONS,
    CHANNEL_TEXT,
    DEFAULT_BOT_PERMISSIONS,
    ChannelState,
    GuildState,
    MessageRecord,
    RoleState,
    UserState,
    iso_time,
)

Visibility = Callable[[MessageRecord], bool]


class Payloads:
    """JSON for users, members, roles, channels, guilds and messages."""

    application_id: int
    bot_user_id: int
    users: dict[int, UserState]
    guilds: dict[int, GuildState]
    channels: dict[int, ChannelState]
    messages: dict[int, MessageRecord]
    interaction_metadata: dict[int, dict[str, Any]]

    def user_json(self, user_id: int) -> dict[str, Any]:
        user = self.users[user_id]
        out: dict[str, Any] = {
            "id": str(user.id),
            "username": user.username,
            "discriminator": "0",
            "global_name": None if user.bot else user.username.title(),
            "avatar": None,
            "public_flags": 0,
            "flags": 0,
        }
        if user.bot:
            out["bot"] = True
        return out

    def member_json(
        self, guild_id: int, user_id: int, *, with_user: bool = True, permissions: int | None = None
    ) -> dict[str, Any]:
        member = self.guilds[guild_id].members[user_id]
        out: dict[str, Any] = {
            "roles": [str(r) for r in member.roles],
            "joined_at": iso_time(member.joined_at),
            "premium_since": None,
            "deaf": False,
            "mute": False,
            "pending": False,
            "nick": None,
            "avatar": None,
            "banner": None,
            "flags": 0,
            "communication_disabled_until": None,
        }
        if with_user:
            out["user"] = self.user_json(user_id)
        if permissions is not None:
            out["permissions"] = str(permissions)
        return out

    @staticmethod
    def role_json(role: RoleState) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": str(role.id),
            "name": role.name,
            "permissions": str(role.permissions),
            "position": role.position,
            "color": 0,
            "colors": {"primary_color": 0, "secondary_color": None, "tertiary_color": None},
            "hoist": False,
            "icon": None,
            "unicode_emoji": None,
            "managed": role.bot_id is not None,
            "mentionable": False,
            "flags": 0,
        }
        if role.bot_id is not None:
            out["tags"] = {"bot_id": str(role.bot_id)}
        return out

    def channel_json(self, channel_id: int, *, permissions: int | None = None) -> dict[str, Any]:
        """A channel object; `permissions` adds the field interactions carry (the invoker's permissions)."""
        ch = self.channels[channel_id]
        out: dict[str, Any] = {
            "id": str(ch.id),
            "type": ch.type,
            "last_message_id": str(ch.last_message_id) if ch.last_message_id else None,
            "flags": 0,
        }
        if ch.is_dm:
            assert ch.recipient_id is not None
            out["recipients"] = [self.user_json(ch.recipient_id)]
        else:
            out.update({"guild_id": str(ch.guild_id), "name": ch.name, "rate_limit_per_user": 0, "nsfw": False})
        if ch.type == CHANNEL_TEXT:
            allow = ch.bot_permissions if ch.bot_permissions is not None else DEFAULT_BOT_PERMISSIONS
            out.update(
                {
                    "position": ch.position,
                    "parent_id": None,
                    "topic": None,
                    "default_auto_archive_duration": 1440,
                    # The bot's channel permissions as a member overwrite, so that discord.py's
                    # channel.permissions_for(guild.me) agrees with what the emulator enforces.
                    "permission_overwrites": [
                        {
                            "id": str(self.bot_user_id),
                            "type": 1,
                            "allow": str(allow),
                            "deny": str(ALL_PERMISSIONS & ~allow),
                        }
                    ],
                }
            )
        elif ch.is_thread:
            out.update(
                {
                    "parent_id": str(ch.parent_id),
                    "owner_id": str(ch.owner_id or self.bot_user_id),
                    "message_count": sum(1 for m in self.messages.values() if m.channel_id == ch.id),
                    "total_message_sent": sum(1 for m in self.messages.values() if m.channel_id == ch.id),
                    "member_count": 1,
                    "thread_metadata": {
                        "archived": False,
                        "auto_archive_duration": 1440,
                        "archive_timestamp": iso_time(ch.created_at),
                        "locked": False,
                        "create_timestamp": iso_time(ch.created_at),
                    },
                }
            )
        if permissions is not None:
            out["permissions"] = str(permissions)
        return out

    def guild_json(self, guild_id: int, *, full: bool = False, include_members: bool = True) -> dict[str, Any]:
        """GET /guilds/{id} shape, or the complete GUILD_CREATE when `full`."""
        guild = self.guilds[guild_id]
        out: dict[str, Any] = {
            "id": str(guild.id),
            "name": guild.name,
            "icon": None,
            "splash": None,
            "discovery_splash": None,
            "banner": None,
            "description": None,
            "owner_id": str(guild.owner_id),
            "afk_channel_id": None,
            "afk_timeout": 300,
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "mfa_level": 0,
            "nsfw_level": 0,
            "premium_tier": guild.premium_tier,
            "premium_subscription_count": {0: 0, 1: 2, 2: 7, 3: 14}.get(guild.premium_tier, 0),
            "premium_progress_bar_enabled": False,
            "preferred_locale": "en-US",
            "features": [],
            "system_channel_id": None,
            "system_channel_flags": 0,
            "rules_channel_id": None,
            "public_updates_channel_id": None,
            "safety_alerts_channel_id": None,
            "vanity_url_code": None,
            "application_id": None,
            "max_members": 500000,
            "roles": [self.role_json(r) for r in guild.roles.values()],
            "emojis": [],
            "stickers": [],
        }
        if full:
            channels = [self.channels[c] for c in guild.channel_ids]
            members = list(guild.members) if include_members else [self.bot_user_id]
            out.update(
                {
                    "unavailable": False,
                    "large": False,
                    "lazy": True,
                    "joined_at": iso_time(guild.members[self.bot_user_id].joined_at),
                    "member_count": len(guild.members),
                    "channels": [self.channel_json(c.id) for c in channels if not c.is_thread],
                    "threads": [self.channel_json(c.id) for c in channels if c.is_thread],
                    "members": [self.member_json(guild.id, uid) for uid in members if uid in guild.members],
                    "presences": [],
                    "voice_states": [],
                    "stage_instances": [],
                    "guild_scheduled_events": [],
                    "soundboard_sounds": [],
                }
            )
        return out

    def message_json(self, msg: MessageRecord, *, visible: Visibility | None = None) -> dict[str, Any]:
        """A complete message object. `visible(msg)` False strips content, embeds, attachments and components
        (what a client without the MESSAGE_CONTENT intent receives); it is applied to `referenced_message` too."""
        shown = visible is None or visible(msg)
        out: dict[str, Any] = {
            "id": str(msg.id),
            "channel_id": str(msg.channel_id),
            "type": msg.type,
            "content": msg.content if shown else "",
            "author": self.user_json(msg.author_id),
            "timestamp": iso_time(msg.created_at),
            "edited_timestamp": iso_time(msg.edited_at) if msg.edited_at else None,
            "tts": msg.tts,
            "mention_everyone": msg.mention_everyone,
            "mentions": [self._mention_json(msg.guild_id, u) for u in msg.mentions if u in self.users],
            "mention_roles": [str(r) for r in msg.mention_roles],
            "attachments": [a.to_json() for a in msg.attachments] if shown else [],
            "embeds": msg.embeds if shown else [],
            "components": msg.components if shown else [],
            "pinned": False,
            "flags": msg.flags,
        }
        if msg.guild_id is not None:
            out["guild_id"] = str(msg.guild_id)
            guild = self.guilds.get(msg.guild_id)
            if guild is not None and msg.author_id in guild.members and msg.webhook_id is None:
                out["member"] = self.member_json(msg.guild_id, msg.author_id, with_user=False)
        if msg.nonce is not None:
            out["nonce"] = msg.nonce
        if msg.webhook_id is not None:
            out["webhook_id"] = str(msg.webhook_id)
            out["application_id"] = str(self.application_id)
        if msg.interaction_id is not None:
            meta = self.interaction_metadata.get(msg.interaction_id)
            if meta is not None:
                out["interaction_metadata"] = meta
        if msg.message_reference is not None:
            out["message_reference"] = msg.message_reference
            ref_id = int(msg.message_reference["message_id"])
            ref = self.messages.get(ref_id)
            if ref is None or ref.deleted:
                out["referenced_message"] = None
            else:
                out["referenced_message"] = self.message_json_shallow(ref, visible=visible)
        return out

    def _mention_json(self, guild_id: int | None, user_id: int) -> dict[str, Any]:
        out = self.user_json(user_id)
        if guild_id is not None and user_id in self.guilds[guild_id].members:
            out["member"] = self.member_json(guild_id, user_id, with_user=False)
        return out

    def message_json_shallow(self, msg: MessageRecord, *, visible: Visibility | None) -> dict[str, Any]:
        """A referenced message: complete, but without its own `referenced_message` (as Discord does)."""
        out = self.message_json(msg, visible=visible)
        out.pop("referenced_message", None)
        return out
