"""The buttons under a delivered video, each with what it does: Again, Edit and Delete (Extend: cogs/extending.py).

Each handler acknowledges before anything slow: a store write may wait out another program's lock
(``patiently``), and Discord allows 3 seconds. An Edit form must be the first answer, so only a
quick, bounded look at the store comes before it. Errors reach the person through cogs/replies.py.
What the buttons remember within one run (recent Again clicks, the Edit forms still open) is kept by
``ResultsCog``, which also answers an Edit form sent after a restart.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import discord
from discord.ext import commands

from cogs.buttons import JobButton, bot_of, may_manage
from cogs.confirm import ConfirmButton, ask_first
from cogs.extending import ExtendButton
from cogs.forms import EXTEND, RESULT_FORMS, EditResultModal, answer_late, late_form
from cogs.intake import origin_of, permission_problem, refusal_text, requester_of, start_job
from cogs.kept import FORGOTTEN_TEXT, gone_reason
from cogs.replies import GuardedView
from cogs.result_forms import FormButton, FormFacts
from services.jobs.models import MAX_EDIT_INPUT_S, Job, JobRequest, Mode, VideoOptions
from services.jobs.validation import clean_prompt
from services.policy.guild_policy import default_policy
from services.policy.limits import Refused
from services.store.patience import patiently

if TYPE_CHECKING:
    from bot import GrokVideoBot

log = logging.getLogger(__name__)

NO_FILE_TO_EDIT = "I no longer have this video's file, so I can't edit it."
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
        if form is None or form.kind not in RESULT_FORMS:
            return
        job_id, source = form.target, form.source
        made = (ExtendButton if form.kind == EXTEND else EditButton).made
        await answer_late(interaction, lambda late, values: made(self.bot, late, job_id, source, values))


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
                "👆 That was a second click on **Again**: only the first one counts, so at most one new video comes "
                "of it.",
                ephemeral=True,
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
            model=job.model,  # again means the same model, while it is offered here
        )
        gone = await model_gone(bot, job, interaction.guild_id)
        if gone is not None:
            return await self._on_another_model(interaction, job, replace(request, model=None), gone)
        return await start_job(bot, interaction, request)

    async def _on_another_model(
        self, interaction: discord.Interaction, job: Job, request: JobRequest, where: str
    ) -> bool:
        """The video's model is no longer offered: say so, and what Again would make instead (the model the server
        would choose, and its price), and start it only on the member's Confirm. Nobody chose the new model, so
        its look and price are shown before anything is sent or counted."""
        bot = bot_of(interaction)
        was = f"ℹ️ Job #{job.id} was made with `{job.model}`, which is no longer offered {where}"
        try:
            quote = await bot.runtime.jobs.quote(request, requester_of(interaction))
        except Refused as refused:
            await interaction.edit_original_response(
                content=f"{was}, and it can't be made another way here:\n{refusal_text(refused.refusal)}"
            )
            return False
        note = (
            f"{was}, so Again would make this one with `{quote.request.model}` instead "
            "(to pick another, use `/video` with `model:`)."
        )

        async def go() -> bool:  # the priced request: its model stays what was shown
            return await start_job(bot, interaction, quote.request, confirmed=True)

        await ask_first(bot, interaction, quote, go, note=note)
        return True


async def model_gone(bot: GrokVideoBot, job: Job, guild_id: int | None) -> str | None:
    """Where ``job``'s model is no longer offered ("here": the bot dropped it from XAI_MODELS; "in this server":
    the server no longer allows it); None while Again can use it (or the job recorded none)."""
    if job.model is None:
        return None
    rules = bot.runtime.jobs.rules
    policy = await rules.policy(guild_id) if guild_id is not None else default_policy(rules.defaults)
    if policy.catalog.get(job.model) is None:
        return "here"
    return None if policy.allows_model(job.model) else "in this server"


def edit_answers(job: Job, values: dict[str, str]) -> tuple[str, VideoOptions]:
    """The Edit form: how the video should change."""
    return clean_prompt(values.get("prompt"), Mode.EDIT), VideoOptions()


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


def result_view(job: Job) -> discord.ui.View:
    """Buttons under a delivered video. Edit only where xAI can edit it (at most 8.7 seconds); Extend on every
    one (a clip outside the 2 to 15 seconds xAI extends is told so when it is clicked)."""
    view = GuardedView(timeout=None)
    view.add_item(AgainButton(job.id))
    if job.video_duration_s is not None and job.video_duration_s <= MAX_EDIT_INPUT_S:
        view.add_item(EditButton(job.id))
    view.add_item(ExtendButton(job.id))
    view.add_item(DeleteButton(job.id))
    return view


# -- when the media is gone --------------------------------------------------------------------------


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


class EditButton(FormButton, discord.ui.DynamicItem[discord.ui.Button[Any]], template=r"gv:edit:(?P<job>\d{1,20})"):
    """Open the Edit form. A form must be the first answer, so only a quick look at the store comes first; once
    sent, the edit is made from that result's file."""

    action, label, emoji = "edit", "Edit", "✏️"
    facts = FormFacts(Mode.EDIT, EditResultModal, why_not_editable, NO_FILE_TO_EDIT, edit_answers)


# With the Confirm step's (cogs/confirm.py): every button bot.py registers for messages of earlier runs too.
RESULT_BUTTONS = (AgainButton, EditButton, ExtendButton, DeleteButton, ConfirmButton)
