"""What people do, as tests inject it: slash commands, context menus, button clicks, modal submits, messages.

Each driver builds the payload Discord would send (checked against the synced command definitions) and
dispatches it on the gateway; the returned record then collects what the bot did with it. A mixin of
`DiscordEmulator`, which provides the state it names.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .discord_interactions import InteractionFactory, option_def
from .discord_models import (
    INTERACTION_APPLICATION_COMMAND,
    INTERACTION_COMPONENT,
    INTERACTION_MODAL_SUBMIT,
    OPTION_SUB_COMMAND,
    AttachmentRecord,
    InteractionRecord,
    MessageRecord,
    SnowflakeMinter,
)
from .discord_rules import find_component, iter_components, parse_mentions

if TYPE_CHECKING:
    from .discord_world import World


class People:
    """The drivers: each one person doing one thing in Discord's client."""

    minter: SnowflakeMinter
    world: World
    interactions: dict[int, InteractionRecord]
    user_id: int
    guild_id: int
    channel_id: int
    _factory: InteractionFactory
    _announce: Callable[[str, MessageRecord], None]
    _notify: Callable[[], None]

    async def slash(
        self,
        name: str,
        options: Mapping[str, Any] | None = None,
        *,
        user_id: int | None = None,
        channel_id: int | None = None,
        guild_id: int | None = None,
        subcommand: str | None = None,
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
        if subcommand is not None:
            sub = option_def(defs, subcommand, OPTION_SUB_COMMAND, f"/{name}")
            inner = self._factory.build_options(sub.get("options") or [], options or {}, channel.guild_id, resolved)
            built = [{"name": subcommand, "type": 1, "options": inner}]
        else:
            if any(d.get("type") in (1, 2) for d in defs):
                raise ValueError(f"/{name} has subcommands: pass subcommand=")
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

    async def click(
        self,
        message_id: int,
        custom_id: str,
        *,
        user_id: int | None = None,
        created_at: float | None = None,
        app_permissions: int | None = None,
    ) -> InteractionRecord:
        """Click a button that is on a message (the bot sends no select menus)."""
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
        if comp["type"] != 2:
            raise ValueError(f"component type {comp['type']} is not supported by click()")
        data: dict[str, Any] = {"custom_id": custom_id, "component_type": comp["type"]}
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
        values: Mapping[str, str],
        *,
        user_id: int | None = None,
    ) -> InteractionRecord:
        """Submit the modal the bot opened (type-9 callback) on `interaction`: the text of each input, by custom_id."""
        modal = interaction.modal
        if modal is None:
            raise ValueError(
                f"the bot opened no modal on interaction {interaction.id} (ack_type={interaction.ack_type})"
            )
        remaining = dict(values)
        components: list[dict[str, Any]] = []
        for top in modal.get("components") or []:
            if top.get("type") != 1:
                raise ValueError(f"modal component type {top.get('type')} is not supported by submit_modal()")
            inner = [self._factory.modal_value(c, remaining) for c in top.get("components") or []]
            components.append({"type": 1, "components": inner})
        if remaining:
            raise ValueError(f"modal {modal.get('custom_id')!r} has no inputs {sorted(remaining)}")
        data: dict[str, Any] = {"custom_id": modal["custom_id"], "components": components}
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
            id=self.minter.mint(),
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
            nonce=str(self.minter.mint()),
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

    def _default_channel(self, guild_id: int | None) -> int:
        if guild_id is None or guild_id == self.guild_id:
            return self.channel_id
        for cid in self.world.guilds[guild_id].channel_ids:
            if not self.world.channels[cid].is_thread:
                return cid
        raise ValueError(f"guild {guild_id} has no text channel: pass channel_id")
