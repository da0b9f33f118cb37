"""The two forms (modals): a prompt for a context-menu job, and an edit prompt for a delivered result.

A form lives in the bot's memory only, so a form opened before a restart (or left open past its
timeout) would be submitted into the void. Each form's custom id therefore carries what it is about,
``gv:form:<kind>:<target>:<source>:<nonce>``, and its answers are read from the submitted data, not
from the form object: the follow-ups cog does the same work for a live form and for a late one.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import discord

from cogs.replies import GuardedModal
from services.jobs.models import ASPECT_RATIOS, Mode
from services.jobs.validation import DEFAULT_MAX_PROMPT_CHARS

if TYPE_CHECKING:
    from cogs.followups import FollowUpCog

FORM_PREFIX = "gv:form:"
FORM_TIMEOUT_S = 900.0  # how long a form object waits in memory; a later submit is still understood
_FORM_ID = re.compile(r"gv:form:(?P<kind>image|edit|result):(?P<target>\d{1,20}):(?P<source>\d{1,20}):[0-9a-f]{8}")


@dataclass(frozen=True, slots=True)
class FormRef:
    """What a form is about. ``image``/``edit``: a context-menu job on message ``target``; ``result``:
    an edit of job ``target``, whose result is message ``source``."""

    kind: str
    target: int
    source: int | None


def form_id(kind: str, target: int, source: int | None) -> str:
    # The nonce keeps two people's forms on the same message apart (discord.py keys forms by custom id).
    return f"{FORM_PREFIX}{kind}:{target}:{source or 0}:{secrets.token_hex(4)}"


def parse_form_id(custom_id: str) -> FormRef | None:
    match = _FORM_ID.fullmatch(custom_id)
    if match is None:
        return None
    source = int(match["source"])
    return FormRef(match["kind"], int(match["target"]), source or None)


def form_values(data: Mapping[str, Any] | None) -> dict[str, str]:
    """The text inputs of a submitted form, by custom id (rows and labels both)."""
    values: dict[str, str] = {}

    def walk(components: Any) -> None:
        for component in components or []:
            if not isinstance(component, Mapping):
                continue
            if component.get("type") == 4 and isinstance(component.get("custom_id"), str):
                values[component["custom_id"]] = str(component.get("value") or "")
            walk(component.get("components"))
            if isinstance(component.get("component"), Mapping):
                walk([component["component"]])

    walk((data or {}).get("components"))
    return values


class _Form(GuardedModal):
    """A form the cog keeps track of, so it can tell a live form's submit from a late one."""

    def __init__(self, cog: FollowUpCog, *, title: str, custom_id: str) -> None:
        super().__init__(title=title, custom_id=custom_id, timeout=FORM_TIMEOUT_S)
        self.cog = cog
        cog.open_forms.add(custom_id)

    def stop(self) -> None:
        self.cog.open_forms.discard(self.custom_id)
        super().stop()

    async def on_timeout(self) -> None:
        self.cog.open_forms.discard(self.custom_id)


class PromptModal(_Form):
    """Asks for the prompt (and, to animate, duration and aspect ratio) for a context-menu job."""

    def __init__(self, cog: FollowUpCog, mode: Mode, source: discord.Message, attachment: discord.Attachment):
        super().__init__(
            cog,
            title="Animate with Grok" if mode is Mode.IMAGE else "Edit video with Grok",
            custom_id=form_id(mode.value, source.id, None),
        )
        self.mode, self.source, self.attachment = mode, source, attachment
        self.add_item(
            discord.ui.TextInput(
                label="Prompt",
                custom_id="prompt",
                style=discord.TextStyle.paragraph,
                placeholder="Make the clouds drift slowly" if mode is Mode.IMAGE else "Turn it into a watercolour",
                max_length=DEFAULT_MAX_PROMPT_CHARS,
                required=mode is Mode.EDIT,
            )
        )
        if mode is Mode.IMAGE:
            self.add_item(
                discord.ui.TextInput(
                    label="Duration in seconds (1-15, optional)", custom_id="duration", required=False, max_length=3
                )
            )
            self.add_item(
                discord.ui.TextInput(
                    label="Aspect ratio (optional)",
                    custom_id="aspect_ratio",
                    placeholder=", ".join(ASPECT_RATIOS),
                    required=False,
                    max_length=5,
                )
            )

    async def on_submit(self, interaction: discord.Interaction) -> None:
        values = form_values(interaction.data)
        await self.cog.submit_prompt_form(interaction, self.mode, self.source.id, values, self.attachment)


class EditResultModal(_Form):
    """Asks how a delivered video should change; the edit is made from that result."""

    def __init__(self, cog: FollowUpCog, job_id: int, source_message_id: int | None) -> None:
        super().__init__(cog, title="Edit this video", custom_id=form_id("result", job_id, source_message_id))
        self.job_id, self.source_message_id = job_id, source_message_id
        self.add_item(
            discord.ui.TextInput(
                label="How should the video change?",
                custom_id="prompt",
                style=discord.TextStyle.paragraph,
                placeholder="Make it look like an old film",
                max_length=DEFAULT_MAX_PROMPT_CHARS,
            )
        )

    async def on_submit(self, interaction: discord.Interaction) -> None:
        values = form_values(interaction.data)
        await self.cog.results.submit_result_form(interaction, self.job_id, self.source_message_id, values)
