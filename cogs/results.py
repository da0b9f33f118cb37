"""What the buttons on a result and on a status message do: Again, Edit, Delete and Cancel.

The buttons themselves (cogs/buttons.py) only parse their custom id; the follow-ups cog hands the
click here. Each handler acknowledges before anything slow: a store write may wait out another
program's lock (``patiently``), and Discord allows 3 seconds. An Edit form must be the first answer,
so only a quick, bounded look at the store comes before it. Errors reach the person through
cogs/replies.py.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

import discord

from cogs.forms import EditResultModal
from cogs.video import permission_problem
from services.delivery.status_texts import ending_text
from services.jobs.models import MAX_EDIT_INPUT_S, CancelResult, Job, JobRequest, JobStatus, Mode, Origin, VideoOptions
from services.jobs.validation import InputError, check_media, clean_prompt
from services.media.retention import kept_for
from services.store.patience import patiently

if TYPE_CHECKING:
    from bot import GrokVideoBot
    from cogs.followups import FollowUpCog
    from cogs.video import VideoCog

log = logging.getLogger(__name__)

NO_FILE_TO_EDIT = "I no longer have this video's file, so I can't edit it."
FORGOTTEN_TEXT = "This video was forgotten at a moderator's request: its prompt and files are erased"
DISCORD_COPY_HINT = (
    "You can still right-click the video's message → **Apps** → **Edit video with Grok**: that works from "
    "Discord's copy."
)


class ResultActions:
    """The work behind each result and status button, for one bot."""

    double_click_s = 5.0  # a second Again by the same person on the same video this soon is a double click
    fast_read_s = 1.5  # the longest a look at the store may take before the Edit form must open

    def __init__(self, cog: FollowUpCog) -> None:
        self.cog = cog
        self._recent_again: dict[tuple[int, int], float] = {}  # (job, user) -> when their Again was taken

    @property
    def bot(self) -> GrokVideoBot:
        return self.cog.bot

    @property
    def video_cog(self) -> VideoCog:
        return self.cog.video_cog

    async def submit_result_form(
        self, interaction: discord.Interaction, job_id: int, source_id: int | None, values: dict[str, str]
    ) -> None:
        """The Edit form of a delivered video was sent: the edit is made from that result's file."""
        callback = await interaction.response.defer(thinking=True)
        job = await self.bot.runtime.store.get(job_id)
        try:
            reason = self._why_not_editable(job) or permission_problem(interaction)
            if reason is not None or job is None:
                raise InputError((reason or NO_FILE_TO_EDIT).removeprefix("⚠️ "))
            prompt = clean_prompt(values.get("prompt"), Mode.EDIT)
            media = await check_media(Mode.EDIT, await self._read_output(job), f"grok-video-{job.id}.mp4")
        except InputError as error:
            await interaction.edit_original_response(content=f"❌ {error}")
            return
        request = JobRequest(
            mode=Mode.EDIT,
            prompt=prompt,
            options=VideoOptions(),
            origin=origin_of(interaction, source_message_id=source_id),
            media=media,
            parent_job_id=job.id,
            status_message_id=callback.message_id if callback else None,
        )
        await self.video_cog.start_job(interaction, request)

    async def again(self, interaction: discord.Interaction, job_id: int) -> None:
        """The same prompt, options and input, as a new job for whoever clicked (once per click, not twice)."""
        key = (job_id, interaction.user.id)
        now = time.monotonic()
        # Decided before the first await, so two clicks racing each other cannot both pass.
        last = self._recent_again.get(key)
        if last is not None and now - last < self.double_click_s:
            await interaction.response.send_message(
                "👆 That was a second click on **Again**: I'm making just one new video from it.", ephemeral=True
            )
            return
        self._recent_again = {k: t for k, t in self._recent_again.items() if now - t < self.double_click_s}
        self._recent_again[key] = now
        started = False
        try:
            callback = await interaction.response.defer(thinking=True)
            started = await self._again(interaction, job_id, callback.message_id if callback else None)
        finally:
            if not started:  # nothing was made, so another click is not a double one
                self._recent_again.pop(key, None)

    async def _again(self, interaction: discord.Interaction, job_id: int, status_message_id: int | None) -> bool:
        job = await self.bot.runtime.store.get(job_id)
        if job is None:
            await interaction.edit_original_response(content="❌ I no longer have that video's details.")
            return False
        problem = permission_problem(interaction)
        if problem is not None:
            await interaction.edit_original_response(content=problem)
            return False
        if job.forgotten_at is not None:  # its prompt is erased (or about to be): never made again
            await interaction.edit_original_response(content=f"❌ {FORGOTTEN_TEXT}, so I can't make it again.")
            return False
        media = await self.bot.runtime.store.get_input(job_id) if job.mode is not Mode.TEXT else None
        if job.mode is not Mode.TEXT and media is None:
            what = "image" if job.mode is Mode.IMAGE else "video"
            gone = self.gone_reason(job)
            reason = (
                f"{gone}, the {what} it was made from included"
                if gone
                else f"I no longer have the {what} this was made from"
            )
            await interaction.edit_original_response(
                content=f"❌ {reason}, so I can't make it again. Use `/video` and attach the {what} once more."
            )
            return False
        request = JobRequest(
            mode=job.mode,
            prompt=job.prompt,
            options=job.options,
            origin=origin_of(interaction, source_message_id=interaction.message.id if interaction.message else None),
            media=media,
            parent_job_id=job.id,
            status_message_id=status_message_id,
        )
        return await self.video_cog.start_job(interaction, request)

    async def edit_result(self, interaction: discord.Interaction, job_id: int) -> None:
        """Open the Edit form. A form must be the first answer, so only a quick look at the store comes first."""
        refusal = permission_problem(interaction)
        if refusal is None:
            try:
                job = await asyncio.wait_for(self.bot.runtime.store.get(job_id), self.fast_read_s)
            except TimeoutError:
                log.info("Job %d: the store was slow; opening the Edit form and checking on submit", job_id)
            else:
                reason = self._why_not_editable(job)
                refusal = f"❌ {reason}" if reason else None
        if refusal is not None:
            await interaction.response.send_message(refusal, ephemeral=True)
            return
        source = interaction.message.id if interaction.message else None
        await interaction.response.send_modal(EditResultModal(self.cog, job_id, source))

    async def delete_result(self, interaction: discord.Interaction, job_id: int) -> None:
        """The requester, or anyone who may manage messages, can remove a delivered video."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        job = await self.bot.runtime.store.get(job_id)
        if not _may_manage(interaction, job):
            await interaction.edit_original_response(
                content="Only the person who asked for this video, or a moderator, can delete it."
            )
            return
        if interaction.message is not None:
            try:
                await interaction.message.delete()
            except discord.NotFound:
                pass  # already gone (a double click, or deleted by hand): the same end
            except discord.HTTPException as error:
                log.info("Could not delete message %s (%s)", interaction.message.id, error.status)
                await interaction.edit_original_response(content="❌ I couldn't delete that message.")
                return
        done = "🗑️ Deleted."
        if job is not None:
            if job.deleted_at is None:
                when, who = time.time(), interaction.user.id
                await patiently(
                    lambda: self.bot.runtime.store.update(job_id, deleted_at=when, deleted_by=who),
                    what=f"job {job_id} deletion",
                )
            # Its files and stored input go too (a job still finishing loses them at the next sweep); the row
            # stays, so the member's counts and the server's costs are unchanged.
            freed = await self.bot.janitor.purge([job_id], patient=True)
            if freed.jobs or job.media_purged_at is not None:
                done = "🗑️ Deleted, and the bot's copy of the video with it."
        await interaction.edit_original_response(content=done)

    async def cancel(self, interaction: discord.Interaction, job_id: int) -> None:
        """Stop a waiting or running job (the requester or a moderator), saying whether xAI may charge."""
        # Acknowledge first: cancelling writes the store, which may wait out another program's lock.
        await interaction.response.defer()
        job = await self.bot.runtime.store.get(job_id)
        if not _may_manage(interaction, job):
            await interaction.followup.send(
                "Only the person who asked for this video, or a moderator, can cancel it.", ephemeral=True
            )
            return
        outcome = await self.bot.runtime.jobs.cancel(job_id)
        if outcome is None:
            job = await self.bot.runtime.store.get(job_id)
            if job is not None and job.status.is_terminal and job.status is not JobStatus.CANCELLED:
                # A button left on a status message nobody could update (the token had died): the click's own
                # token puts the ending there and takes the stale button away. A cancelled job's message was
                # already answered by the Cancel that ended it.
                await interaction.edit_original_response(content=ending_text(job), view=None)
            await interaction.followup.send(too_late_text(job), ephemeral=True)
            return
        self.bot.delivery.forget(job_id)
        await interaction.edit_original_response(content=cancel_text(outcome, job_id), view=None)

    # -- when the media is gone ------------------------------------------------------------------

    def gone_reason(self, job: Job) -> str | None:
        """Why the bot no longer has this job's files, in words (no full stop), or None when it never removed them."""
        if job.forgotten_at is not None:
            return FORGOTTEN_TEXT
        if job.media_purged_at is None:
            return None
        if job.deleted_at is not None:
            return "This video was deleted, and the bot's copy of its files with it"
        days = self.bot.settings.retention.keep_days
        if days is None:  # removed under an earlier MEDIA_RETENTION_DAYS
            return "This video's files were deleted, as this bot keeps them only for a while"
        return f"This video's files were deleted after {kept_for(days)}, as this bot keeps them only that long"

    def _why_not_editable(self, job: Job | None) -> str | None:
        if job is None:
            return NO_FILE_TO_EDIT
        gone = self.gone_reason(job)
        if gone is not None:
            hint = f" {DISCORD_COPY_HINT}" if job.forgotten_at is None and job.deleted_at is None else ""
            return f"{gone}, so I can't edit it.{hint}"
        if not job.output_path or not Path(job.output_path).is_file():
            return NO_FILE_TO_EDIT
        if job.video_duration_s is not None and job.video_duration_s > MAX_EDIT_INPUT_S:
            return f"xAI can only edit videos up to {MAX_EDIT_INPUT_S} seconds long; this one is longer."
        return None

    async def _read_output(self, job: Job) -> bytes:
        """The result's file, for an edit of it; gone meanwhile (a sweep between form and submit) says why."""
        try:
            if not job.output_path:
                raise FileNotFoundError
            return await asyncio.to_thread(Path(job.output_path).read_bytes)
        except OSError:
            fresh = await self.bot.runtime.store.get(job.id)
            raise InputError(self._why_not_editable(fresh) or NO_FILE_TO_EDIT) from None


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


def _may_manage(interaction: discord.Interaction, job: Job | None) -> bool:
    if job is None:
        return bool(interaction.permissions.manage_messages)
    return interaction.user.id == job.origin.user_id or bool(interaction.permissions.manage_messages)


def origin_of(interaction: discord.Interaction, *, source_message_id: int | None) -> Origin:
    """Where an interaction came from, as a job records it."""
    return Origin(
        guild_id=interaction.guild_id,
        channel_id=interaction.channel_id,
        user_id=interaction.user.id,
        source_message_id=source_message_id,
    )
