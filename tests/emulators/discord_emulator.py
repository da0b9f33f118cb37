"""A loopback Discord emulator for end-to-end tests of a discord.py 2.7 bot.

The real `commands.Bot` talks to it over HTTP and a websocket on 127.0.0.1 (see `run_client`). Tests inject
what people do (`slash`, `autocomplete`, `message_command`, `user_command`, `click`, `submit_modal`,
`user_message`), then assert on what people would see (`messages`, `interactions`, `requests`) and on
`problems` (anything that is a bug in the bot or in the emulator). Discord's rules (3 s acknowledgement,
15 min tokens, upload limits, permissions, message content intent, content/embed/component limits) answer
with Discord's real error codes.

Example::

    async with DiscordEmulator() as emu, run_client(make_bot(), emu):
        clip = emu.add_attachment(b"...", "in.mp4")
        inter = await emu.slash("video", {"prompt": "a cat", "image": clip})
        msg = await emu.wait_for_message(lambda m: m.interaction_id == inter.id and bool(m.attachments))
        assert msg.attachment("out.mp4").content_type == "video/mp4"
    assert not emu.problems

Behaviour worth knowing (all as on Discord):
- GUILD_CREATE lists every member only to clients with the GUILD_MEMBERS intent (then member_count ==
  len(members)); without it, only the bot's own member, so `guild.get_member(user)` is None.
- Every message, the bot's included, is echoed as MESSAGE_CREATE/UPDATE/DELETE to clients with the
  GUILD_MESSAGES (DIRECT_MESSAGES for DMs) intent; ephemeral messages never are.
- The first follow-up after a deferred (type 5) response resolves the "thinking" message instead of
  posting a new one; `@original` of a component interaction acknowledged with 6/7 is the clicked message.
- A channel the bot cannot view answers 403 / 50001 "Missing Access"; other missing permissions 50013.
- discord.py's `close()` leaves the gateway with code 4000, so its session stays resumable for 60 s.

Modules: `discord_models` (records, constants, validation), `discord_world` (state and JSON payloads),
`discord_rest` + `discord_messages` (REST routes), `discord_gateway`, `discord_interactions` (driver
payloads) and `discord_client` (`run_client`, `kill_client`).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import math
import re
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from aiohttp import web

from .discord_client import kill_client, run_client
from .discord_gateway import Gateway
from .discord_interactions import InteractionFactory, option_def
from .discord_models import (
    ALL_PERMISSIONS,
    CHANNEL_PUBLIC_THREAD,
    DEFAULT_MEMBER_PERMISSIONS,
    INTENT_DIRECT_MESSAGES,
    INTENT_GUILD_MEMBERS,
    INTENT_GUILD_MESSAGES,
    INTERACTION_APPLICATION_COMMAND,
    INTERACTION_AUTOCOMPLETE,
    INTERACTION_COMPONENT,
    INTERACTION_MODAL_SUBMIT,
    MIB,
    OPTION_SUB_COMMAND,
    OPTION_SUB_COMMAND_GROUP,
    AttachmentRecord,
    InteractionRecord,
    MessageRecord,
    MessageVersion,
    RequestRecord,
    SnowflakeMinter,
    find_component,
    iter_components,
    parse_mentions,
)
from .discord_rest import NONCE_WINDOW_S, Reply, RestApi
from .discord_world import Visibility, World

__all__ = [
    "AttachmentRecord",
    "DiscordEmulator",
    "InteractionRecord",
    "MessageRecord",
    "MessageVersion",
    "RequestRecord",
    "kill_client",
    "run_client",
]


@dataclass
class _LostAnswer:
    method: str
    pattern: re.Pattern[str]
    remaining: int
    reset: bool


@dataclass
class _Fault:
    method: str
    pattern: re.Pattern[str]
    status: int | None  # None: only delay
    remaining: int
    code: int
    message: str
    retry_after: float | None
    delay: float = 0.0


class DiscordEmulator:
    """Discord's REST API (under /api/v10), gateway and attachment CDN, on one loopback port.

    The port is bound in `__init__`, so URLs (`api_base_url`, attachment URLs) are valid before `start()`.
    A default world exists from the start: guild `guild_id` (premium tier 0, owned by `owner_id`), text
    channel `channel_id` ("general"), humans `user_id` and `other_user_id`, and the bot (`bot_user_id`, which
    is also `application_id`, as for every modern Discord app)."""

    def __init__(
        self,
        *,
        bot_token: str = "emulated-bot-token",
        message_content_intent_allowed: bool = True,
        ack_deadline_s: float = 3.0,
        token_lifetime_s: float = 900.0,
    ) -> None:
        self.bot_token = bot_token
        self.message_content_intent_allowed = message_content_intent_allowed
        self.ack_deadline_s = ack_deadline_s
        self.token_lifetime_s = token_lifetime_s

        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.port: int = self._sock.getsockname()[1]
        self.http_base_url = f"http://127.0.0.1:{self.port}"
        self.api_base_url = f"{self.http_base_url}/api/v10"
        self.gateway_url = f"ws://127.0.0.1:{self.port}/gateway"

        self.minter = SnowflakeMinter()
        self.application_id: int = self.minter.mint()
        self.bot_user_id: int = self.application_id
        self.world = World(
            minter=self.minter,
            http_base=self.http_base_url,
            application_id=self.application_id,
            bot_user_id=self.bot_user_id,
        )

        # Records tests assert on.
        self.requests: list[RequestRecord] = []
        self.messages: dict[int, MessageRecord] = self.world.messages
        self.interactions: dict[int, InteractionRecord] = {}
        self.commands: dict[str | int, list[dict[str, Any]]] = {}
        # Commands a server opened to everyone in Server Settings > Integrations, overriding
        # default_member_permissions: the bot must still check permissions itself.
        self.open_to_everyone: set[str] = set()
        self.gateway_log: list[dict[str, Any]] = []
        self.problems: list[str] = []

        self._interactions_by_token: dict[str, InteractionRecord] = {}
        self._faults: list[_Fault] = []
        self._lost: list[_LostAnswer] = []
        # How long `enforce_nonce` dedupes a bot's message ("a few minutes" on Discord).
        self.nonce_window_s: float = NONCE_WINDOW_S
        self._changed = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.gateway = Gateway(self)
        self.rest = RestApi(self)
        self._factory = InteractionFactory(self)

        self.world.new_user("emulated-bot", bot=True, user_id=self.bot_user_id)
        self.owner_id: int = self.world.new_user("owner").id
        self.guild_id: int = self.add_guild("Emulated Guild")
        self.channel_id: int = self.add_channel(self.guild_id, "general")
        self.user_id: int = self.add_user("alice")
        self.other_user_id: int = self.add_user("bob")

    # --- lifecycle ---------------------------------------------------------------------------------
    async def start(self) -> None:
        """Start serving on the port bound in `__init__`."""
        if self._runner is not None:
            return
        app = web.Application(client_max_size=200 * MIB)
        app.router.add_get("/gateway", self.gateway.handle)
        app.router.add_get("/gateway/", self.gateway.handle)
        app.router.add_route("*", "/{tail:.*}", self.rest.handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.SockSite(self._runner, self._sock).start()

    async def stop(self) -> None:
        """Close every gateway socket and stop serving."""
        await self.gateway.shutdown()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self._sock.close()

    async def __aenter__(self) -> DiscordEmulator:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    # --- world building ----------------------------------------------------------------------------
    def mint_snowflake(self, at: float | None = None) -> int:
        """A new unique snowflake whose timestamp is `at` (unix time; default now)."""
        return self.minter.mint(at)

    def guild_filesize_limit(self, guild_id: int | None) -> int:
        """Per-file upload limit for bot-token posts: by boost tier (10/10/50/100 MiB); 10 MiB in DMs."""
        return self.world.filesize_limit(guild_id)

    def add_guild(self, name: str = "Emulated Guild", premium_tier: int = 0) -> int:
        """A guild with the bot and `owner_id` as members. Connected clients get GUILD_CREATE."""
        guild = self.world.new_guild(name, premium_tier, self.owner_id)
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

    def open_dms(self, user_id: int) -> None:
        self.world.users[user_id].dms_closed = False

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

    # --- drivers -----------------------------------------------------------------------------------
    async def slash(
        self,
        name: str,
        options: Mapping[str, Any] | None = None,
        *,
        user_id: int | None = None,
        channel_id: int | None = None,
        guild_id: int | None = None,
        subcommand: str | None = None,
        group: str | None = None,
        created_at: float | None = None,
        app_permissions: int | None = None,
        attachment_size_limit: int | None = None,
        locale: str = "en-US",
    ) -> InteractionRecord:
        """Run a synced slash command. Option values: str/int/bool/float, an attachment dict from
        `add_attachment`, or ("user"|"channel"|"role", id) (a bare int also works for user/channel/role options).
        Values are checked against the synced definition (type, choices, ranges, required)."""
        channel_id = channel_id or self._default_channel(guild_id)
        channel = self.world.channels[channel_id]
        if guild_id is not None and guild_id != channel.guild_id:
            raise ValueError(f"channel {channel_id} is not in guild {guild_id}")
        cmd, scope = self._factory.find_command(name, 1, channel.guild_id, user_id)
        defs: list[dict[str, Any]] = cmd.get("options") or []
        resolved: dict[str, dict[str, Any]] = {}
        if group is not None:
            grp = option_def(defs, group, OPTION_SUB_COMMAND_GROUP, f"/{name}")
            sub = option_def(grp.get("options") or [], subcommand or "", OPTION_SUB_COMMAND, f"/{name} {group}")
            inner = self._factory.build_options(sub.get("options") or [], options or {}, channel.guild_id, resolved)
            built = [{"name": group, "type": 2, "options": [{"name": sub["name"], "type": 1, "options": inner}]}]
        elif subcommand is not None:
            sub = option_def(defs, subcommand, OPTION_SUB_COMMAND, f"/{name}")
            inner = self._factory.build_options(sub.get("options") or [], options or {}, channel.guild_id, resolved)
            built = [{"name": subcommand, "type": 1, "options": inner}]
        else:
            if any(d.get("type") in (1, 2) for d in defs):
                raise ValueError(f"/{name} has subcommands: pass subcommand= (and group=)")
            built = self._factory.build_options(defs, options or {}, channel.guild_id, resolved)
        data: dict[str, Any] = {"id": cmd["id"], "name": name, "type": 1, "options": built}
        if resolved:
            data["resolved"] = resolved
        if scope != "global":
            data["guild_id"] = str(scope)
        return self._factory.dispatch(
            INTERACTION_APPLICATION_COMMAND,
            data,
            user_id=user_id,
            channel_id=channel_id,
            created_at=created_at,
            app_permissions=app_permissions,
            attachment_size_limit=attachment_size_limit,
            locale=locale,
            name=name,
        )

    async def autocomplete(
        self,
        name: str,
        options: Mapping[str, Any],
        focused: str,
        *,
        user_id: int | None = None,
        channel_id: int | None = None,
        subcommand: str | None = None,
        group: str | None = None,
    ) -> InteractionRecord:
        """Type into option `focused` of a slash command (an APPLICATION_COMMAND_AUTOCOMPLETE interaction).
        The choices the bot answers with (callback type 8) land in `autocomplete_choices`."""
        channel_id = channel_id or self.channel_id
        guild_id = self.world.channels[channel_id].guild_id
        cmd, scope = self._factory.find_command(name, 1, guild_id, user_id)
        defs: list[dict[str, Any]] = cmd.get("options") or []
        if group is not None:
            defs = option_def(defs, group, OPTION_SUB_COMMAND_GROUP, f"/{name}").get("options") or []
        if subcommand is not None:
            defs = option_def(defs, subcommand, OPTION_SUB_COMMAND, f"/{name}").get("options") or []
        by_name = {d["name"]: d for d in defs}
        if focused not in by_name or not by_name[focused].get("autocomplete"):
            raise ValueError(f"option {focused!r} of /{name} is not an autocomplete option")
        built: list[dict[str, Any]] = []
        for opt_name, value in options.items():
            if opt_name not in by_name:
                raise ValueError(f"unknown option {opt_name!r}; the command defines {list(by_name)}")
            entry: dict[str, Any] = {"name": opt_name, "type": by_name[opt_name]["type"], "value": value}
            if opt_name == focused:
                entry["focused"] = True
            built.append(entry)
        if subcommand is not None:
            built = [{"name": subcommand, "type": 1, "options": built}]
        if group is not None:
            built = [{"name": group, "type": 2, "options": built}]
        data: dict[str, Any] = {"id": cmd["id"], "name": name, "type": 1, "options": built}
        if scope != "global":
            data["guild_id"] = str(scope)
        return self._factory.dispatch(INTERACTION_AUTOCOMPLETE, data, user_id=user_id, channel_id=channel_id, name=name)

    async def message_command(
        self,
        name: str,
        target_message_id: int,
        *,
        user_id: int | None = None,
        created_at: float | None = None,
        app_permissions: int | None = None,
        attachment_size_limit: int | None = None,
    ) -> InteractionRecord:
        """Run a message context-menu command on a message (the full message is in resolved.messages,
        unstripped: context menus are exempt from the message content intent)."""
        target = self.world.messages.get(target_message_id)
        if target is None or target.deleted or target.ephemeral:
            raise ValueError(f"message {target_message_id} does not exist (or is deleted/ephemeral)")
        cmd, scope = self._factory.find_command(name, 3, target.guild_id, user_id)
        data: dict[str, Any] = {
            "id": cmd["id"],
            "name": name,
            "type": 3,
            "target_id": str(target.id),
            "resolved": {"messages": {str(target.id): self.world.message_json(target)}},
        }
        if scope != "global":
            data["guild_id"] = str(scope)
        return self._factory.dispatch(
            INTERACTION_APPLICATION_COMMAND,
            data,
            user_id=user_id,
            channel_id=target.channel_id,
            created_at=created_at,
            app_permissions=app_permissions,
            attachment_size_limit=attachment_size_limit,
            name=name,
        )

    async def user_command(
        self, name: str, target_user_id: int, *, user_id: int | None = None, channel_id: int | None = None
    ) -> InteractionRecord:
        """Run a user context-menu command on a member."""
        channel_id = channel_id or self.channel_id
        guild_id = self.world.channels[channel_id].guild_id
        cmd, scope = self._factory.find_command(name, 2, guild_id, user_id)
        resolved: dict[str, dict[str, Any]] = {"users": {str(target_user_id): self.world.user_json(target_user_id)}}
        if guild_id is not None and target_user_id in self.world.guilds[guild_id].members:
            resolved["members"] = {str(target_user_id): self._factory.member_partial(guild_id, target_user_id)}
        data: dict[str, Any] = {
            "id": cmd["id"],
            "name": name,
            "type": 2,
            "target_id": str(target_user_id),
            "resolved": resolved,
        }
        if scope != "global":
            data["guild_id"] = str(scope)
        return self._factory.dispatch(
            INTERACTION_APPLICATION_COMMAND, data, user_id=user_id, channel_id=channel_id, name=name
        )

    async def click(
        self,
        message_id: int,
        custom_id: str,
        *,
        user_id: int | None = None,
        values: Sequence[str] | None = None,
        created_at: float | None = None,
        app_permissions: int | None = None,
    ) -> InteractionRecord:
        """Click a button (or choose `values` in a string select) that is on a message."""
        msg = self.world.messages.get(message_id)
        if msg is None or msg.deleted:
            raise ValueError(f"message {message_id} does not exist (or is deleted)")
        comp = find_component(msg.components, custom_id)
        if comp is None:
            present = [c.get("custom_id") for c in iter_components(msg.components) if c.get("custom_id")]
            raise ValueError(f"no component {custom_id!r} on message {message_id}; it has {present}")
        if comp.get("disabled"):
            raise ValueError(f"component {custom_id!r} on message {message_id} is disabled")
        owner = self.interactions.get(msg.interaction_id) if msg.interaction_id is not None else None
        if msg.ephemeral and owner is not None and (user_id or self.user_id) != owner.user_id:
            raise ValueError(f"message {message_id} is ephemeral: only user {owner.user_id} can see it")
        data: dict[str, Any] = {"custom_id": custom_id, "component_type": comp["type"]}
        if comp["type"] == 3:
            options = [o.get("value") for o in comp.get("options") or []]
            chosen = list(values or [])
            bad = [v for v in chosen if v not in options]
            if bad or not int(comp.get("min_values", 1)) <= len(chosen) <= int(comp.get("max_values", 1)):
                raise ValueError(f"invalid select values {chosen} for {custom_id!r} (options {options})")
            data["values"] = chosen
        elif comp["type"] != 2:
            raise ValueError(f"component type {comp['type']} is not supported by click()")
        return self._factory.dispatch(
            INTERACTION_COMPONENT,
            data,
            user_id=user_id,
            channel_id=msg.channel_id,
            created_at=created_at,
            app_permissions=app_permissions,
            custom_id=custom_id,
            message=msg,
        )

    async def submit_modal(
        self,
        interaction: InteractionRecord,
        values: Mapping[str, str | Sequence[str] | Sequence[dict[str, Any]]],
        *,
        user_id: int | None = None,
    ) -> InteractionRecord:
        """Submit the modal the bot opened (type-9 callback) on `interaction`. `values` are keyed by custom_id:
        text for text inputs, a list of option values for selects, a list of attachment dicts for file uploads."""
        modal = interaction.modal
        if modal is None:
            raise ValueError(
                f"the bot opened no modal on interaction {interaction.id} (ack_type={interaction.ack_type})"
            )
        remaining = dict(values)
        resolved: dict[str, dict[str, Any]] = {}
        components: list[dict[str, Any]] = []
        for top in modal.get("components") or []:
            if top.get("type") == 1:
                inner = [self._factory.modal_value(c, remaining, resolved) for c in top.get("components") or []]
                components.append({"type": 1, "components": inner})
            elif top.get("type") == 18:
                row: dict[str, Any] = {
                    "type": 18,
                    "component": self._factory.modal_value(top["component"], remaining, resolved),
                }
                if "id" in top:
                    row["id"] = top["id"]
                components.append(row)
        if remaining:
            raise ValueError(f"modal {modal.get('custom_id')!r} has no inputs {sorted(remaining)}")
        data: dict[str, Any] = {"custom_id": modal["custom_id"], "components": components}
        if resolved:
            data["resolved"] = resolved
        source = self.world.messages.get(interaction.message_id) if interaction.message_id else None
        record = self._factory.dispatch(
            INTERACTION_MODAL_SUBMIT,
            data,
            user_id=user_id or interaction.user_id,
            channel_id=interaction.channel_id,
            custom_id=modal["custom_id"],
            message=source,
            attachment_size_limit=interaction.attachment_size_limit,
        )
        record.source_interaction_id = interaction.id
        return record

    async def user_message(
        self,
        content: str,
        *,
        author_id: int | None = None,
        channel_id: int | None = None,
        attachments: Sequence[dict[str, Any]] = (),
        reply_to: int | None = None,
        mentions: Sequence[int] = (),
        ping_reply: bool = True,
        embeds: Sequence[dict[str, Any]] = (),
    ) -> MessageRecord:
        """A person posts a message; stored and dispatched as MESSAGE_CREATE (content stripped for sessions
        without the MESSAGE_CONTENT intent unless it mentions the bot or is a DM). Mentions are `mentions`
        plus `<@id>` in `content`; a reply pings the replied author when `ping_reply` (as Discord's client
        does), except replies to interaction responses."""
        author = author_id or self.user_id
        channel = self.world.channels[channel_id or self.channel_id]
        if channel.guild_id is not None and author not in self.world.guilds[channel.guild_id].members:
            raise ValueError(f"user {author} is not a member of guild {channel.guild_id}")
        if channel.is_dm and channel.recipient_id != author:
            raise ValueError(f"user {author} is not the recipient of DM channel {channel.id}")
        atts: list[AttachmentRecord] = []
        for a in attachments:
            att = self.world.attachments.get(int(a["id"]))
            if att is None:
                raise ValueError(f"attachment {a.get('id')} was not created with add_attachment()")
            atts.append(att)
        users, roles, everyone = parse_mentions(content)
        pinged = list(dict.fromkeys([*users, *mentions]))
        reference: dict[str, Any] | None = None
        if reply_to is not None:
            target = self.world.messages.get(reply_to)
            if target is None or target.deleted or target.channel_id != channel.id:
                raise ValueError(f"message {reply_to} does not exist in channel {channel.id}")
            reference = {"type": 0, "message_id": str(target.id), "channel_id": str(channel.id)}
            if channel.guild_id is not None:
                reference["guild_id"] = str(channel.guild_id)
            if (
                ping_reply
                and target.webhook_id is None
                and target.author_id != author
                and target.author_id not in pinged
            ):
                pinged.append(target.author_id)
        msg = MessageRecord(
            id=self.mint_snowflake(),
            channel_id=channel.id,
            guild_id=channel.guild_id,
            author_id=author,
            content=content,
            via="user",
            type=19 if reference else 0,
            embeds=[dict(e) for e in embeds],
            attachments=atts,
            message_reference=reference,
            mentions=[u for u in pinged if u in self.world.users],
            mention_roles=roles,
            mention_everyone=everyone,
            nonce=str(self.mint_snowflake()),
        )
        msg.record_version()
        self.world.messages[msg.id] = msg
        channel.last_message_id = msg.id
        self._announce("MESSAGE_CREATE", msg)
        return msg

    def delete_message(self, message_id: int, *, purge_attachments: bool = True) -> None:
        """A person (or a moderator) deletes a message: connected clients get MESSAGE_DELETE, and with
        `purge_attachments` its files stop being served ("This content is no longer available")."""
        msg = self.world.messages[message_id]
        msg.deleted = True
        if purge_attachments:
            for att in msg.attachments:
                self.world.attachments.pop(att.id, None)
        self._announce("MESSAGE_DELETE", msg)
        self._notify()

    # --- gateway fault injection -------------------------------------------------------------------
    def gateway_disconnect(self, code: int = 4000) -> int:
        """Close every gateway socket with `code`: 4000 etc. make discord.py RESUME; 4004/4010-4014 are fatal."""
        return self.gateway.close_connections(code)

    def gateway_reconnect(self) -> int:
        """Send op 7 RECONNECT: discord.py reconnects and RESUMEs."""
        return self.gateway.send_op(7, None)

    def gateway_invalidate_session(self, resumable: bool = False) -> int:
        """Send op 9 INVALID_SESSION (discord.py waits a hard-coded 5 s before re-identifying when False)."""
        return self.gateway.send_op(9, resumable)

    # --- REST fault injection ----------------------------------------------------------------------
    def fail_next(
        self,
        method: str,
        path_pattern: str,
        status: int,
        *,
        times: int = 1,
        code: int = 0,
        message: str = "",
        retry_after: float | None = None,
    ) -> None:
        """The next `times` requests with `method` ("*" for any) whose path (e.g. "/api/v10/channels/1/messages")
        matches the regex `path_pattern` (re.search) get `status` instead of being handled. A 429 carries a
        `Via` header and `{message, retry_after, global: false}` so discord.py sleeps and retries it."""
        self._faults.append(_Fault(method.upper(), re.compile(path_pattern), status, times, code, message, retry_after))

    def delay_next(self, method: str, path_pattern: str, seconds: float, *, times: int = 1) -> None:
        """The next `times` matching requests (same matching as `fail_next`) are answered normally, but only
        after `seconds` (slow uploads, a sluggish API, acknowledgements that miss the deadline...)."""
        self._faults.append(_Fault(method.upper(), re.compile(path_pattern), None, times, 0, "", None, seconds))

    def lose_next_answer(self, method: str, path_pattern: str, *, times: int = 1, reset: bool = False) -> None:
        """The next `times` matching requests are carried out (a message really is posted), but the client never
        hears the answer: it gets a 500 instead, or with `reset` the connection is dropped. This is Discord
        accepting an upload while the bot's side of the line fails, the case nonces exist for."""
        self._lost.append(_LostAnswer(method.upper(), re.compile(path_pattern), times, reset))

    def _take_lost_answer(self, method: str, path: str) -> _LostAnswer | None:
        for lost in self._lost:
            if lost.method in ("*", method.upper()) and lost.pattern.search(path):
                lost.remaining -= 1
                if lost.remaining <= 0:
                    self._lost.remove(lost)
                return lost
        return None

    async def _apply_fault(self, method: str, path: str) -> Reply | None:
        """Consume the first matching injected fault: sleep for a delay, or return the injected answer."""
        for fault in self._faults:
            if fault.method not in ("*", method.upper()) or not fault.pattern.search(path):
                continue
            fault.remaining -= 1
            if fault.remaining <= 0:
                self._faults.remove(fault)
            if fault.status is None:
                await asyncio.sleep(fault.delay)
                return None
            if fault.status == 429:
                retry_after = 0.05 if fault.retry_after is None else fault.retry_after
                body: dict[str, Any] = {
                    "message": fault.message or "You are being rate limited.",
                    "retry_after": retry_after,
                    "global": False,
                }
                if fault.code:
                    body["code"] = fault.code
                headers = {
                    "Via": "1.1 google",
                    "Retry-After": str(max(1, math.ceil(retry_after))),
                    "X-RateLimit-Scope": "user",
                }
                return Reply(429, body, headers=headers)
            return Reply(fault.status, {"message": fault.message or f"{fault.status}: injected", "code": fault.code})
        return None

    # --- queries and waiting -----------------------------------------------------------------------
    def messages_in(self, channel_id: int) -> list[MessageRecord]:
        """Messages in a channel that are not deleted (ephemeral ones included), in creation order."""
        return [m for m in self.world.messages.values() if m.channel_id == channel_id and not m.deleted]

    def errors(self) -> list[RequestRecord]:
        """Every request the emulator answered with a status >= 400."""
        return [r for r in self.requests if r.status >= 400]

    def requests_matching(self, method: str, path_pattern: str) -> list[RequestRecord]:
        """Requests with `method` ("*" for any) whose path matches the regex (re.search)."""
        pattern = re.compile(path_pattern)
        return [r for r in self.requests if method in ("*", r.method) and pattern.search(r.path)]

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        """Wait until `predicate()` is true; it is re-evaluated whenever any record changes (and every 50 ms,
        for predicates about the bot's own state). Raises AssertionError describing the emulator on timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate():
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(self._describe_timeout(predicate, timeout))
            event = self._changed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), min(remaining, 0.05))

    async def wait_for_message(
        self, predicate: Callable[[MessageRecord], bool], timeout: float = 10.0
    ) -> MessageRecord:
        """The first (in creation order) non-deleted message matching `predicate`, waiting for it if needed."""
        found: list[MessageRecord] = []

        def check() -> bool:
            for msg in self.world.messages.values():
                if not msg.deleted and predicate(msg):
                    found.append(msg)
                    return True
            return False

        check.__qualname__ = f"wait_for_message({_describe_callable(predicate)})"
        await self.wait_for(check, timeout)
        return found[0]

    # --- internals used by the gateway and REST modules --------------------------------------------
    def _problem(self, text: str) -> None:
        self.problems.append(text)
        self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def _default_channel(self, guild_id: int | None) -> int:
        if guild_id is None or guild_id == self.guild_id:
            return self.channel_id
        for cid in self.world.guilds[guild_id].channel_ids:
            if not self.world.channels[cid].is_thread:
                return cid
        raise ValueError(f"guild {guild_id} has no text channel: pass channel_id")

    def _content_exempt(self, msg: MessageRecord) -> bool:
        """Discord's MESSAGE_CONTENT exemptions: the app's own messages, DMs, and messages mentioning it."""
        return msg.author_id == self.bot_user_id or msg.guild_id is None or self.bot_user_id in msg.mentions

    def _visibility(self, has_intent: bool) -> Visibility:
        return lambda msg: has_intent or self._content_exempt(msg)

    def _announce(self, event: str, msg: MessageRecord) -> None:
        """Dispatch MESSAGE_CREATE/UPDATE/DELETE for a message to sessions with the right intent."""
        if msg.ephemeral:
            return
        intent = INTENT_GUILD_MESSAGES if msg.guild_id is not None else INTENT_DIRECT_MESSAGES
        if event == "MESSAGE_DELETE":
            data: dict[str, Any] = {"id": str(msg.id), "channel_id": str(msg.channel_id)}
            if msg.guild_id is not None:
                data["guild_id"] = str(msg.guild_id)
            self.gateway.dispatch(event, data, intent=intent)
            return
        self.gateway.dispatch(
            event, lambda s: self.world.message_json(msg, visible=self._visibility(s.message_content)), intent=intent
        )

    def _describe_timeout(self, predicate: Callable[[], bool], timeout: float) -> str:
        lines = [f"wait_for timed out after {timeout}s: {_describe_callable(predicate)}"]
        lines.append("last requests:")
        lines.extend(
            f"  {r.method} {r.path} -> {r.status}" + (f" (code {r.error_code})" if r.error_code else "")
            for r in self.requests[-10:]
        )
        lines.append("last messages:")
        for m in list(self.world.messages.values())[-6:]:
            atts = ", ".join(f"{a.filename}({a.size}B)" for a in m.attachments)
            lines.append(
                f"  {m.id} ch={m.channel_id} via={m.via} flags={m.flags} deleted={m.deleted} "
                f"content={m.content[:80]!r} embeds={len(m.embeds)} attachments=[{atts}]"
            )
        pending = [i for i in self.interactions.values() if i.ack_type is None]
        if pending:
            lines.append(
                "unacknowledged interactions: " + ", ".join(f"{i.id} ({i.name or i.custom_id})" for i in pending)
            )
        rejected = [i for i in self.interactions.values() if i.ack_rejected]
        if rejected:
            lines.append("rejected acks: " + ", ".join(f"{i.id}: {i.ack_rejected}" for i in rejected))
        connected, live = len(self.gateway.connected_sessions()), len(self.gateway.live_sessions())
        lines.append(f"gateway: {connected} connected / {live} live sessions")
        if self.problems:
            lines.append("problems:")
            lines.extend(f"  {p}" for p in self.problems)
        return "\n".join(lines)


def _describe_callable(fn: Callable[..., Any]) -> str:
    qualname = getattr(fn, "__qualname__", repr(fn))
    if "<lambda>" in qualname:
        with contextlib.suppress(OSError, TypeError):
            return inspect.getsource(fn).strip()
    return str(qualname)
