"""The price before the work: a costly video waits for its requester's **Confirm**.

When a video's estimate is above the server's confirm threshold, or would use more than half of what is left
of the server's daily budget, the bot first answers with the estimate, what it leaves of the limits and the
expected wait, with Confirm and Cancel (only the requester may press them; anyone else is told so). Nothing is
written, queued or counted until Confirm, which then runs the normal acceptance (limits checked again then).
A confirmation lasts ``CONFIRM_TTL_S``; an expired Confirm says so and starts nothing. Pending confirmations
live in memory only (the request, its attachment included): a restart forgets them, like an unanswered form,
and a click on one afterwards is told so (the buttons are persistent ``ConfirmButton``s keyed by question).
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Self

import discord

from cogs.buttons import bot_of
from cogs.replies import report
from services.delivery.status_texts import estimate_line, expected_wait_s, wait_words
from services.jobs.accepting import Quote
from services.policy.limits import span_words, usd

if TYPE_CHECKING:
    from bot import GrokVideoBot

log = logging.getLogger(__name__)

CONFIRM_TEMPLATE = r"gv:confirm:(?P<key>[0-9a-f]{12}):(?P<answer>yes|no)"
CONFIRM_TTL_S = 180.0  # three minutes: long enough to read, short enough that the estimate stays true
Proceed = Callable[[discord.Interaction], Awaitable[None]]  # start the job; gets the Confirm click
Ended = Callable[[bool], Awaitable[None]]  # nothing was started (True: it expired; False: cancelled)


@dataclass(slots=True)
class Pending:
    """One question waiting for its requester's answer."""

    owner_id: int
    expires_at: float
    proceed: Proceed
    on_end: Ended  # tells the public status message that nothing was started
    timer: asyncio.TimerHandle | None = None


class Confirmations:
    """The questions still open, how long one lasts, by which clock (tests move it instead of sleeping).

    Each question has a random key in its buttons' custom ids: the buttons are persistent, so a click on a
    question of an earlier run (or one already answered) is answered too, and a new run's keys never match an
    old message's. ``take`` removes a question before any await, so double clicks cannot both act."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, ttl_s: float = CONFIRM_TTL_S) -> None:
        self.clock = clock
        self.ttl_s = ttl_s
        self._open: dict[str, Pending] = {}
        self._tidying: set[asyncio.Future[None]] = set()
        self._closed: dict[str, tuple[float, str]] = {}  # key -> (when, what a late click is told)

    def open(self, owner_id: int, proceed: Proceed, on_end: Ended) -> str:
        key = secrets.token_hex(6)
        now = self.clock()
        self._closed = {old: closed for old, closed in self._closed.items() if now - closed[0] < 3600}
        pending = Pending(owner_id, now + self.ttl_s, proceed, on_end)
        # The real timer only tidies up an unanswered question; the clock decides whether a click is in time.
        pending.timer = asyncio.get_running_loop().call_later(self.ttl_s + 5, self.expire, key)
        self._open[key] = pending
        return key

    def owner(self, key: str) -> int | None:
        pending = self._open.get(key)
        return pending.owner_id if pending is not None else None

    def take(self, key: str, *, closing: str = "This was already answered.") -> Pending | None:
        """The open question, now closed (a later click on it is told ``closing``); None if it was not open."""
        pending = self._open.pop(key, None)
        if pending is not None:
            self._closed[key] = (self.clock(), closing)
            if pending.timer is not None:
                pending.timer.cancel()
        return pending

    def closed(self, key: str) -> str | None:
        """What to tell a click on a question this run closed; None: this run never asked it."""
        closed = self._closed.get(key)
        return closed[1] if closed is not None else None

    def expire(self, key: str) -> None:
        """Nobody answered in time: close the question and say that nothing was started."""
        pending = self.take(key, closing=EXPIRED)
        if pending is not None:
            task = asyncio.ensure_future(pending.on_end(True))
            self._tidying.add(task)
            task.add_done_callback(self._tidying.discard)


def quote_text(bot: GrokVideoBot, quote: Quote, ttl_s: float) -> str:
    """The estimate, why the bot asks, what it leaves of the limits, and the expected wait."""
    request, ticks = quote.request, quote.ticks
    lines = [estimate_line(bot.runtime.jobs.rules.defaults.catalog, request) + "."]
    if quote.threshold_ticks is not None and ticks > quote.threshold_ticks:
        lines.append(f"That is more than {usd(quote.threshold_ticks)}, so this server asks you to confirm first.")
    elif quote.budget_left_ticks is not None:
        lines.append("That is more than half of what is left of this server's daily budget, so please confirm.")
    if quote.budget_ticks is not None and quote.budget_left_ticks is not None:
        after = max(0, quote.budget_left_ticks - ticks)
        lines.append(f"🏠 It leaves {usd(after)} of this server's {usd(quote.budget_ticks)} daily budget.")
    if quote.videos_left is not None:
        left = max(0, quote.videos_left - 1)
        lines.append(
            f"🎬 After it, you have {left} video{'' if left == 1 else 's'} left per {span_words(quote.window_s)}."
        )
    scheduler = bot.runtime.scheduler
    lines.append(wait_words(expected_wait_s(scheduler.waiting + 1, scheduler), time.time()) + ".")
    minutes = max(1, round(ttl_s / 60))
    lines.append(
        f"Press **Confirm** within {minutes} minute{'s' if minutes != 1 else ''} to start it. "
        "Nothing is sent to xAI or counted until then."
    )
    return "\n".join(lines)


class ConfirmButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=CONFIRM_TEMPLATE):
    """Confirm or Cancel of one question; only its requester may press them, and only before it expires."""

    def __init__(self, key: str, yes: bool) -> None:
        super().__init__(
            discord.ui.Button(
                label="Confirm" if yes else "Cancel",
                style=discord.ButtonStyle.success if yes else discord.ButtonStyle.secondary,
                custom_id=f"gv:confirm:{key}:{'yes' if yes else 'no'}",
            )
        )
        self.key, self.yes = key, yes

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> Self:
        return cls(match["key"], match["answer"] == "yes")

    async def callback(self, interaction: discord.Interaction) -> None:
        try:
            await self._answer(interaction)
        except Exception as error:
            await report(interaction, error, what=f"button gv:confirm:{self.key}")

    async def _answer(self, interaction: discord.Interaction) -> None:
        desk: Confirmations = bot_of(interaction).confirmations
        owner = desk.owner(self.key)
        if owner is not None and interaction.user.id != owner:
            await interaction.response.send_message(
                f"Only <@{owner}> can confirm or cancel this video. Use /video to make your own.",
                ephemeral=True,
                allowed_mentions=discord.AllowedMentions.none(),
            )
            return
        pending = desk.take(self.key)  # before any await: a second click finds nothing
        closed = desk.closed(self.key) if pending is None else None
        if closed is not None:  # a double click (the first one's answer stands), or a question that expired
            await interaction.response.send_message(closed, ephemeral=True)
        elif pending is None:
            await interaction.response.edit_message(content=GONE, view=None)
        elif not self.yes:
            await interaction.response.edit_message(content=CANCELLED, view=None)
            await pending.on_end(False)
        elif desk.clock() > pending.expires_at:
            await interaction.response.edit_message(content=EXPIRED, view=None)
            await pending.on_end(True)
        else:
            await interaction.response.edit_message(content="✅ Confirmed: starting your video.", view=None)
            await pending.proceed(interaction)


def confirm_view(key: str) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(ConfirmButton(key, yes=True))
    view.add_item(ConfirmButton(key, yes=False))
    return view


GONE = "This question is no longer open (the bot restarted since), so nothing was started from it. Ask again."
EXPIRED = "⌛ This confirmation expired, so nothing was started or counted. Ask again to make the video."
CANCELLED = "🛑 Cancelled: nothing was sent to xAI or counted."
REFUSED_LATE = "⛔ Confirmed, but it could not start: the public answer says why."
NOT_STARTED = {True: "⌛ Not started: the price was not confirmed in time.", False: "🛑 Not started: cancelled."}


async def ask_first(
    bot: GrokVideoBot,
    interaction: discord.Interaction,
    quote: Quote,
    start: Callable[[], Awaitable[bool]],
    *,
    note: str | None = None,
) -> None:
    """Answer an interaction with the estimate and Confirm / Cancel (ephemeral); its public answer waits.

    ``start`` accepts the job (every limit checked again) and says whether it started; ``note``, a line above the
    estimate, says why the bot asks when that is not the price (Again on a model no longer offered)."""
    desk: Confirmations = bot.confirmations

    async def proceed(click: discord.Interaction) -> None:
        if not await start():
            await click.edit_original_response(content=REFUSED_LATE)

    asked: discord.WebhookMessage | None = None

    async def ended(expired: bool) -> None:
        try:
            await interaction.edit_original_response(content=NOT_STARTED[expired], view=None)
            if expired and asked is not None:  # unanswered: the question loses its buttons too
                await asked.edit(content=EXPIRED, view=None)
        except discord.HTTPException as error:  # the token may be gone: the ephemeral answer said it already
            log.info("Confirmation: the answer was not updated (%s)", error.status)

    assert quote.request.origin.user_id is not None
    view = confirm_view(desk.open(quote.request.origin.user_id, proceed, ended))
    await interaction.edit_original_response(
        content="⏳ Waiting for the requester to confirm the price (shown to them only)."
    )
    text = quote_text(bot, quote, desk.ttl_s)
    text = f"{note}\n{text}" if note else text
    asked = await interaction.followup.send(text, view=view, ephemeral=True, wait=True)


async def ask_in_message(bot: GrokVideoBot, message: discord.Message, quote: Quote, proceed: Proceed) -> None:
    """The same question on a message the bot posted itself (the reply trigger, where nothing is ephemeral)."""
    desk: Confirmations = bot.confirmations

    async def ended(expired: bool) -> None:
        try:
            await message.edit(content=EXPIRED if expired else CANCELLED, view=None)
        except discord.HTTPException as error:
            log.info("Confirmation: the message was not updated (%s)", error.status)

    assert quote.request.origin.user_id is not None
    view = confirm_view(desk.open(quote.request.origin.user_id, proceed, ended))
    await message.edit(content=quote_text(bot, quote, desk.ttl_s), view=view)
