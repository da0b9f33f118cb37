"""Building INTERACTION_CREATE payloads the way Discord does, for the emulator's drivers.

Option values are checked against the synced command definitions (the last PUT of commands), so a test
cannot send what Discord's client would never send; payloads carry every key discord.py 2.7 reads.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .discord_models import (
    ADMINISTRATOR,
    INTERACTION_APPLICATION_COMMAND,
    OPTION_ATTACHMENT,
    OPTION_BOOLEAN,
    OPTION_CHANNEL,
    OPTION_INTEGER,
    OPTION_MENTIONABLE,
    OPTION_NUMBER,
    OPTION_ROLE,
    OPTION_STRING,
    OPTION_USER,
    InteractionRecord,
    MessageRecord,
    snowflake_time,
)

if TYPE_CHECKING:
    from .discord_emulator import DiscordEmulator


class InteractionFactory:
    """Finds synced commands, encodes options and modal values, and dispatches interactions."""

    def __init__(self, emulator: DiscordEmulator) -> None:
        self.emu = emulator
        self.world = emulator.world

    def find_command(
        self, name: str, ctype: int, guild_id: int | None, user_id: int | None = None
    ) -> tuple[dict[str, Any], str | int]:
        """The synced command a person could run here: guild commands first, then global ones, honouring
        `contexts` / `dm_permission` and `default_member_permissions` as Discord's client does."""
        scopes: list[str | int] = [guild_id, "global"] if guild_id is not None else ["global"]
        for scope in scopes:
            for cmd in self.emu.commands.get(scope, []):
                if cmd.get("name") == name and cmd.get("type", 1) == ctype:
                    self.check_visible(cmd, guild_id, user_id or self.emu.user_id)
                    return cmd, scope
        known = {s: [(c.get("name"), c.get("type")) for c in cmds] for s, cmds in self.emu.commands.items()}
        raise LookupError(f"no synced command {name!r} of type {ctype} for guild {guild_id}; synced: {known}")

    def check_visible(self, cmd: dict[str, Any], guild_id: int | None, user_id: int) -> None:
        name = cmd.get("name")
        contexts = cmd.get("contexts")
        context = 0 if guild_id is not None else 1
        if contexts is not None and context not in contexts:
            raise ValueError(f"command {name!r} is not available in context {context} (contexts={contexts})")
        if guild_id is None and cmd.get("dm_permission") is False:
            raise ValueError(f"command {name!r} has dm_permission=false")
        required = cmd.get("default_member_permissions")
        if name in self.emu.open_to_everyone:
            required = None  # the server overrode the default in Server Settings > Integrations
        if guild_id is not None and required is not None:
            members = self.world.guilds[guild_id].members
            perms = members[user_id].permissions if user_id in members else 0
            need = int(required)
            if not perms & ADMINISTRATOR and (need == 0 or need & ~perms):
                raise ValueError(
                    f"Discord would not show {name!r} to user {user_id}: default_member_permissions={required}, "
                    f"member permissions={perms} (use set_user_permissions)"
                )

    def member_partial(self, guild_id: int, user_id: int) -> dict[str, Any]:
        perms = self.world.guilds[guild_id].members[user_id].permissions
        return self.world.member_json(guild_id, user_id, with_user=False, permissions=perms)

    def build_options(
        self,
        defs: list[dict[str, Any]],
        values: Mapping[str, Any],
        guild_id: int | None,
        resolved: dict[str, dict[str, Any]],
    ) -> list[dict[str, Any]]:
        by_name = {d["name"]: d for d in defs}
        unknown = [n for n in values if n not in by_name]
        if unknown:
            raise ValueError(f"unknown options {unknown}; the command defines {list(by_name)}")
        missing = [d["name"] for d in defs if d.get("required") and d["name"] not in values]
        if missing:
            raise ValueError(f"required options missing: {missing}")
        out: list[dict[str, Any]] = []
        for name, value in values.items():
            d = by_name[name]
            out.append({"name": name, "type": d["type"], "value": self.encode_option(d, value, guild_id, resolved)})
        return out

    def encode_option(
        self, d: dict[str, Any], value: Any, guild_id: int | None, resolved: dict[str, dict[str, Any]]
    ) -> Any:
        otype, name = d["type"], d["name"]

        def fail(why: str) -> ValueError:
            return ValueError(f"option {name!r} (type {otype}): {why}; got {value!r}")

        choices = [c["value"] for c in d.get("choices") or []]
        if otype == OPTION_STRING:
            if not isinstance(value, str):
                raise fail("expects str")
            if not int(d.get("min_length", 0)) <= len(value) <= int(d.get("max_length", 6000)):
                raise fail("length out of min_length/max_length")
        elif otype in (OPTION_INTEGER, OPTION_NUMBER):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise fail("expects a number")
            if otype == OPTION_INTEGER and not isinstance(value, int):
                raise fail("expects int")
            if ("min_value" in d and value < d["min_value"]) or ("max_value" in d and value > d["max_value"]):
                raise fail("out of min_value/max_value")
        elif otype == OPTION_BOOLEAN:
            if not isinstance(value, bool):
                raise fail("expects bool")
        elif otype == OPTION_ATTACHMENT:
            if not isinstance(value, dict) or int(value.get("id", 0)) not in self.world.attachments:
                raise fail("expects an attachment dict from add_attachment()")
            resolved.setdefault("attachments", {})[str(value["id"])] = dict(value) | {"ephemeral": True}
            return str(value["id"])
        elif otype in (OPTION_USER, OPTION_CHANNEL, OPTION_ROLE, OPTION_MENTIONABLE):
            kind, ident = (
                value if isinstance(value, tuple) else ({6: "user", 7: "channel", 8: "role"}.get(otype), value)
            )
            wanted = {6: ("user",), 7: ("channel",), 8: ("role",), 9: ("user", "role")}[otype]
            if kind not in wanted or not isinstance(ident, int):
                raise fail(f"expects ({' or '.join(repr(w) for w in wanted)}, id)")
            self.resolve_entity(kind, ident, guild_id, resolved, d)
            return str(ident)
        else:
            raise fail("unsupported option type")
        if choices and value not in choices:
            raise fail(f"not one of the choices {choices}")
        return value

    def resolve_entity(
        self, kind: str, ident: int, guild_id: int | None, resolved: dict[str, dict[str, Any]], d: dict[str, Any]
    ) -> None:
        if kind == "user":
            if ident not in self.world.users:
                raise ValueError(f"unknown user {ident}")
            resolved.setdefault("users", {})[str(ident)] = self.world.user_json(ident)
            if guild_id is not None and ident in self.world.guilds[guild_id].members:
                resolved.setdefault("members", {})[str(ident)] = self.member_partial(guild_id, ident)
        elif kind == "channel":
            channel = self.world.channels.get(ident)
            if channel is None or channel.guild_id != guild_id:
                raise ValueError(f"unknown channel {ident} in guild {guild_id}")
            types = d.get("channel_types")
            if types and channel.type not in types:
                raise ValueError(f"channel {ident} (type {channel.type}) not allowed; channel_types={types}")
            perms = self.world.bot_permissions(ident)
            resolved.setdefault("channels", {})[str(ident)] = self.world.channel_json(ident, permissions=perms)
        else:
            if guild_id is None or ident not in self.world.guilds[guild_id].roles:
                raise ValueError(f"unknown role {ident} in guild {guild_id}")
            role = self.world.guilds[guild_id].roles[ident]
            resolved.setdefault("roles", {})[str(ident)] = self.world.role_json(role)

    def modal_value(self, comp: dict[str, Any], remaining: dict[str, str]) -> dict[str, Any]:
        """One text input of a submitted modal, checked against its definition (the bot's modals hold no other)."""
        cid = comp.get("custom_id")
        if comp.get("type") != 4:
            raise ValueError(f"modal component type {comp.get('type')} is not supported by submit_modal()")
        out: dict[str, Any] = {"type": 4, "custom_id": cid}
        if "id" in comp:
            out["id"] = comp["id"]
        given = remaining.pop(cid, None) if isinstance(cid, str) else None
        if not given:
            if comp.get("required", True):
                raise ValueError(f"required text input {cid!r} needs a non-empty value")
            given = ""
        if not isinstance(given, str):
            raise ValueError(f"text input {cid!r} takes a str, got {given!r}")
        low, high = int(comp.get("min_length") or 0), int(comp.get("max_length") or 4000)
        if given and not low <= len(given) <= high:
            raise ValueError(f"text input {cid!r}: length {len(given)} outside {low}..{high}")
        out["value"] = given
        return out

    def dispatch(
        self,
        itype: int,
        data: dict[str, Any],
        *,
        user_id: int | None,
        channel_id: int,
        created_at: float | None = None,
        app_permissions: int | None = None,
        attachment_size_limit: int | None = None,
        locale: str = "en-US",
        name: str | None = None,
        custom_id: str | None = None,
        message: MessageRecord | None = None,
    ) -> InteractionRecord:
        if not self.emu.gateway.live_sessions():
            raise RuntimeError("no gateway session: start a client (run_client) before injecting interactions")
        uid = user_id or self.emu.user_id
        channel = self.world.channels[channel_id]
        gid = channel.guild_id
        iid = self.emu.mint_snowflake(created_at)
        token = "emu." + secrets.token_urlsafe(48)
        perms = self.world.bot_permissions(channel_id) if app_permissions is None else app_permissions
        limit = attachment_size_limit or self.world.filesize_limit(gid)
        payload: dict[str, Any] = {
            "id": str(iid),
            "application_id": str(self.emu.application_id),
            "type": itype,
            "token": token,
            "version": 1,
            "attachment_size_limit": limit,
            "app_permissions": str(perms),
            "locale": locale,
            "entitlements": [],
            "entitlement_sku_ids": [],
            "channel_id": str(channel_id),
            "data": data,
        }
        owners = {"0": str(gid)} if gid is not None else {"0": "0"}
        payload["authorizing_integration_owners"] = owners
        if gid is not None:
            guild = self.world.guilds[gid]
            if uid not in guild.members:
                raise ValueError(f"user {uid} is not a member of guild {gid}")
            member_perms = guild.members[uid].permissions
            payload.update(
                guild_id=str(gid),
                guild={"id": str(gid), "locale": "en-US", "features": []},
                guild_locale="en-US",
                member=self.world.member_json(gid, uid, permissions=member_perms),
                context=0,
                channel=self.world.channel_json(channel_id, permissions=member_perms),
            )
        else:
            if channel.recipient_id != uid:
                raise ValueError(f"user {uid} cannot interact in DM channel {channel_id}")
            payload.update(user=self.world.user_json(uid), context=1, channel=self.world.channel_json(channel_id))
        if message is not None:
            payload["message"] = self.world.message_json(message)
        meta: dict[str, Any] = {
            "id": str(iid),
            "type": itype,
            "user": self.world.user_json(uid),
            "authorizing_integration_owners": owners,
        }
        if itype == INTERACTION_APPLICATION_COMMAND:
            meta.update(name=name, command_type=data.get("type", 1))
            if data.get("type") == 3:
                meta["target_message_id"] = data["target_id"]
        elif message is not None:
            meta["interacted_message_id"] = str(message.id)
        self.world.interaction_metadata[iid] = meta
        record = InteractionRecord(
            id=iid,
            token=token,
            type=itype,
            user_id=uid,
            channel_id=channel_id,
            guild_id=gid,
            created_at=snowflake_time(iid),
            dispatched_at=time.monotonic(),
            payload=payload,
            attachment_size_limit=limit,
            app_permissions=perms,
            name=name,
            custom_id=custom_id,
            message_id=message.id if message is not None else None,
        )
        self.emu.interactions[iid] = record
        self.emu._interactions_by_token[token] = record
        self.emu.gateway.dispatch("INTERACTION_CREATE", payload)
        record.dispatched_at = time.monotonic()
        self.emu._notify()
        return record


def option_def(defs: list[dict[str, Any]], name: str, otype: int, where: str) -> dict[str, Any]:
    for d in defs:
        if d.get("name") == name and d.get("type") == otype:
            return d
    names = [d.get("name") for d in defs if d.get("type") == otype]
    raise ValueError(f"{where} has no subcommand {name!r}; it has {names}")
