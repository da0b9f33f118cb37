"""The Discord permissions the bot needs, written once: the invite asks for them, ``check`` looks for them,
and the commands and the delivery test a channel for them.

Plain data (discord.py's attribute name, the label Discord shows, the bit), so that services which must
not import discord can use it too; the adapter and the cogs read discord.py's objects through ``.value``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Permission:
    name: str  # the attribute of discord.Permissions
    label: str  # as Discord's settings show it, for the person who must grant it
    bit: int


VIEW_CHANNEL = Permission("view_channel", "View Channel", 1 << 10)
SEND_MESSAGES = Permission("send_messages", "Send Messages", 1 << 11)
SEND_MESSAGES_IN_THREADS = Permission("send_messages_in_threads", "Send Messages in Threads", 1 << 38)
ATTACH_FILES = Permission("attach_files", "Attach Files", 1 << 15)
EMBED_LINKS = Permission("embed_links", "Embed Links", 1 << 14)
READ_MESSAGE_HISTORY = Permission("read_message_history", "Read Message History", 1 << 16)

# Everything the bot needs to post videos (replies with an embed, in channels and threads, and to find
# what an earlier run posted), and nothing more: exactly what the invite link asks for.
NEEDED: tuple[Permission, ...] = (
    VIEW_CHANNEL,
    SEND_MESSAGES,
    SEND_MESSAGES_IN_THREADS,
    ATTACH_FILES,
    EMBED_LINKS,
    READ_MESSAGE_HISTORY,
)
# Without these a message carrying the MP4 cannot be posted at all (the others only cost its extras).
TO_POST_A_FILE: tuple[Permission, ...] = (VIEW_CHANNEL, SEND_MESSAGES, SEND_MESSAGES_IN_THREADS, ATTACH_FILES)


def mask(permissions: Iterable[Permission] = NEEDED) -> int:
    """The permissions as one integer, as Discord writes them (the invite link, a role's permissions)."""
    value = 0
    for permission in permissions:
        value |= permission.bit
    return value


def in_channel(permissions: Iterable[Permission] = NEEDED, *, thread: bool) -> tuple[Permission, ...]:
    """The ones that count in one channel: in a thread Send Messages in Threads stands for Send Messages."""
    other = SEND_MESSAGES if thread else SEND_MESSAGES_IN_THREADS
    return tuple(permission for permission in permissions if permission != other)


def missing(granted: int, permissions: Iterable[Permission] = NEEDED) -> list[str]:
    """The labels of the ``permissions`` that ``granted`` (an integer, as Discord sends it) lacks, in order."""
    return [permission.label for permission in permissions if not granted & permission.bit]
