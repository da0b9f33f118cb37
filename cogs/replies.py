"""One way to answer an interaction that went wrong, for every command, button and form.

A failed handler must never leave the person with "This interaction failed" or a thinking message
that thinks forever. ``tell`` takes the best way that still works: the interaction's own answer while
its token lives, else a message in the channel through the bot token (mentioning only that person),
else only the log. The command tree, every View, every Modal and every button use ``report``.
"""

from __future__ import annotations

import logging
from typing import Any

import discord
from discord import app_commands

from services.store.patience import is_busy

log = logging.getLogger(__name__)

SOMETHING_WENT_WRONG = "❌ Something went wrong on my side, so I couldn't finish that. Please try again in a moment."
DATABASE_BUSY = (
    "⏳ My database is busy right now (another program is holding it), so I couldn't finish that. "
    "Please try again in a minute."
)


def original_error(error: BaseException) -> BaseException:
    """The exception a handler raised, out of discord.py's ``CommandInvokeError`` wrapper."""
    while isinstance(error, app_commands.CommandInvokeError) and error.original is not error:
        error = error.original
    return error


def error_text(error: BaseException) -> str:
    """What the person reads: a refused check says why; anything else is our fault, in plain words."""
    error = original_error(error)
    if isinstance(error, app_commands.CheckFailure):
        return str(error) or "You can't use this here."
    if is_busy(error):
        return DATABASE_BUSY
    return SOMETHING_WENT_WRONG


def describe(interaction: discord.Interaction) -> str:
    """Which command, button or form an interaction was, for the log."""
    if interaction.command is not None:
        return f"command {interaction.command.qualified_name!r}"
    custom_id = interaction.custom_id
    if interaction.type is discord.InteractionType.modal_submit:
        return f"form {custom_id}"
    if interaction.type is discord.InteractionType.component:
        return f"button {custom_id}"
    return f"interaction of type {interaction.type}"


async def report(interaction: discord.Interaction, error: BaseException, *, what: str | None = None) -> str:
    """Log a failed handler with its context (never to the person) and tell them in words.

    Returns where the answer went: ``"interaction"``, ``"channel"`` or ``"log"``.
    """
    error = original_error(error)
    where = what or describe(interaction)
    if isinstance(error, app_commands.CheckFailure):
        log.info("%s refused for user %s in guild %s: %s", where, interaction.user.id, interaction.guild_id, error)
    else:
        log.error(
            "%s failed (user %s, guild %s, channel %s)",
            where,
            interaction.user.id,
            interaction.guild_id,
            interaction.channel_id,
            exc_info=error,
        )
    return await tell(interaction, error_text(error))


async def tell(interaction: discord.Interaction, text: str) -> str:
    """Say ``text`` privately to whoever made the interaction, by the best way still open."""
    if not interaction.is_expired():
        try:
            await _answer(interaction, text)
            return "interaction"
        except discord.HTTPException as error:
            log.info(
                "Could not answer interaction %s (%s %s); trying the channel", interaction.id, error.status, error.code
            )
    channel = _channel(interaction)
    if channel is not None:
        try:
            await channel.send(
                f"{interaction.user.mention} {text}",
                allowed_mentions=discord.AllowedMentions(
                    everyone=False, roles=False, users=[interaction.user], replied_user=False
                ),
            )
            return "channel"
        except discord.HTTPException as error:
            log.info("Could not post in channel %s either (%s %s)", interaction.channel_id, error.status, error.code)
    log.warning("Nobody could be told (interaction %s, user %s): %s", interaction.id, interaction.user.id, text)
    return "log"


async def _answer(interaction: discord.Interaction, text: str) -> None:
    response = interaction.response
    if not response.is_done():
        await response.send_message(text, ephemeral=True)
    elif response.type is discord.InteractionResponseType.deferred_channel_message:
        # The person sees "thinking…": that message becomes the answer.
        await interaction.edit_original_response(content=text, embed=None, view=None)
    else:
        # Acknowledged with an update of the clicked message, a modal, or a real answer: add a private note.
        await interaction.followup.send(text, ephemeral=True)


def _channel(interaction: discord.Interaction) -> discord.abc.Messageable | None:
    channel = interaction.channel
    if isinstance(channel, discord.abc.Messageable):
        return channel
    if interaction.channel_id is not None:
        return interaction.client.get_partial_messageable(interaction.channel_id, guild_id=interaction.guild_id)
    return None


class GuardedView(discord.ui.View):
    """A View whose failing items answer through ``report`` instead of failing silently."""

    async def on_error(self, interaction: discord.Interaction, error: Exception, item: discord.ui.Item[Any], /) -> None:
        await report(interaction, error, what=f"button {getattr(item, 'custom_id', item)!r}")


class GuardedModal(discord.ui.Modal):
    """A Modal whose failing submit answers through ``report`` (and lets go of the form)."""

    async def on_error(  # type: ignore[override]  # Modal's own signature differs from BaseView's
        self, interaction: discord.Interaction, error: Exception, /
    ) -> None:
        self.stop()
        await report(interaction, error, what=f"form {self.title!r}")
