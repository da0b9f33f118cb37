"""Records, constants and Discord-rule helpers for the loopback Discord emulator.

Nothing here talks to the network: these are the plain dataclasses tests assert on, the permission and
intent bits, snowflakes, and the validation rules (content, embeds, components, mentions) that the REST
side applies before it accepts a message.
"""

from __future__ import annotations

import hashlib
import itertools
import mimetypes
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

DISCORD_EPOCH_MS = 1_420_070_400_000
MIB = 1024 * 1024

# --- permission bits -------------------------------------------------------------------------------
ADMINISTRATOR = 1 << 3
ADD_REACTIONS = 1 << 6
VIEW_CHANNEL = 1 << 10
SEND_MESSAGES = 1 << 11
MANAGE_MESSAGES = 1 << 13
EMBED_LINKS = 1 << 14
ATTACH_FILES = 1 << 15
READ_MESSAGE_HISTORY = 1 << 16
MENTION_EVERYONE = 1 << 17
USE_EXTERNAL_EMOJIS = 1 << 18
USE_APPLICATION_COMMANDS = 1 << 31
CREATE_PUBLIC_THREADS = 1 << 35
SEND_MESSAGES_IN_THREADS = 1 << 38
ALL_PERMISSIONS = (1 << 53) - 1

DEFAULT_BOT_PERMISSIONS = (
    VIEW_CHANNEL | SEND_MESSAGES | SEND_MESSAGES_IN_THREADS | ATTACH_FILES | EMBED_LINKS | READ_MESSAGE_HISTORY
)
DEFAULT_MEMBER_PERMISSIONS = (
    DEFAULT_BOT_PERMISSIONS | ADD_REACTIONS | USE_EXTERNAL_EMOJIS | USE_APPLICATION_COMMANDS | CREATE_PUBLIC_THREADS
)

# --- gateway intents -------------------------------------------------------------------------------
INTENT_GUILDS = 1 << 0
INTENT_GUILD_MEMBERS = 1 << 1
INTENT_GUILD_MESSAGES = 1 << 9
INTENT_DIRECT_MESSAGES = 1 << 12
INTENT_MESSAGE_CONTENT = 1 << 15

# --- message flags ---------------------------------------------------------------------------------
FLAG_SUPPRESS_EMBEDS = 1 << 2
FLAG_EPHEMERAL = 1 << 6
FLAG_LOADING = 1 << 7
FLAG_SUPPRESS_NOTIFICATIONS = 1 << 12
FLAG_IS_COMPONENTS_V2 = 1 << 15

# --- channel types ---------------------------------------------------------------------------------
CHANNEL_TEXT = 0
CHANNEL_DM = 1
CHANNEL_PUBLIC_THREAD = 11
THREAD_TYPES = (10, 11, 12)

# --- interaction types / callback types ------------------------------------------------------------
INTERACTION_APPLICATION_COMMAND = 2
INTERACTION_COMPONENT = 3
INTERACTION_AUTOCOMPLETE = 4
INTERACTION_MODAL_SUBMIT = 5

OPTION_SUB_COMMAND = 1
OPTION_SUB_COMMAND_GROUP = 2
OPTION_STRING = 3
OPTION_INTEGER = 4
OPTION_BOOLEAN = 5
OPTION_USER = 6
OPTION_CHANNEL = 7
OPTION_ROLE = 8
OPTION_MENTIONABLE = 9
OPTION_NUMBER = 10
OPTION_ATTACHMENT = 11


def has_permission(permissions: int, bit: int) -> bool:
    """True when `permissions` grants `bit` (ADMINISTRATOR grants everything)."""
    return bool(permissions & ADMINISTRATOR) or bool(permissions & bit)


def filesize_limit_for_tier(premium_tier: int) -> int:
    """Discord's per-file upload limit for a guild's boost tier (discord.py's `Guild.filesize_limit`)."""
    return {2: 50 * MIB, 3: 100 * MIB}.get(premium_tier, 10 * MIB)


# --- snowflakes and time ---------------------------------------------------------------------------
class SnowflakeMinter:
    """Mints unique snowflakes whose timestamp part is a chosen unix time."""

    def __init__(self) -> None:
        self._counter = itertools.count(1)

    def mint(self, at: float | None = None) -> int:
        when = time.time() if at is None else at
        ms = max(0, int(when * 1000) - DISCORD_EPOCH_MS)
        return (ms << 22) | (next(self._counter) & 0x3FFFFF)


def snowflake_time(snowflake: int) -> float:
    """The unix time encoded in a snowflake."""
    return ((snowflake >> 22) + DISCORD_EPOCH_MS) / 1000.0


def iso_time(ts: float) -> str:
    """ISO-8601 timestamp as Discord sends it."""
    return datetime.fromtimestamp(ts, UTC).isoformat()


# --- errors ----------------------------------------------------------------------------------------
class ApiError(Exception):
    """A Discord error answer. `problem` (if set) is also recorded in `DiscordEmulator.problems`."""

    def __init__(
        self,
        status: int,
        code: int,
        message: str,
        *,
        errors: dict[str, Any] | None = None,
        problem: str | None = None,
    ) -> None:
        super().__init__(f"{status} {code} {message}")
        self.status = status
        self.code = code
        self.message = message
        self.errors = errors
        self.problem = problem

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"message": self.message, "code": self.code}
        if self.errors:
            out["errors"] = self.errors
        return out


def invalid_form(path: Sequence[str | int], code: str, message: str, *, problem: str | None = None) -> ApiError:
    """400 / 50035 "Invalid Form Body" with Discord's nested `errors` shape for one field."""
    inner: dict[str, Any] = {"_errors": [{"code": code, "message": message}]}
    for key in reversed(list(path)):
        inner = {str(key): inner}
    return ApiError(400, 50035, "Invalid Form Body", errors=inner, problem=problem)


def malformed(path: Sequence[str | int], message: str) -> ApiError:
    """A body the real discord.py would never send: answered 400 and recorded as a problem."""
    where = ".".join(str(p) for p in path) or "<body>"
    return invalid_form(path, "MODEL_TYPE_CONVERT", message, problem=f"malformed request body at {where}: {message}")


# --- records ---------------------------------------------------------------------------------------
@dataclass
class FileRecord:
    """One uploaded `files[n]` part of a multipart request."""

    field: str
    filename: str
    content_type: str | None
    data: bytes

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass
class RequestRecord:
    """One REST call the emulator answered (attachment downloads included)."""

    method: str
    path: str
    route: str
    query: dict[str, str]
    authorized: bool
    json: Any
    files: list[FileRecord]
    time: float
    status: int = 0
    error_code: int | None = None
    response: Any = None
    audit_log_reason: str | None = None
    injected: bool = False

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


@dataclass
class AttachmentRecord:
    """An attachment stored by the emulator and served over HTTP at `url`."""

    id: int
    filename: str
    content_type: str | None
    data: bytes
    url: str
    description: str | None = None
    title: str | None = None
    ephemeral: bool = False
    width: int | None = None
    height: int | None = None
    duration_secs: float | None = None
    spoiler: bool = False

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": str(self.id),
            "filename": self.filename,
            "size": self.size,
            "url": self.url,
            "proxy_url": self.url.replace("/attachments/", "/media/attachments/", 1),
            "flags": 8 if self.spoiler else 0,
        }
        if self.content_type is not None:
            out["content_type"] = self.content_type
        for key in ("description", "title", "width", "height", "duration_secs"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        if self.ephemeral:
            out["ephemeral"] = True
        return out


class MessageVersion(NamedTuple):
    """The visible state of a message after one create or edit."""

    time: float
    content: str
    embeds: list[dict[str, Any]]
    components: list[dict[str, Any]]
    attachments: list[tuple[str, int, str]]  # (filename, size, sha256)
    flags: int


@dataclass
class MessageRecord:
    """Every message in the emulated world, whoever sent it, with its full edit history."""

    id: int
    channel_id: int
    guild_id: int | None
    author_id: int
    content: str
    via: str  # "bot" | "interaction" | "followup" | "user"
    type: int = 0
    embeds: list[dict[str, Any]] = field(default_factory=list)
    components: list[dict[str, Any]] = field(default_factory=list)
    attachments: list[AttachmentRecord] = field(default_factory=list)
    allowed_mentions: dict[str, Any] | None = None
    message_reference: dict[str, Any] | None = None
    flags: int = 0
    nonce: str | int | None = None
    tts: bool = False
    deleted: bool = False
    interaction_id: int | None = None
    webhook_id: int | None = None
    created_at: float = field(default_factory=time.time)
    edited_at: float | None = None
    mentions: list[int] = field(default_factory=list)
    mention_roles: list[int] = field(default_factory=list)
    mention_everyone: bool = False
    sticker_ids: list[str] = field(default_factory=list)
    poll: dict[str, Any] | None = None
    reactions: list[str] = field(default_factory=list)
    versions: list[MessageVersion] = field(default_factory=list)

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & FLAG_EPHEMERAL)

    @property
    def loading(self) -> bool:
        """True while this is a deferred "thinking" message nobody has resolved yet."""
        return bool(self.flags & FLAG_LOADING)

    def attachment(self, filename: str) -> AttachmentRecord:
        """The current attachment called `filename` (KeyError with the names present otherwise)."""
        for att in self.attachments:
            if att.filename == filename:
                return att
        raise KeyError(f"no attachment {filename!r} on message {self.id}: {[a.filename for a in self.attachments]}")

    def record_version(self) -> None:
        self.versions.append(
            MessageVersion(
                time=time.monotonic(),
                content=self.content,
                embeds=[dict(e) for e in self.embeds],
                components=list(self.components),
                attachments=[(a.filename, a.size, a.sha256) for a in self.attachments],
                flags=self.flags,
            )
        )


@dataclass
class InteractionRecord:
    """One interaction the emulator dispatched, and everything the bot did with it."""

    id: int
    token: str
    type: int
    user_id: int
    channel_id: int
    guild_id: int | None
    created_at: float  # unix time encoded in the id
    dispatched_at: float  # monotonic
    payload: dict[str, Any]
    attachment_size_limit: int
    app_permissions: int
    name: str | None = None  # command name for application commands
    custom_id: str | None = None  # for components and modal submits
    message_id: int | None = None  # the message a component is on (or a modal's source message)
    source_interaction_id: int | None = None  # for modal submits: the interaction that opened the modal
    ack_type: int | None = None
    ack_payload: dict[str, Any] | None = None
    ack_at: float | None = None
    ack_latency_s: float | None = None
    ack_rejected: str | None = None
    duplicate_acks: list[int] = field(default_factory=list)
    original_message_id: int | None = None
    followup_message_ids: list[int] = field(default_factory=list)
    modal: dict[str, Any] | None = None
    autocomplete_choices: list[dict[str, Any]] | None = None
    ephemeral: bool = False

    @property
    def data(self) -> dict[str, Any]:
        value = self.payload.get("data")
        return value if isinstance(value, dict) else {}

    @property
    def acked(self) -> bool:
        return self.ack_type is not None


# --- world state -----------------------------------------------------------------------------------
@dataclass
class UserState:
    id: int
    username: str
    bot: bool = False
    dms_closed: bool = False
    dm_channel_id: int | None = None


@dataclass
class RoleState:
    id: int
    guild_id: int
    name: str
    permissions: int
    position: int
    bot_id: int | None = None  # a bot's managed role (Discord creates one when a bot joins with permissions)


@dataclass
class MemberState:
    user_id: int
    roles: list[int]
    permissions: int
    joined_at: float


@dataclass
class GuildState:
    id: int
    name: str
    premium_tier: int
    owner_id: int
    created_at: float
    roles: dict[int, RoleState] = field(default_factory=dict)
    members: dict[int, MemberState] = field(default_factory=dict)
    channel_ids: list[int] = field(default_factory=list)


@dataclass
class ChannelState:
    id: int
    type: int
    name: str
    guild_id: int | None
    position: int = 0
    parent_id: int | None = None
    bot_permissions: int | None = None  # None on threads: inherit the parent's
    recipient_id: int | None = None  # DM channels
    owner_id: int | None = None  # threads
    last_message_id: int | None = None
    created_at: float = field(default_factory=time.time)

    @property
    def is_thread(self) -> bool:
        return self.type in THREAD_TYPES

    @property
    def is_dm(self) -> bool:
        return self.type == CHANNEL_DM


# --- content types ---------------------------------------------------------------------------------
_CONTENT_TYPES = {
    ".mp4": "video/mp4",
    ".m4v": "video/mp4",
    ".mov": "video/quicktime",
    ".webm": "video/webm",
    ".mkv": "video/x-matroska",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".avif": "image/avif",
    ".txt": "text/plain; charset=utf-8",
    ".json": "application/json; charset=utf-8",
    ".mp3": "audio/mpeg",
    ".ogg": "audio/ogg",
    ".zip": "application/zip",
}


def infer_content_type(filename: str) -> str | None:
    """Content type from the file name, as Discord does (uploads arrive as application/octet-stream)."""
    lower = filename.lower()
    dot = lower.rfind(".")
    if dot >= 0 and lower[dot:] in _CONTENT_TYPES:
        return _CONTENT_TYPES[lower[dot:]]
    guessed, _ = mimetypes.guess_type(lower)
    return guessed


# --- mentions --------------------------------------------------------------------------------------
_USER_MENTION = re.compile(r"<@!?(\d{15,21})>")
_ROLE_MENTION = re.compile(r"<@&(\d{15,21})>")


def parse_mentions(content: str) -> tuple[list[int], list[int], bool]:
    """User ids, role ids and whether @everyone/@here appear in `content`, in order of appearance."""
    users = list(dict.fromkeys(int(m) for m in _USER_MENTION.findall(content)))
    roles = list(dict.fromkeys(int(m) for m in _ROLE_MENTION.findall(content)))
    everyone = "@everyone" in content or "@here" in content
    return users, roles, everyone


def validate_allowed_mentions(allowed: Any) -> None:
    if allowed is None:
        return
    if not isinstance(allowed, dict):
        raise malformed(["allowed_mentions"], "must be an object")
    parse = allowed.get("parse", [])
    if not isinstance(parse, list) or any(p not in ("users", "roles", "everyone") for p in parse):
        raise invalid_form(["allowed_mentions", "parse"], "BASE_TYPE_CHOICES", f"Invalid parse values {parse!r}.")
    for kind in ("users", "roles"):
        explicit = allowed.get(kind)
        if explicit is not None and kind in parse:
            raise invalid_form(
                ["allowed_mentions", kind],
                "SET_TYPE_ALREADY_CONTAINS_VALUE",
                f'parse:["{kind}"] and {kind}: [ids] are mutually exclusive.',
            )
        if explicit is not None and len(explicit) > 100:
            raise invalid_form(["allowed_mentions", kind], "BASE_TYPE_MAX_LENGTH", "Must be 100 or fewer in length.")


def effective_mentions(
    content: str,
    allowed: dict[str, Any] | None,
    *,
    default_parse: Sequence[str],
    replied_author: int | None,
) -> tuple[list[int], list[int], bool]:
    """Which users / roles / everyone a message really pings, applying `allowed_mentions` as Discord does."""
    users, roles, everyone = parse_mentions(content)
    if allowed is None:
        parse: Sequence[str] = default_parse
        allowed_users: list[int] | None = None
        allowed_roles: list[int] | None = None
        ping_reply = True
    else:
        parse = allowed.get("parse", [])
        allowed_users = [int(u) for u in allowed["users"]] if allowed.get("users") is not None else None
        allowed_roles = [int(r) for r in allowed["roles"]] if allowed.get("roles") is not None else None
        ping_reply = bool(allowed.get("replied_user", False))
    out_users = [u for u in users if "users" in parse or (allowed_users is not None and u in allowed_users)]
    out_roles = [r for r in roles if "roles" in parse or (allowed_roles is not None and r in allowed_roles)]
    if replied_author is not None and ping_reply and replied_author not in out_users:
        out_users.append(replied_author)
    return out_users, out_roles, everyone and "everyone" in parse


# --- content / embed / component validation --------------------------------------------------------
EMBED_LIMITS: dict[str, int] = {"title": 256, "description": 4096}


def validate_content(content: Any) -> str:
    if content is None:
        return ""
    if not isinstance(content, str):
        raise malformed(["content"], f"content must be a string, got {type(content).__name__}")
    if len(content) > 2000:
        raise invalid_form(["content"], "BASE_TYPE_MAX_LENGTH", "Must be 2000 or fewer in length.")
    return content


def validate_embeds(embeds: Any) -> list[dict[str, Any]]:
    """Checks Discord's embed limits (title 256, description 4096, fields, 6000 in total, at most 10)."""
    if embeds is None:
        return []
    if not isinstance(embeds, list) or not all(isinstance(e, dict) for e in embeds):
        raise malformed(["embeds"], "embeds must be a list of objects")
    if len(embeds) > 10:
        raise invalid_form(["embeds"], "BASE_TYPE_MAX_LENGTH", "Must be 10 or fewer in length.")
    total = 0
    out: list[dict[str, Any]] = []
    for i, embed in enumerate(embeds):
        for key, limit in EMBED_LIMITS.items():
            value = embed.get(key)
            if value is not None and len(str(value)) > limit:
                raise invalid_form(["embeds", i, key], "BASE_TYPE_MAX_LENGTH", f"Must be {limit} or fewer in length.")
            total += len(str(value or ""))
        fields = embed.get("fields") or []
        if len(fields) > 25:
            raise invalid_form(["embeds", i, "fields"], "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")
        for j, fld in enumerate(fields):
            for key, limit in (("name", 256), ("value", 1024)):
                value = str(fld.get(key) or "")
                if not value:
                    raise invalid_form(["embeds", i, "fields", j, key], "BASE_TYPE_REQUIRED", "This field is required")
                if len(value) > limit:
                    raise invalid_form(
                        ["embeds", i, "fields", j, key], "BASE_TYPE_MAX_LENGTH", f"Must be {limit} or fewer in length."
                    )
                total += len(value)
        for key, sub, limit in (("footer", "text", 2048), ("author", "name", 256)):
            part = embed.get(key)
            if isinstance(part, dict):
                value = str(part.get(sub) or "")
                if len(value) > limit:
                    raise invalid_form(
                        ["embeds", i, key, sub], "BASE_TYPE_MAX_LENGTH", f"Must be {limit} or fewer in length."
                    )
                total += len(value)
        # Bots cannot set these; Discord drops them.
        cleaned = {k: v for k, v in embed.items() if k not in ("video", "provider")}
        cleaned["type"] = "rich"
        out.append(cleaned)
    if total > 6000:
        raise invalid_form(["embeds"], "MESSAGE_EMBEDS_TOO_LONG", "Embed size exceeds maximum size of 6000")
    return out


def iter_components(components: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every component in a tree (rows, containers, sections, labels), depth first."""
    out: list[dict[str, Any]] = []
    for comp in components:
        out.append(comp)
        children: list[dict[str, Any]] = list(comp.get("components") or [])
        for key in ("accessory", "component"):
            child = comp.get(key)
            if isinstance(child, dict):
                children.append(child)
        out.extend(iter_components(children))
    return out


def validate_components(components: Any, *, v2: bool) -> list[dict[str, Any]]:
    """Legacy messages: at most 5 action rows of at most 5 buttons; V2: at most 40 components in total."""
    if components is None:
        return []
    if not isinstance(components, list) or not all(isinstance(c, dict) for c in components):
        raise malformed(["components"], "components must be a list of objects")
    every = iter_components(components)
    if v2:
        if len(every) > 40:
            raise invalid_form(["components"], "BASE_TYPE_MAX_LENGTH", "Must be 40 or fewer components in total.")
    else:
        if len(components) > 5:
            raise invalid_form(["components"], "BASE_TYPE_MAX_LENGTH", "Must be 5 or fewer in length.")
        for i, row in enumerate(components):
            if row.get("type") != 1:
                raise invalid_form(
                    ["components", i, "type"],
                    "UNION_TYPE_CHOICES",
                    "Top-level components must be action rows unless IS_COMPONENTS_V2 is set.",
                )
            if not 1 <= len(row.get("components") or []) <= 5:
                raise invalid_form(["components", i, "components"], "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 5.")
    seen: set[str] = set()
    for comp in every:
        custom_id = comp.get("custom_id")
        if custom_id is not None:
            if not isinstance(custom_id, str) or not 1 <= len(custom_id) <= 100:
                raise invalid_form(["components"], "BASE_TYPE_BAD_LENGTH", f"custom_id {custom_id!r}: 1-100 chars")
            if custom_id in seen:
                raise invalid_form(
                    ["components"], "COMPONENT_CUSTOM_ID_DUPLICATED", f"Component custom id {custom_id!r} duplicated"
                )
            seen.add(custom_id)
        if comp.get("type") == 2:
            label = comp.get("label")
            if label is not None and len(str(label)) > 80:
                raise invalid_form(["components"], "BASE_TYPE_MAX_LENGTH", "Button label: 80 or fewer.")
            if comp.get("style") == 5 and not comp.get("url"):
                raise invalid_form(["components"], "BUTTON_URL_REQUIRED", "Link buttons need a url.")
            if comp.get("style") not in (5, 6) and custom_id is None:
                raise invalid_form(["components"], "BUTTON_CUSTOM_ID_REQUIRED", "Buttons need a custom_id.")
    return components


def find_component(components: Sequence[dict[str, Any]], custom_id: str) -> dict[str, Any] | None:
    for comp in iter_components(components):
        if comp.get("custom_id") == custom_id:
            return comp
    return None


# --- request-field and definition validation ---------------------------------------------------
_COMMAND_NAME = re.compile(r"^[-_'\w]{1,32}$")


def parse_snowflake(raw: str) -> int:
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise invalid_form([], "NUMBER_TYPE_COERCE", f"Value {raw!r} is not snowflake.") from None


def int_field(body: dict[str, Any], key: str) -> int:
    value = body.get(key)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise malformed([key], f"{key} must be an integer")
    return value


def validate_command(i: int, cmd: dict[str, Any], ctype: int) -> None:
    name = cmd.get("name")
    if not isinstance(name, str) or not 1 <= len(name) <= 32:
        raise invalid_form([i, "name"], "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 32 in length.")
    if ctype == 1:
        if not _COMMAND_NAME.match(name) or name != name.lower():
            raise invalid_form([i, "name"], "APPLICATION_COMMAND_INVALID_NAME", f"Command name is invalid: {name!r}")
        desc = cmd.get("description")
        if not isinstance(desc, str) or not 1 <= len(desc) <= 100:
            raise invalid_form([i, "description"], "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length.")
        validate_options([i, "options"], cmd.get("options") or [])
    elif ctype in (2, 3):
        if cmd.get("description"):
            raise invalid_form([i, "description"], "CONTEXT_MENU_DESCRIPTION", "Context menus have no description.")
        if cmd.get("options"):
            raise invalid_form([i, "options"], "CONTEXT_MENU_OPTIONS", "Context menus take no options.")
    else:
        raise invalid_form([i, "type"], "BASE_TYPE_CHOICES", f"Unknown command type {ctype}.")


def validate_options(path: list[str | int], options: Any) -> None:
    if not isinstance(options, list):
        raise malformed(path, "options must be a list")
    if len(options) > 25:
        raise invalid_form(path, "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")
    seen_optional = False
    names: set[str] = set()
    for j, opt in enumerate(options):
        where = [*path, j]
        otype = opt.get("type")
        name = opt.get("name")
        if otype not in range(1, 12):
            raise invalid_form([*where, "type"], "BASE_TYPE_CHOICES", f"Unknown option type {otype!r}.")
        if not isinstance(name, str) or not _COMMAND_NAME.match(name) or name != name.lower():
            raise invalid_form(
                [*where, "name"], "APPLICATION_COMMAND_INVALID_NAME", f"Option name is invalid: {name!r}"
            )
        if name in names:
            raise invalid_form([*where, "name"], "APPLICATION_COMMAND_OPTIONS_NAME_ALREADY_EXISTS", "Duplicate name")
        names.add(name)
        desc = opt.get("description")
        if not isinstance(desc, str) or not 1 <= len(desc) <= 100:
            raise invalid_form([*where, "description"], "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length.")
        if otype in (1, 2):
            validate_options([*where, "options"], opt.get("options") or [])
            continue
        if opt.get("required"):
            if seen_optional:
                raise invalid_form(
                    [*where, "required"],
                    "APPLICATION_COMMAND_OPTIONS_REQUIRED_INVALID",
                    "Required options must be placed before non-required options",
                )
        else:
            seen_optional = True
        if len(opt.get("choices") or []) > 25:
            raise invalid_form([*where, "choices"], "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")


def validate_modal(data: dict[str, Any]) -> None:
    custom_id = data.get("custom_id")
    if not isinstance(custom_id, str) or not 1 <= len(custom_id) <= 100:
        raise invalid_form(["data", "custom_id"], "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length.")
    title = data.get("title")
    if not isinstance(title, str) or not 1 <= len(title) <= 45:
        raise invalid_form(["data", "title"], "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 45 in length.")
    components = data.get("components")
    if not isinstance(components, list) or not 1 <= len(components) <= 5:
        raise invalid_form(["data", "components"], "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 5 in length.")
    for comp in iter_components(components):
        if comp.get("type") == 4:
            label = comp.get("label")
            if label is not None and len(str(label)) > 45:
                raise invalid_form(["data", "components"], "BASE_TYPE_MAX_LENGTH", "Text input label: 45 or fewer.")
            if int(comp.get("max_length") or 0) > 4000:
                raise invalid_form(["data", "components"], "BASE_TYPE_MAX", "max_length: 4000 or less.")
