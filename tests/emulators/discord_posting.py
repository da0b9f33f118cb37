"""The emulator's routes that write and read messages: interaction callbacks, webhooks, channel messages.

These carry Discord's rules about who may post what where: the 3 s acknowledgement, interaction tokens and
their 15 minutes, the deferred "thinking" message a first follow-up resolves, permissions per channel (403
50001 / 50013), closed DMs (50007), upload limits, and the nonce Discord dedupes a bot's post by.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from .discord_messages import MessageWriter
from .discord_models import (
    ATTACH_FILES,
    EMBED_LINKS,
    FLAG_EPHEMERAL,
    FLAG_LOADING,
    FLAG_SUPPRESS_EMBEDS,
    FLAG_SUPPRESS_NOTIFICATIONS,
    INTERACTION_APPLICATION_COMMAND,
    INTERACTION_COMPONENT,
    INTERACTION_MODAL_SUBMIT,
    MANAGE_MESSAGES,
    READ_MESSAGE_HISTORY,
    SEND_MESSAGES,
    SEND_MESSAGES_IN_THREADS,
    VIEW_CHANNEL,
    ChannelState,
    FileRecord,
    InteractionRecord,
    MessageRecord,
    has_permission,
    snowflake_time,
)
from .discord_rules import (
    ApiError,
    ApiRequest,
    Reply,
    int_field,
    invalid_form,
    malformed,
    parse_snowflake,
    truthy,
    validate_modal,
)

if TYPE_CHECKING:
    from .discord_emulator import DiscordEmulator

NONCE_WINDOW_S = 300.0


class Posting:
    """The message routes. State lives on the emulator; this class holds only the logic."""

    def __init__(self, emulator: DiscordEmulator) -> None:
        self.emu = emulator
        self.world = emulator.world
        self.writer = MessageWriter(emulator)
        self._nonces: dict[tuple[int, int, str], tuple[int, float]] = {}

    # --- lookups -----------------------------------------------------------------------------------
    def _channel(self, raw_id: str) -> ChannelState:
        channel = self.world.channels.get(parse_snowflake(raw_id))
        if channel is None:
            raise ApiError(404, 10003, "Unknown Channel")
        return channel

    def _require_view(self, channel: ChannelState) -> int:
        perms = self.world.bot_permissions(channel.id)
        if not channel.is_dm and not has_permission(perms, VIEW_CHANNEL):
            raise ApiError(403, 50001, "Missing Access")
        return perms

    def _message_in(self, channel: ChannelState, raw_id: str) -> MessageRecord:
        msg = self.world.messages.get(parse_snowflake(raw_id))
        if msg is None or msg.deleted or msg.ephemeral or msg.channel_id != channel.id:
            raise ApiError(404, 10008, "Unknown Message")
        return msg

    def _interaction_for_token(self, app_id: str, token: str) -> InteractionRecord:
        if parse_snowflake(app_id) != self.world.application_id:
            raise ApiError(404, 10015, "Unknown Webhook")
        inter = self.emu._interactions_by_token.get(token)
        if inter is None:
            raise ApiError(401, 50027, "Invalid Webhook Token")
        if time.time() - snowflake_time(inter.id) > self.emu.token_lifetime_s:
            raise ApiError(401, 50027, "Invalid Webhook Token")
        if inter.ack_type is None:
            raise ApiError(404, 10015, "Unknown Webhook")
        return inter

    def _interaction_message(self, inter: InteractionRecord, raw_id: str) -> MessageRecord:
        if raw_id in ("@original", "%40original"):
            mid = inter.original_message_id
        else:
            mid = parse_snowflake(raw_id)
            if mid not in (inter.original_message_id, *inter.followup_message_ids):
                mid = None
        msg = self.world.messages.get(mid) if mid is not None else None
        if msg is None or msg.deleted:
            raise ApiError(404, 10008, "Unknown Message")
        return msg

    def _rest_visible(self, msg: MessageRecord) -> bool:
        """MESSAGE_CONTENT over REST follows the application's setting, with Discord's exemptions."""
        return self.emu.message_content_intent_allowed or self.emu._content_exempt(msg)

    def _require_attach(self, channel: ChannelState, files: list[FileRecord]) -> None:
        if files and not channel.is_dm and not has_permission(self.world.bot_permissions(channel.id), ATTACH_FILES):
            raise ApiError(403, 50013, "Missing Permissions")

    # --- interactions ------------------------------------------------------------------------------
    async def interaction_callback(self, req: ApiRequest) -> Reply:
        inter = self.emu.interactions.get(parse_snowflake(req.params["interaction_id"]))
        if inter is None or inter.token != req.params["token"]:
            raise ApiError(404, 10062, "Unknown interaction")
        body = req.body()
        cb_type = body.get("type")
        now = time.monotonic()
        latency = now - inter.dispatched_at
        if inter.ack_type is not None:
            inter.duplicate_acks.append(cb_type if isinstance(cb_type, int) else -1)
            raise ApiError(400, 40060, "Interaction has already been acknowledged.")
        if inter.ack_rejected is not None:
            raise ApiError(404, 10062, "Unknown interaction")
        if latency > self.emu.ack_deadline_s:
            inter.ack_latency_s = latency
            inter.ack_rejected = f"late: {latency:.3f}s after dispatch (deadline {self.emu.ack_deadline_s}s)"
            raise ApiError(404, 10062, "Unknown interaction")
        if not isinstance(cb_type, int):
            raise malformed(["type"], "callback type must be an integer")
        data = body.get("data") or {}
        if not isinstance(data, dict):
            raise malformed(["data"], "callback data must be an object")
        allowed = {
            INTERACTION_APPLICATION_COMMAND: (4, 5, 9),
            INTERACTION_COMPONENT: (4, 5, 6, 7, 9),
            INTERACTION_MODAL_SUBMIT: (4, 5, 6, 7),
        }.get(inter.type, ())
        if cb_type not in allowed or (cb_type in (6, 7) and inter.message_id is None):
            raise invalid_form(
                ["type"],
                "INTERACTION_CALLBACK_TYPE_INVALID",
                f"Callback type {cb_type} invalid for interaction type {inter.type}",
            )
        channel = self.world.channels[inter.channel_id]
        msg: MessageRecord | None = None
        dispatch_event: str | None = None
        if cb_type in (4, 5):
            msg_type = 0
            if inter.type == INTERACTION_APPLICATION_COMMAND:
                msg_type = 20 if inter.data.get("type", 1) == 1 else 23
            ephemeral_bit = FLAG_EPHEMERAL
            allowed_flags = (
                ephemeral_bit | FLAG_SUPPRESS_EMBEDS | FLAG_SUPPRESS_NOTIFICATIONS if cb_type == 4 else ephemeral_bit
            )
            msg = self.writer.create_message(
                channel=channel,
                body=data if cb_type == 4 else {"flags": data.get("flags", 0)},
                files=req.files if cb_type == 4 else [],
                via="interaction",
                limit=inter.attachment_size_limit,
                allowed_flags=allowed_flags,
                default_parse=("users",),
                interaction=inter,
                msg_type=msg_type,
                force_flags=FLAG_LOADING if cb_type == 5 else 0,
            )
            inter.original_message_id = msg.id
            inter.ephemeral = msg.ephemeral
            dispatch_event = "MESSAGE_CREATE"
        elif cb_type == 6:
            inter.original_message_id = inter.message_id
        elif cb_type == 7:
            assert inter.message_id is not None
            msg = self.world.messages.get(inter.message_id)
            if msg is None or msg.deleted:
                raise ApiError(404, 10008, "Unknown Message")
            self.writer.apply_edit(msg, data, req.files, limit=inter.attachment_size_limit, default_parse=("users",))
            inter.original_message_id = msg.id
            dispatch_event = "MESSAGE_UPDATE"
        elif cb_type == 9:
            validate_modal(data)
            inter.modal = data
        inter.ack_type = cb_type
        inter.ack_payload = body
        inter.ack_at = now
        inter.ack_latency_s = latency
        if msg is not None and dispatch_event is not None:
            self.emu._announce(dispatch_event, msg)
        if not truthy(req.query.get("with_response")):
            return Reply(204)
        resp_inter: dict[str, Any] = {"id": str(inter.id), "type": inter.type}
        resource: dict[str, Any] = {"type": cb_type}
        if msg is not None:
            resp_inter.update(
                response_message_id=str(msg.id),
                response_message_loading=cb_type == 5,
                response_message_ephemeral=msg.ephemeral,
            )
            resource["message"] = self.world.message_json(msg)
        return Reply(200, {"interaction": resp_inter, "resource": resource})

    async def webhook_execute(self, req: ApiRequest) -> Reply:
        inter = self._interaction_for_token(req.params["app_id"], req.params["token"])
        body = req.body()
        channel = self.world.channels[inter.channel_id]
        if req.query.get("thread_id"):
            channel = self._channel(req.query["thread_id"])
        original = self.world.messages.get(inter.original_message_id) if inter.original_message_id else None
        if inter.ack_type == 5 and original is not None and original.loading and not original.deleted:
            # The first follow-up after a deferred response resolves the "thinking" message, keeping the
            # ephemerality chosen at defer time.
            if not original.ephemeral:
                self._require_attach(channel, req.files)
            edit = {k: v for k, v in body.items() if k not in ("flags", "nonce", "tts", "username", "avatar_url")}
            if "flags" in body:
                edit["flags"] = int_field(body, "flags") & FLAG_SUPPRESS_EMBEDS
            self.writer.apply_edit(
                original, edit, req.files, limit=inter.attachment_size_limit, default_parse=("users",)
            )
            inter.followup_message_ids.append(original.id)
            self.emu._announce("MESSAGE_UPDATE", original)
            msg = original
        else:
            ephemeral = bool(int_field(body, "flags") & FLAG_EPHEMERAL)
            if not ephemeral:
                self._require_attach(channel, req.files)
            msg = self.writer.create_message(
                channel=channel,
                body=body,
                files=req.files,
                via="followup",
                limit=inter.attachment_size_limit,
                allowed_flags=FLAG_EPHEMERAL | FLAG_SUPPRESS_EMBEDS | FLAG_SUPPRESS_NOTIFICATIONS,
                default_parse=("users",),
                interaction=inter,
            )
            inter.followup_message_ids.append(msg.id)
            self.emu._announce("MESSAGE_CREATE", msg)
        if not truthy(req.query.get("wait")):
            return Reply(204)
        return Reply(200, self.world.message_json(msg))

    async def webhook_edit_message(self, req: ApiRequest) -> Reply:
        inter = self._interaction_for_token(req.params["app_id"], req.params["token"])
        msg = self._interaction_message(inter, req.params["message_id"])
        if not msg.ephemeral:
            self._require_attach(self.world.channels[msg.channel_id], req.files)
        self.writer.apply_edit(msg, req.body(), req.files, limit=inter.attachment_size_limit, default_parse=("users",))
        self.emu._announce("MESSAGE_UPDATE", msg)
        return Reply(200, self.world.message_json(msg))

    # --- channel messages --------------------------------------------------------------------------
    async def post_message(self, req: ApiRequest) -> Reply:
        channel = self._channel(req.params["channel_id"])
        body = req.body()
        perms = self._require_view(channel)
        if channel.is_dm:
            recipient = self.world.users[channel.recipient_id or 0]
            if recipient.dms_closed or recipient.bot:
                raise ApiError(403, 50007, "Cannot send messages to this user")
        else:
            if not has_permission(perms, _send_bit(channel)):
                raise ApiError(403, 50013, "Missing Permissions")
            if req.files and not has_permission(perms, ATTACH_FILES):
                raise ApiError(403, 50013, "Missing Permissions")
            if body.get("message_reference") is not None and not has_permission(perms, READ_MESSAGE_HISTORY):
                raise ApiError(403, 50013, "Missing Permissions")
        nonce = body.get("nonce")
        if nonce is not None and body.get("enforce_nonce"):
            key = (channel.id, self.world.bot_user_id, str(nonce))
            seen = self._nonces.get(key)
            if seen is not None and time.monotonic() - seen[1] < self.emu.nonce_window_s:
                existing = self.world.messages[seen[0]]
                return Reply(200, self.world.message_json(existing))
        msg = self.writer.create_message(
            channel=channel,
            body=body,
            files=req.files,
            via="bot",
            limit=self.world.filesize_limit(channel.guild_id),
            allowed_flags=FLAG_SUPPRESS_EMBEDS | FLAG_SUPPRESS_NOTIFICATIONS,
            default_parse=("users", "roles", "everyone"),
            embed_links=channel.is_dm or has_permission(perms, EMBED_LINKS),
        )
        if nonce is not None:
            self._nonces[(channel.id, self.world.bot_user_id, str(nonce))] = (msg.id, time.monotonic())
        self.emu._announce("MESSAGE_CREATE", msg)
        return Reply(200, self.world.message_json(msg))

    async def get_message(self, req: ApiRequest) -> Reply:
        channel = self._channel(req.params["channel_id"])
        perms = self._require_view(channel)
        if not channel.is_dm and not has_permission(perms, READ_MESSAGE_HISTORY):
            raise ApiError(403, 50013, "Missing Permissions")
        msg = self._message_in(channel, req.params["message_id"])
        return Reply(200, self.world.message_json(msg, visible=self._rest_visible))

    async def get_messages(self, req: ApiRequest) -> Reply:
        channel = self._channel(req.params["channel_id"])
        perms = self._require_view(channel)
        if not channel.is_dm and not has_permission(perms, READ_MESSAGE_HISTORY):
            return Reply(200, [])
        limit = max(1, min(100, int(req.query.get("limit", "50"))))
        msgs = [
            m for m in self.world.messages.values() if m.channel_id == channel.id and not m.deleted and not m.ephemeral
        ]
        msgs.sort(key=lambda m: m.id)
        if "before" in req.query:
            msgs = [m for m in msgs if m.id < parse_snowflake(req.query["before"])][-limit:]
        elif "after" in req.query:
            msgs = [m for m in msgs if m.id > parse_snowflake(req.query["after"])][:limit]
        elif "around" in req.query:
            around = parse_snowflake(req.query["around"])
            older = [m for m in msgs if m.id <= around][-(limit - limit // 2) :]
            newer = [m for m in msgs if m.id > around][: limit // 2]
            msgs = older + newer
        else:
            msgs = msgs[-limit:]
        return Reply(200, [self.world.message_json(m, visible=self._rest_visible) for m in reversed(msgs)])

    async def edit_message(self, req: ApiRequest) -> Reply:
        channel = self._channel(req.params["channel_id"])
        perms = self._require_view(channel)
        msg = self._message_in(channel, req.params["message_id"])
        body = req.body()
        if msg.author_id != self.world.bot_user_id:
            if set(body) - {"flags"}:
                raise ApiError(403, 50005, "Cannot edit a message authored by another user")
            if not has_permission(perms, MANAGE_MESSAGES):
                raise ApiError(403, 50013, "Missing Permissions")
        self._require_attach(channel, req.files)
        self.writer.apply_edit(
            msg,
            body,
            req.files,
            limit=self.world.filesize_limit(channel.guild_id),
            default_parse=("users", "roles", "everyone"),
        )
        self.emu._announce("MESSAGE_UPDATE", msg)
        return Reply(200, self.world.message_json(msg, visible=self._rest_visible))

    async def delete_message(self, req: ApiRequest) -> Reply:
        channel = self._channel(req.params["channel_id"])
        perms = self._require_view(channel)
        msg = self._message_in(channel, req.params["message_id"])
        if msg.author_id != self.world.bot_user_id and (channel.is_dm or not has_permission(perms, MANAGE_MESSAGES)):
            raise ApiError(403, 50013, "Missing Permissions")
        msg.deleted = True
        self.emu._announce("MESSAGE_DELETE", msg)
        return Reply(204)


def _send_bit(channel: ChannelState) -> int:
    return SEND_MESSAGES_IN_THREADS if channel.is_thread else SEND_MESSAGES
