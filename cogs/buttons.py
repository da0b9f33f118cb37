"""Buttons that keep working after a restart: the job id lives in each button's custom id.

``JobButton`` is what every button shares: its custom id ``gv:<action>:<job>``, reading it back, and
one answer for whatever goes wrong in a handler (cogs/replies.py), never "This interaction failed":
discord.py only logs a DynamicItem's errors. Each button and its handler live together, the result
buttons in cogs/results.py, Cancel in cogs/cancel.py; bot.py registers them all at start.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Self, cast

import discord

from cogs.replies import report
from services.jobs.models import Job

if TYPE_CHECKING:
    from bot import GrokVideoBot


class JobButton:
    """A button bound to one job; each subclass (also a DynamicItem) says what it is called and does."""

    action: str = ""
    label: str = ""
    emoji: str = ""
    style = discord.ButtonStyle.secondary

    def __init__(self, job_id: int) -> None:
        super().__init__(  # type: ignore[call-arg]  # DynamicItem.__init__, next in the MRO
            discord.ui.Button(
                label=self.label, emoji=self.emoji, style=self.style, custom_id=f"gv:{self.action}:{job_id}"
            )
        )
        self.job_id = job_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> Self:
        return cls(int(match["job"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        try:
            await self.act(interaction)
        except Exception as error:
            await report(interaction, error, what=f"button gv:{self.action}:{self.job_id}")

    async def act(self, interaction: discord.Interaction) -> None:
        raise NotImplementedError


def bot_of(interaction: discord.Interaction) -> GrokVideoBot:
    """The bot a click came to (discord.py types ``interaction.client`` as any Client)."""
    return cast("GrokVideoBot", interaction.client)


def may_manage(interaction: discord.Interaction, job: Job | None) -> bool:
    """The requester, or anyone who may manage messages here, may delete or cancel a job."""
    if job is None:
        return bool(interaction.permissions.manage_messages)
    return interaction.user.id == job.origin.user_id or bool(interaction.permissions.manage_messages)
