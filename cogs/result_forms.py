"""A form about a delivered result (Edit, Extend): refused at once when it cannot help, else opened; once sent,
the follow-up's request, made from the result's own file.

A form must be the first answer to the click, and Discord allows 3 seconds, so only a quick, bounded look at
the store comes before it; when the store is slow the form opens anyway and its submit checks again. Both
buttons share this, each with its own reason for refusing and its own form.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, cast

import discord

from cogs.buttons import JobButton, bot_of
from cogs.forms import FormAnswer
from cogs.intake import origin_of, permission_problem, start_or_explain
from cogs.kept import read_output
from services.delivery.places import video_filename
from services.jobs.models import Job, JobRequest, Mode, VideoOptions
from services.jobs.validation import InputError, check_media

if TYPE_CHECKING:
    from bot import GrokVideoBot
    from cogs.results import ResultsCog

log = logging.getLogger(__name__)

FAST_READ_S = 1.5  # the longest a look at the store may take before the form must open

WhyNot = Callable[["GrokVideoBot", Job | None], str | None]
FollowUp = Callable[["GrokVideoBot", discord.Interaction, int, int | None, dict[str, str]], Awaitable[None]]
ResultForm = Callable[[set[str], FormAnswer, int, int | None], discord.ui.Modal]


Answers = Callable[[Job, dict[str, str]], tuple[str, VideoOptions]]  # the form's values as (prompt, options)


@dataclass(frozen=True, slots=True)
class FormFacts:
    """What a result form is about: its mode and form, when it cannot help, and how the sent form reads."""

    mode: Mode
    form: ResultForm
    why_not: WhyNot
    missing: str  # what to say when the result's file is gone
    answers: Answers


class FormButton(JobButton):
    """A result button whose first answer is a form about that result (Edit, Extend), as ``facts`` says."""

    facts: ClassVar[FormFacts]

    async def act(self, interaction: discord.Interaction) -> None:
        await open_result_form(interaction, self.job_id, self.facts.why_not, self.facts.form, self.made)

    @classmethod
    async def made(
        cls, bot: GrokVideoBot, sent: discord.Interaction, job_id: int, source: int | None, values: dict[str, str]
    ) -> None:
        """The form was sent (now, or after a restart through ``ResultsCog``): the follow-up starts."""
        facts = cls.facts
        await follow_up(
            bot, sent, job_id, source, facts.mode, facts.why_not, facts.missing, lambda job: facts.answers(job, values)
        )


async def open_result_form(
    interaction: discord.Interaction,
    job_id: int,
    why_not: WhyNot,
    form: ResultForm,
    made: FollowUp,
) -> None:
    """Answer a click on a result's button with ``form``, or privately with ``why_not``'s reason; a sent form
    goes to ``made`` (as a late one does, through ``ResultsCog``)."""
    bot = bot_of(interaction)
    refusal = permission_problem(interaction)
    if refusal is None:
        try:
            job = await asyncio.wait_for(bot.runtime.store.jobs.get(job_id), FAST_READ_S)
        except TimeoutError:
            log.info("Job %d: the store was slow; opening the form and checking on submit", job_id)
        else:
            reason = why_not(bot, job)
            refusal = f"❌ {reason}" if reason else None
    if refusal is not None:
        await interaction.response.send_message(refusal, ephemeral=True)
        return
    source = interaction.message.id if interaction.message else None

    async def answer(sent: discord.Interaction, values: dict[str, str]) -> None:
        await made(bot, sent, job_id, source, values)

    open_forms = cast("ResultsCog", bot.get_cog("ResultsCog")).open_forms
    await interaction.response.send_modal(form(open_forms, answer, job_id, source))


async def follow_up(
    bot: GrokVideoBot,
    interaction: discord.Interaction,
    job_id: int,
    source_id: int | None,
    mode: Mode,
    why_not: WhyNot,
    missing: str,
    answers: Callable[[Job], tuple[str, VideoOptions]],
) -> None:
    """A result's form was sent: a follow-up of mode ``mode`` made from job ``job_id``'s own file, started
    through the same accept path as every job (limits, and any confirmation step). It is checked again (the
    file may have been swept since the click), ``answers`` reads the form, the file is judged like any input
    and goes with the request, which names its parent."""
    callback = await interaction.response.defer(thinking=True)

    async def build() -> JobRequest:
        job = await bot.runtime.store.jobs.get(job_id)
        reason = why_not(bot, job) or permission_problem(interaction)
        if reason is not None or job is None:
            raise InputError((reason or missing).removeprefix("⚠️ "))
        prompt, options = answers(job)
        output = await read_output(bot, job, lambda fresh: why_not(bot, fresh), missing)
        return JobRequest(
            mode=mode,
            prompt=prompt,
            options=options,
            origin=origin_of(interaction, source_message_id=source_id),
            media=await check_media(mode, output, video_filename(job)),
            parent_job_id=job.id,
            status_message_id=callback.message_id if callback else None,
        )

    await start_or_explain(bot, interaction, build())
