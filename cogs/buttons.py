"""Buttons that keep working after a restart: the job id lives in each button's custom id.

Each button only parses its custom id and hands over to the follow-ups cog, which does the work. Whatever
goes wrong in there is answered through the shared handler (cogs/replies.py), never left as "This
interaction failed": discord.py only logs a DynamicItem's errors.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Self

import discord

from cogs.replies import GuardedView, report
from services.jobs.models import MAX_EDIT_INPUT_S, Job

if TYPE_CHECKING:
    from cogs.followups import FollowUpCog


def _followups(interaction: discord.Interaction) -> FollowUpCog:
    cog = interaction.client.get_cog("FollowUpCog")  # type: ignore[attr-defined]
    assert cog is not None, "the follow-ups cog is not loaded"
    return cog  # type: ignore[no-any-return]


class _JobButton:
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
            await self.act(_followups(interaction), interaction)
        except Exception as error:
            await report(interaction, error, what=f"button gv:{self.action}:{self.job_id}")

    async def act(self, cog: FollowUpCog, interaction: discord.Interaction) -> None:
        raise NotImplementedError


class AgainButton(_JobButton, discord.ui.DynamicItem[discord.ui.Button[Any]], template=r"gv:again:(?P<job>\d{1,20})"):
    action, label, emoji = "again", "Again", "🔁"

    async def act(self, cog: FollowUpCog, interaction: discord.Interaction) -> None:
        await cog.results.again(interaction, self.job_id)


class EditButton(_JobButton, discord.ui.DynamicItem[discord.ui.Button[Any]], template=r"gv:edit:(?P<job>\d{1,20})"):
    action, label, emoji = "edit", "Edit", "✏️"

    async def act(self, cog: FollowUpCog, interaction: discord.Interaction) -> None:
        await cog.results.edit_result(interaction, self.job_id)


class DeleteButton(_JobButton, discord.ui.DynamicItem[discord.ui.Button[Any]], template=r"gv:delete:(?P<job>\d{1,20})"):
    action, label, emoji = "delete", "Delete", "🗑️"
    style = discord.ButtonStyle.danger

    async def act(self, cog: FollowUpCog, interaction: discord.Interaction) -> None:
        await cog.results.delete_result(interaction, self.job_id)


class CancelButton(_JobButton, discord.ui.DynamicItem[discord.ui.Button[Any]], template=r"gv:cancel:(?P<job>\d{1,20})"):
    action, label, emoji = "cancel", "Cancel", "✖️"

    async def act(self, cog: FollowUpCog, interaction: discord.Interaction) -> None:
        await cog.results.cancel(interaction, self.job_id)


BUTTON_TYPES = (AgainButton, EditButton, DeleteButton, CancelButton)


def result_view(job: Job) -> discord.ui.View:
    """Buttons under a delivered video. Edit only where xAI can edit it (at most 8.7 seconds)."""
    view = GuardedView(timeout=None)
    view.add_item(AgainButton(job.id))
    if job.video_duration_s is not None and job.video_duration_s <= MAX_EDIT_INPUT_S:
        view.add_item(EditButton(job.id))
    view.add_item(DeleteButton(job.id))
    return view


def status_view(job_id: int) -> discord.ui.View:
    """The Cancel button on a status message while the job waits or runs."""
    view = GuardedView(timeout=None)
    view.add_item(CancelButton(job_id))
    return view
