"""The Cancel button on a status message, and what a Cancel says.

A job can be stopped while it waits or is being made; the answer says whether the request had
reached xAI (which may then charge). Anything else is "too late", true to where the job stands.
"""

from __future__ import annotations

from typing import Any

import discord

from cogs.buttons import JobButton, bot_of, may_manage
from cogs.replies import GuardedView
from services.cluster.seat import LeaderUnavailable
from services.delivery.status_texts import ending_text
from services.jobs.models import CancelResult, Job, JobStatus


class CancelButton(JobButton, discord.ui.DynamicItem[discord.ui.Button[Any]], template=r"gv:cancel:(?P<job>\d{1,20})"):
    """Stop a waiting or running job (the requester or a moderator), saying whether xAI may charge."""

    action, label, emoji = "cancel", "Cancel", "✖️"

    async def act(self, interaction: discord.Interaction) -> None:
        bot, job_id = bot_of(interaction), self.job_id
        # Acknowledge first: cancelling writes the store, which may wait out another program's lock.
        await interaction.response.defer()
        job = await bot.runtime.store.jobs.get(job_id)
        if not may_manage(interaction, job):
            await interaction.followup.send(
                "Only the person who asked for this video, or a moderator, can cancel it.", ephemeral=True
            )
            return
        try:
            outcome = await bot.runtime.jobs.cancel(job_id)
        except LeaderUnavailable as unavailable:  # between two leaders: nothing changed here (a slow one may yet)
            await interaction.followup.send(str(unavailable), ephemeral=True)
            return
        if outcome is None:
            job = await bot.runtime.store.jobs.get(job_id)
            if job is not None and job.status.is_terminal and job.status is not JobStatus.CANCELLED:
                # A button left on a status message nobody could update (the token had died): the click's own
                # token puts the ending there and takes the stale button away. A cancelled job's message was
                # already answered by the Cancel that ended it.
                await interaction.edit_original_response(content=ending_text(job), view=None)
            await interaction.followup.send(too_late_text(job), ephemeral=True)
            return
        bot.delivery.board.forget(job_id)
        await interaction.edit_original_response(content=cancel_text(outcome, job_id), view=None)


def status_view(job_id: int) -> discord.ui.View:
    """The Cancel button on a status message while the job waits or runs."""
    view = GuardedView(timeout=None)
    view.add_item(CancelButton(job_id))
    return view


def cancel_text(outcome: CancelResult, job_id: int) -> str:
    """What a Cancel achieved, in words: whether the request had reached xAI (which may then charge)."""
    if outcome is CancelResult.BEFORE_SENDING:
        return f"🛑 Cancelled before it was sent to xAI; it costs nothing. (job #{job_id})"
    return f"🛑 Cancelled. The request had already reached xAI, so xAI may still charge for it. (job #{job_id})"


def too_late_text(job: Job | None) -> str:
    """Why a Cancel came too late, true to where the job stands (a double click lands here too)."""
    if job is not None and job.status is JobStatus.CANCELLED:
        return "This job is already cancelled."
    if job is None or job.status.is_terminal:
        return "This job has already finished."
    if job.status in (JobStatus.DOWNLOADING, JobStatus.DELIVERING):
        return "It's too late to cancel: the video is already made and on its way."
    return "This job is already being cancelled."  # another click (or a moderator) got there first
