"""The context menus: right-click any message with an image (Animate with Grok) or an MP4 (Edit video
with Grok), fill in the form, and the video replies to that message.

The form is acknowledged before anything slow (a store write, the download): a database that another
program holds locked must not keep anyone past Discord's 3 seconds. A form sent after a restart is
answered from its id (cogs/forms.py), its message read again.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from cogs.forms import RESULT_FORMS, UNREADABLE, FormRef, PromptModal, answer_late, late_form
from cogs.intake import (
    SOURCE_GONE,
    origin_of,
    permission_problem,
    read_media,
    requester_of,
    start_or_explain,
    usable_attachment,
)
from services.jobs.models import JobRequest, Mode, VideoOptions
from services.jobs.validation import InputError, clean_prompt, parse_options

if TYPE_CHECKING:
    from bot import GrokVideoBot


class MenusCog(commands.Cog):
    def __init__(self, bot: GrokVideoBot) -> None:
        self.bot = bot
        self.menus = [
            app_commands.guild_only(app_commands.ContextMenu(name="Animate with Grok", callback=self.animate_message)),
            app_commands.guild_only(
                app_commands.ContextMenu(name="Edit video with Grok", callback=self.edit_message_video)
            ),
        ]
        self.open_forms: set[str] = set()  # custom ids of the forms this run is waiting for

    async def cog_load(self) -> None:
        for menu in self.menus:
            self.bot.tree.add_command(menu)

    async def cog_unload(self) -> None:
        for menu in self.menus:
            self.bot.tree.remove_command(menu.name, type=menu.type)

    async def animate_message(self, interaction: discord.Interaction, message: discord.Message) -> None:
        await self._open_prompt(interaction, message, Mode.IMAGE)

    async def edit_message_video(self, interaction: discord.Interaction, message: discord.Message) -> None:
        await self._open_prompt(interaction, message, Mode.EDIT)

    async def _open_prompt(self, interaction: discord.Interaction, message: discord.Message, mode: Mode) -> None:
        attachment = usable_attachment(message, mode)
        if attachment is None:
            what = "image (PNG, JPEG or WebP)" if mode is Mode.IMAGE else "MP4 video (up to 8.7 seconds)"
            await interaction.response.send_message(
                f"That message has no {what} I can use. Try it on a message that carries one, or use `/video` "
                "and attach the file.",
                ephemeral=True,
            )
            return
        problem = permission_problem(interaction)
        if problem is not None:
            await interaction.response.send_message(problem, ephemeral=True)
            return

        async def answer(sent: discord.Interaction, values: dict[str, str]) -> None:
            await self.submit_prompt_form(sent, mode, message.id, values, attachment)

        await interaction.response.send_modal(PromptModal(self.open_forms, answer, mode, message))

    async def submit_prompt_form(
        self,
        interaction: discord.Interaction,
        mode: Mode,
        source_id: int,
        values: dict[str, str],
        attachment: discord.Attachment | None,
    ) -> None:
        """A context-menu form was sent (``attachment`` is None when the form outlived the bot's memory)."""
        callback = await interaction.response.defer(thinking=True)
        request = JobRequest(
            mode=mode,
            prompt="",
            options=VideoOptions(),
            origin=origin_of(interaction, source_message_id=source_id),
            status_message_id=callback.message_id if callback else None,
        )
        building = self._with_answers(interaction, request, values, source_id, attachment)
        await start_or_explain(self.bot, interaction, building)

    async def _with_answers(
        self,
        interaction: discord.Interaction,
        request: JobRequest,
        values: dict[str, str],
        source_id: int,
        attachment: discord.Attachment | None,
    ) -> JobRequest:
        """The request with the form's answers and the message's file, screened before the download."""
        problem = permission_problem(interaction)
        if problem is not None:
            raise InputError(problem.removeprefix("⚠️ "))
        mode = request.mode
        options = parse_options(mode, duration=values.get("duration"), aspect_ratio=values.get("aspect_ratio"))
        request = replace(request, prompt=clean_prompt(values.get("prompt"), mode), options=options)
        parent = await self.bot.runtime.store.jobs.by_delivered_message(source_id)  # used on one of the bot's results
        if parent is not None:
            request = replace(request, parent_job_id=parent.id)
        await self.bot.runtime.jobs.screen(request, requester_of(interaction))  # before downloading
        if attachment is None:
            attachment = await _attachment_of(interaction, source_id, mode)
        return replace(request, media=await read_media(attachment, mode, lost=SOURCE_GONE))

    @commands.Cog.listener()
    async def on_interaction(self, interaction: discord.Interaction) -> None:
        """A form sent after the bot restarted (or after it stopped waiting) is still understood. A result's
        Edit and Extend forms are the results cog's; every other late form is answered here, an unreadable one
        included."""
        form = late_form(interaction, self.open_forms)
        if form is None or form.kind in RESULT_FORMS:
            return

        async def answer(late: discord.Interaction, values: dict[str, str]) -> None:
            await self._answer_late(late, form, values)

        await answer_late(interaction, answer)

    async def _answer_late(self, interaction: discord.Interaction, form: FormRef, values: dict[str, str]) -> None:
        if form.kind == UNREADABLE:
            raise ValueError(f"unreadable form id {interaction.custom_id!r}")
        await self.submit_prompt_form(interaction, Mode(form.kind), form.target, values, None)


async def _attachment_of(interaction: discord.Interaction, message_id: int, mode: Mode) -> discord.Attachment:
    """The attachment a late form is about, read again from its message."""
    channel = interaction.channel
    if not isinstance(channel, discord.abc.Messageable):
        raise InputError("I can't read that message any more. Right-click it and choose the app again.")
    try:
        message = await channel.fetch_message(message_id)
    except discord.HTTPException:
        raise InputError("I can't find that message any more; it may have been deleted.") from None
    attachment = usable_attachment(message, mode)
    if attachment is None:
        raise InputError("That message no longer has a file I can use.")
    return attachment


async def setup(bot: GrokVideoBot) -> None:
    await bot.add_cog(MenusCog(bot))
