"""The buttons under a delivered video, each with what it does: Again, Edit and Delete.

Each handler acknowledges before anything slow: a store write may wait out another program's lock
(``patiently``), and Discord allows 3 seconds. An Edit form must be the first answer, so only a
quick, bounded look at the store comes before it. Errors reach the person through cogs/replies.py.
What the buttons remember within one run (recent Again clicks, the Edit forms still open) is kept by
``ResultsCog``, which also answers an Edit form sent after a restart.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import discord
from discord.ext import commands

from cogs.buttons import JobButton, bot_of, may_manage
from cogs.forms import RESULT, EditResultModal, answer_late, late_form
from cogs.intake import origin_of, permission_problem, start_job, start_or_explain
from cogs.replies import GuardedView
from services.delivery.places import video_filename
from services.jobs.models import MAX_EDIT_INPUT_S, Job, JobRequest, Mode, VideoOptions
from services.jobs.validation import InputError, check_media, clean_prompt
from services.media.retention import kept_for
from services.store.patience import patiently

if TYPE_CHECKING:
    from bot import GrokVideoBot

log = logging.getLogger(__name__)

NO_FILE_TO_EDIT = "I no longer have this video's file, so I can't edit it."
FORGOTTEN_TEXT = "This video was forgotten at a moderator's request: its prompt and files are erased"
DISCORD_COPY_HINT = (
    "You can still right-click the video's message → **Apps** → **Edit video with Grok**: that works from "
    "Discord's copy."
)


class Clicks:
    """Again clicks taken lately: a second one by the same person on the same video this soon is a double
    click, and makes no second video."""

    def __init__(self, window_s: float = 5.0) -> None:
        self.window_s = window_s
        self._taken: dict[tuple[int, int], float] = {}  # (job, user) -> when their Again was taken

    def take(self, key: tuple[int, int]) -> bool:
        """Whether this click is the first; decided before any await, so two racing clicks cannot both pass."""
        now = time.monotonic()
        last = self._taken.get(key)
        if last is not None and now - last < self.window_s:
            return False
        self._taken = {k: t for k, t in self._taken.items() if now - t < self.window_s}
        self._taken[key] = now
        return True

    def release(self, key: tuple[int, int]) -> None:
        """Nothing was made, so another click is not a double one."""
        self._taken.pop(key, None)


class ResultsCog(commands.Cog):
    """What the result buttons remember in one run, and Edit forms that outlived the run that opened them."""

    def __init__(self, bot: GrokVideoBot) -> None:
        self.bot = bot
        self.again_clicks = Clicks()
        self.open_forms: set[str] = set()  # custom ids of the Edit forms this run is waiting for

    @commands.Cog.listener()
    async def on_interaction(self, interaction: discord.Interaction) -> None:
        """An Edit form sent after the bot restarted (or after it stopped waiting) is still understood."""
        form = late_form(interaction, self.open_forms)
        if form is None or form.kind != RESULT:
            return
        job_id, source = form.target, form.source
        await answer_late(interaction, lambda late, values: edit_from_form(self.bot, late, job_id, source, values))


def _results(interaction: discord.Interaction) -> ResultsCog:
    cog = bot_of(interaction).get_cog("ResultsCog")
    assert cog is not None, "the results cog is not loaded"
    return cast(ResultsCog, cog)


class AgainButton(JobButton, discord.ui.DynamicItem[discord.ui.Button[Any]], template=r"gv:again:(?P<job>\d{1,20})"):
    """The same prompt, options and input, as a new job for whoever clicked (once per click, not twice)."""

    action, label, emoji = "again", "Again", "🔁"

    async def act(self, interaction: discord.Interaction) -> None:
        clicks, key = _results(interaction).again_clicks, (self.job_id, interaction.user.id)
        if not clicks.take(key):
            await interaction.response.send_message(
                "👆 That was a second click on **Again**: I'm making just one new video from it.", ephemeral=True
            )
            return
        started = False
        try:
            callback = await interaction.response.defer(thinking=True)
            started = await self._again(interaction, callback.message_id if callback else None)
        finally:
            if not started:
                clicks.release(key)

    async def _again(self, interaction: discord.Interaction, status_message_id: int | None) -> bool:
        bot = bot_of(interaction)
        job = await bot.runtime.store.jobs.get(self.job_id)
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
        media = await bot.runtime.store.jobs.get_input(job.id) if job.mode is not Mode.TEXT else None
        if job.mode is not Mode.TEXT and media is None:
            what = "image" if job.mode is Mode.IMAGE else "video"
            gone = gone_reason(bot, job)
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
        return await start_job(bot, interaction, request)


class EditButton(JobButton, discord.ui.DynamicItem[discord.ui.Button[Any]], template=r"gv:edit:(?P<job>\d{1,20})"):
    """Open the Edit form. A form must be the first answer, so only a quick look at the store comes first."""

    action, label, emoji = "edit", "Edit", "✏️"
    fast_read_s = 1.5  # the longest a look at the store may take before the Edit form must open

    async def act(self, interaction: discord.Interaction) -> None:
        bot, job_id = bot_of(interaction), self.job_id
        refusal = permission_problem(interaction)
        if refusal is None:
            try:
                job = await asyncio.wait_for(bot.runtime.store.jobs.get(job_id), self.fast_read_s)
            except TimeoutError:
                log.info("Job %d: the store was slow; opening the Edit form and checking on submit", job_id)
            else:
                reason = why_not_editable(bot, job)
                refusal = f"❌ {reason}" if reason else None
        if refusal is not None:
            await interaction.response.send_message(refusal, ephemeral=True)
            return
        source = interaction.message.id if interaction.message else None

        async def answer(sent: discord.Interaction, values: dict[str, str]) -> None:
            await edit_from_form(bot, sent, job_id, source, values)

        await interaction.response.send_modal(EditResultModal(_results(interaction).open_forms, answer, job_id, source))


async def edit_from_form(
    bot: GrokVideoBot, interaction: discord.Interaction, job_id: int, source_id: int | None, values: dict[str, str]
) -> None:
    """The Edit form of a delivered video was sent: the edit is made from that result's file."""
    callback = await interaction.response.defer(thinking=True)

    async def build() -> JobRequest:
        job = await bot.runtime.store.jobs.get(job_id)
        reason = why_not_editable(bot, job) or permission_problem(interaction)
        if reason is not None or job is None:
            raise InputError((reason or NO_FILE_TO_EDIT).removeprefix("⚠️ "))
        prompt = clean_prompt(values.get("prompt"), Mode.EDIT)
        media = await check_media(Mode.EDIT, await _read_output(bot, job), video_filename(job))
        return JobRequest(
            mode=Mode.EDIT,
            prompt=prompt,
            options=VideoOptions(),
            origin=origin_of(interaction, source_message_id=source_id),
            media=media,
            parent_job_id=job.id,
            status_message_id=callback.message_id if callback else None,
        )

    await start_or_explain(bot, interaction, build())


class DeleteButton(JobButton, discord.ui.DynamicItem[discord.ui.Button[Any]], template=r"gv:delete:(?P<job>\d{1,20})"):
    """The requester, or anyone who may manage messages, can remove a delivered video."""

    action, label, emoji = "delete", "Delete", "🗑️"
    style = discord.ButtonStyle.danger

    async def act(self, interaction: discord.Interaction) -> None:
        bot, job_id = bot_of(interaction), self.job_id
        await interaction.response.defer(ephemeral=True, thinking=True)
        job = await bot.runtime.store.jobs.get(job_id)
        if not may_manage(interaction, job):
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
                    lambda: bot.runtime.store.jobs.update(job_id, deleted_at=when, deleted_by=who),
                    what=f"job {job_id} deletion",
                )
            # Its files and stored input go too (a job still finishing loses them at the next sweep); the row
            # stays, so the member's counts and the server's costs are unchanged.
            freed = await bot.janitor.purge([job_id], patient=True)
            if freed.jobs or job.media_purged_at is not None:
                done = "🗑️ Deleted, and the bot's copy of the video with it."
        await interaction.edit_original_response(content=done)


RESULT_BUTTONS = (AgainButton, EditButton, DeleteButton)


def result_view(job: Job) -> discord.ui.View:
    """Buttons under a delivered video. Edit only where xAI can edit it (at most 8.7 seconds)."""
    view = GuardedView(timeout=None)
    view.add_item(AgainButton(job.id))
    if job.video_duration_s is not None and job.video_duration_s <= MAX_EDIT_INPUT_S:
        view.add_item(EditButton(job.id))
    view.add_item(DeleteButton(job.id))
    return view


# -- when the media is gone --------------------------------------------------------------------------


def gone_reason(bot: GrokVideoBot, job: Job) -> str | None:
    """Why the bot no longer has this job's files, in words (no full stop), or None when it never removed them."""
    if job.forgotten_at is not None:
        return FORGOTTEN_TEXT
    if job.media_purged_at is None:
        return None
    if job.deleted_at is not None:
        return "This video was deleted, and the bot's copy of its files with it"
    days = bot.settings.retention.keep_days
    if days is None:  # removed under an earlier MEDIA_RETENTION_DAYS
        return "This video's files were deleted, as this bot keeps them only for a while"
    return f"This video's files were deleted after {kept_for(days)}, as this bot keeps them only that long"


def why_not_editable(bot: GrokVideoBot, job: Job | None) -> str | None:
    if job is None:
        return NO_FILE_TO_EDIT
    gone = gone_reason(bot, job)
    if gone is not None:
        hint = f" {DISCORD_COPY_HINT}" if job.forgotten_at is None and job.deleted_at is None else ""
        return f"{gone}, so I can't edit it.{hint}"
    if not job.output_path or not Path(job.output_path).is_file():
        return NO_FILE_TO_EDIT
    if job.video_duration_s is not None and job.video_duration_s > MAX_EDIT_INPUT_S:
        return f"xAI can only edit videos up to {MAX_EDIT_INPUT_S} seconds long; this one is longer."
    return None


async def _read_output(bot: GrokVideoBot, job: Job) -> bytes:
    """The result's file, for an edit of it; gone meanwhile (a sweep between form and submit) says why."""
    try:
        if not job.output_path:
            raise FileNotFoundError
        return await asyncio.to_thread(Path(job.output_path).read_bytes)
    except OSError:
        fresh = await bot.runtime.store.jobs.get(job.id)
        raise InputError(why_not_editable(bot, fresh) or NO_FILE_TO_EDIT) from None
