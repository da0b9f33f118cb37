"""Records and constants of the loopback Discord emulator: what tests assert on and build worlds with.

Nothing here talks to the network or judges a request: these are the permission, intent and flag bits,
snowflakes, the records of requests, messages and interactions, and the plain state of users, guilds and
channels. Discord's rules for what a request may contain live in ``discord_rules``.
"""

from __future__ import annotations

import hashlib
import itertools
import mimetypes
import time
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

# --- channel types ---------------------------------------------------------------------------------
CHANNEL_TEXT = 0
CHANNEL_DM = 1
CHANNEL_PUBLIC_THREAD = 11
THREAD_TYPES = (10, 11, 12)

# --- interaction types / callback types ------------------------------------------------------------
INTERACTION_APPLICATION_COMMAND = 2
INTERACTION_COMPONENT = 3
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
    versions: list[MessageVersion] = field(default_factory=list)

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & FLAG_EPHEMERAL)

    @property
    def custom_ids(self) -> list[str]:
        """The custom_id of each button on it, row by row (the bot sends action rows of buttons only)."""
        return [c["custom_id"] for row in self.components for c in row.get("components", []) if "custom_id" in c]

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
