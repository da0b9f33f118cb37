"""Creating and editing messages under Discord's rules, shared by every REST route that writes one.

Validation order follows Discord: upload size (413) and form rules (50035) first, then "empty message"
(50006). Nothing here dispatches: routes call `DiscordEmulator._announce` once the request succeeded.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .discord_models import (
    FLAG_EPHEMERAL,
    FLAG_LOADING,
    FLAG_SUPPRESS_EMBEDS,
    AttachmentRecord,
    ChannelState,
    FileRecord,
    InteractionRecord,
    MessageRecord,
)
from .discord_rules import (
    ApiError,
    effective_mentions,
    int_field,
    invalid_form,
    malformed,
    parse_snowflake,
    validate_allowed_mentions,
    validate_components,
    validate_content,
    validate_embeds,
)

if TYPE_CHECKING:
    from .discord_emulator import DiscordEmulator

_FILE_FIELD = re.compile(r"files\[(\d+)\]")


class MessageWriter:
    """Builds, validates and stores messages; applies edits and records versions."""

    def __init__(self, emulator: DiscordEmulator) -> None:
        self.emu = emulator
        self.world = emulator.world

    def _build_attachments(
        self,
        body: dict[str, Any],
        files: list[FileRecord],
        limit: int,
        existing: list[AttachmentRecord],
        *,
        editing: bool,
    ) -> list[AttachmentRecord] | None:
        """The message's attachments after this request, or None when the request does not touch them."""
        if len(files) > 10:
            raise invalid_form(["files"], "BASE_TYPE_MAX_LENGTH", "Must be 10 or fewer in length.")
        for f in files:
            if f.size > limit:
                raise ApiError(413, 40005, "Request entity too large")
        by_index: dict[int, FileRecord] = {}
        for position, f in enumerate(files):
            m = _FILE_FIELD.fullmatch(f.field)
            by_index[int(m.group(1)) if m else position] = f
        spec = body.get("attachments")
        if spec is None:
            if not files:
                return None
            new = [self.world.new_attachment(f.data, f.filename) for f in files]
            return [*existing, *new] if editing else new
        if not isinstance(spec, list) or not all(isinstance(a, dict) for a in spec):
            raise malformed(["attachments"], "attachments must be a list of objects")
        out: list[AttachmentRecord] = []
        used: set[int] = set()
        kept = {a.id: a for a in existing}
        for i, item in enumerate(spec):
            try:
                aid = int(item["id"])
            except (TypeError, ValueError):
                raise invalid_form(
                    ["attachments", i, "id"], "BASE_TYPE_REQUIRED", "An attachment id is required."
                ) from None
            description = item.get("description")
            if description is not None and len(str(description)) > 1024:
                raise invalid_form(
                    ["attachments", i, "description"], "BASE_TYPE_MAX_LENGTH", "Must be 1024 or fewer in length."
                )
            if aid in by_index:
                f = by_index[aid]
                used.add(aid)
                out.append(
                    self.world.new_attachment(
                        f.data,
                        str(item.get("filename") or f.filename),
                        description=description,
                        title=item.get("title"),
                    )
                )
            elif aid in kept:
                out.append(kept[aid])
            else:
                raise invalid_form(
                    ["attachments", i, "id"], "ATTACHMENT_NOT_FOUND", f"Unknown attachment id {aid} (no such file part)"
                )
        for index, f in by_index.items():
            if index not in used:
                out.append(self.world.new_attachment(f.data, f.filename))
        return out

    def _resolve_attachment_refs(self, msg: MessageRecord) -> None:
        """Replace `attachment://name` in embeds with the attachment's URL, as Discord does."""
        by_name = {a.filename: a for a in msg.attachments}

        def fix(obj: dict[str, Any]) -> None:
            url = obj.get("url")
            if isinstance(url, str) and url.startswith("attachment://"):
                att = by_name.get(url[len("attachment://") :])
                if att is not None:
                    obj.update(url=att.url, proxy_url=att.url, attachment_id=str(att.id))
                    if att.content_type:
                        obj["content_type"] = att.content_type

        for embed in msg.embeds:
            for key in ("image", "thumbnail"):
                part = embed.get(key)
                if isinstance(part, dict):
                    fix(part)

    def _check_not_empty(self, content: str, embeds: list[Any], attachments: list[Any], components: list[Any]) -> None:
        if not content.strip() and not embeds and not attachments and not components:
            raise ApiError(400, 50006, "Cannot send an empty message")

    def create_message(
        self,
        *,
        channel: ChannelState,
        body: dict[str, Any],
        files: list[FileRecord],
        via: str,
        limit: int,
        allowed_flags: int,
        default_parse: Sequence[str],
        interaction: InteractionRecord | None = None,
        msg_type: int = 0,
        force_flags: int = 0,
        embed_links: bool = True,
    ) -> MessageRecord:
        """Validate a message body and store the message (no dispatch: see `DiscordEmulator._announce`)."""
        flags = int_field(body, "flags")
        if flags & ~allowed_flags:
            raise invalid_form(
                ["flags"], "MESSAGE_FLAGS_INVALID", f"Flags {flags & ~allowed_flags} cannot be set here."
            )
        flags |= force_flags
        content = validate_content(body.get("content"))
        embeds = validate_embeds(body.get("embeds"))
        components = validate_components(body.get("components"))
        allowed = body.get("allowed_mentions")
        validate_allowed_mentions(allowed)
        attachments = self._build_attachments(body, files, limit, [], editing=False) or []
        if not embed_links:
            embeds = []  # without EMBED_LINKS Discord drops the embeds
        if not force_flags & FLAG_LOADING:
            self._check_not_empty(content, embeds, attachments, components)
        nonce = body.get("nonce")
        if nonce is not None and not isinstance(nonce, (str, int)):
            raise malformed(["nonce"], "nonce must be a string or an integer")
        if isinstance(nonce, str) and len(nonce) > 25:
            raise invalid_form(["nonce"], "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")
        reference = body.get("message_reference")
        referenced: MessageRecord | None = None
        if reference is not None:
            reference, referenced = self._check_reference(channel, reference)
        author_id = self.world.bot_user_id
        msg = MessageRecord(
            id=self.emu.mint_snowflake(),
            channel_id=channel.id,
            guild_id=channel.guild_id,
            author_id=author_id,
            content=content,
            via=via,
            type=19 if reference is not None and msg_type == 0 else msg_type,
            embeds=embeds,
            components=components,
            attachments=attachments,
            allowed_mentions=allowed,
            message_reference=reference,
            flags=flags,
            nonce=nonce,
            tts=bool(body.get("tts", False)),
            interaction_id=interaction.id if interaction is not None else None,
            webhook_id=self.world.application_id if via in ("interaction", "followup") else None,
        )
        self._apply_mentions(msg, default_parse, referenced)
        self._resolve_attachment_refs(msg)
        msg.record_version()
        self.world.messages[msg.id] = msg
        if not msg.ephemeral:
            channel.last_message_id = msg.id
        return msg

    def _check_reference(
        self, channel: ChannelState, reference: Any
    ) -> tuple[dict[str, Any] | None, MessageRecord | None]:
        if not isinstance(reference, dict) or "message_id" not in reference:
            raise malformed(["message_reference"], "message_reference needs a message_id")
        if reference.get("type", 0) != 0:
            raise invalid_form(["message_reference", "type"], "BASE_TYPE_CHOICES", "Only reply references (type 0).")
        target_channel = parse_snowflake(str(reference.get("channel_id") or channel.id))
        target = self.world.messages.get(parse_snowflake(str(reference["message_id"])))
        if target is None or target.deleted or target.ephemeral or target.channel_id != target_channel:
            if reference.get("fail_if_not_exists", True) is False:
                return None, None
            raise invalid_form(["message_reference"], "REPLIES_UNKNOWN_MESSAGE", "Unknown message")
        clean = {
            "type": 0,
            "message_id": str(target.id),
            "channel_id": str(target.channel_id),
        }
        if target.guild_id is not None:
            clean["guild_id"] = str(target.guild_id)
        if "fail_if_not_exists" in reference:
            clean["fail_if_not_exists"] = bool(reference["fail_if_not_exists"])
        return clean, target

    def _apply_mentions(
        self, msg: MessageRecord, default_parse: Sequence[str], referenced: MessageRecord | None
    ) -> None:
        replied = referenced.author_id if referenced is not None and referenced.author_id != msg.author_id else None
        users, roles, everyone = effective_mentions(
            msg.content, msg.allowed_mentions, default_parse=default_parse, replied_author=replied
        )
        msg.mentions = [u for u in users if u in self.world.users]
        msg.mention_roles = roles
        msg.mention_everyone = everyone

    def apply_edit(
        self,
        msg: MessageRecord,
        body: dict[str, Any],
        files: list[FileRecord],
        *,
        limit: int,
        default_parse: Sequence[str],
        keep_flags: int = FLAG_EPHEMERAL,
    ) -> None:
        """Apply an edit body (only the fields present), validate the result, append a version."""
        flags = msg.flags
        if "flags" in body and body["flags"] is not None:
            flags = (flags & ~FLAG_SUPPRESS_EMBEDS) | (int_field(body, "flags") & FLAG_SUPPRESS_EMBEDS)
        flags &= ~FLAG_LOADING
        flags |= msg.flags & keep_flags
        content = validate_content(body["content"]) if "content" in body else msg.content
        embeds = validate_embeds(body["embeds"]) if "embeds" in body else msg.embeds
        components = validate_components(body["components"]) if "components" in body else msg.components
        allowed = body.get("allowed_mentions", msg.allowed_mentions)
        validate_allowed_mentions(allowed)
        attachments = self._build_attachments(body, files, limit, msg.attachments, editing=True)
        if attachments is None:
            attachments = msg.attachments
        self._check_not_empty(content, embeds, attachments, components)
        was_loading = msg.loading
        msg.content, msg.embeds, msg.components, msg.attachments = content, embeds, components, attachments
        msg.flags = flags
        msg.allowed_mentions = allowed
        if not was_loading:
            msg.edited_at = time.time()
        referenced = None
        if msg.message_reference is not None:
            referenced = self.world.messages.get(int(msg.message_reference["message_id"]))
        self._apply_mentions(msg, default_parse, referenced)
        self._resolve_attachment_refs(msg)
        msg.record_version()
