"""When a message is a request to the bot, what a mention without one gets, and how often.

Discord lists the replied-to author in ``message.mentions`` for every reply that pings (the default),
so "lol this is great" under a delivered video "mentions" the bot. Only a mention written in the text
counts: ``<@id>`` / ``<@!id>``, or the mention of the bot's own managed role (``guild.self_role``),
which is what Discord's client inserts when someone picks the bot's role from the @ list.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import discord

CONTEXT_MENU_HELP = (
    "To animate or edit a message's attachment, right-click the message (long-press on mobile), "
    "choose **Apps**, then **Animate with Grok** or **Edit video with Grok**."
)


ANSWER_COOLDOWN_S = 60.0  # a member's mentions get at most one explanation this often


class AnswerCooldown:
    """At most one answer per member per ``window_s`` to mentions that start no job.

    Help, "I can't see attachments here", a refusal or a mistake explained: each is a message in the
    channel, and without a pause a member mentioning the bot in a loop would make it spam the channel.
    The repeats get nothing; a request that starts a job is not held back (the limits govern those).
    The clock is injected so tests can move past the pause without waiting for it.
    """

    def __init__(self, window_s: float = ANSWER_COOLDOWN_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.window_s = window_s
        self.clock = clock
        self._answered: dict[tuple[int, int], float] = {}  # (guild, member) -> when they were last answered

    def allow(self, guild_id: int, user_id: int) -> bool:
        """Whether this member may be answered now; a yes counts as the answer (decided before any await)."""
        now = self.clock()
        self._answered = {key: at for key, at in self._answered.items() if now - at < self.window_s}
        key = (guild_id, user_id)
        if key in self._answered:
            return False
        self._answered[key] = now
        return True


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
