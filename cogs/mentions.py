"""When a message is a request to the bot, and what a mention without one gets.

Discord lists the replied-to author in ``message.mentions`` for every reply that pings (the default),
so "lol this is great" under a delivered video "mentions" the bot. Only a mention written in the text
counts: ``<@id>`` / ``<@!id>``, or the mention of the bot's own managed role (``guild.self_role``),
which is what Discord's client inserts when someone picks the bot's role from the @ list.
"""

from __future__ import annotations

import re

import discord

CONTEXT_MENU_HELP = (
    "To animate or edit a message's attachment, right-click the message (long-press on mobile), "
    "choose **Apps**, then **Animate with Grok** or **Edit video with Grok**."
)


def bot_role_id(message: discord.Message) -> int | None:
    """The managed role Discord gave the bot in this server, if the gateway told us about it."""
    role = message.guild.self_role if message.guild is not None else None
    return role.id if role is not None else None


def mentions_explicitly(message: discord.Message, bot_id: int) -> bool:
    """Whether the text itself mentions the bot (or its role); a reply's automatic ping does not count."""
    if bot_id in message.raw_mentions:
        return True
    role_id = bot_role_id(message)
    if role_id is None:
        return False
    # ``role_mentions`` comes from Discord's mention_roles, which a reply never fills in by itself, and is
    # there even when the Message Content intent hides the text.
    return role_id in message.raw_role_mentions or any(role.id == role_id for role in message.role_mentions)


def without_bot_mentions(content: str, bot_id: int, role_id: int | None) -> str:
    """The prompt: the text with the bot's mentions (user and role) taken out."""
    text = re.sub(rf"<@!?{bot_id}>", "", content)
    if role_id is not None:
        text = text.replace(f"<@&{role_id}>", "")
    return text.strip()


def mention_help(bot_name: str, *, reply_trigger: bool) -> str:
    """The short help for a mention that is not a request (the README promises it)."""
    lines = [
        "👋 I make short videos with Grok Imagine. Nothing was started.",
        "• Type `/video` with a prompt; attach an image to animate it, or an MP4 of up to 8.7 seconds to edit it.",
        "• Right-click a message with an image or an MP4 (long-press on mobile), choose **Apps**, then "
        "**Animate with Grok** or **Edit video with Grok**.",
    ]
    if reply_trigger:
        lines.append(
            f"• Or reply to such a message, mention me and say what to do, e.g. `@{bot_name} make the clouds move`."
        )
    return "\n".join(lines)
