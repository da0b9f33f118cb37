"""The forms (modals): a prompt for a context-menu job, and an edit or extension of a delivered result.

A form lives in the bot's memory only, so a form opened before a restart (or left open past its
timeout) would be submitted into the void. Each form's custom id therefore carries what it is about,
``gv:form:<kind>:<target>:<source>:<nonce>``, and its answers are read from the submitted data, not
from the form object: its owner (the context menus, or the Edit button of a result) does the same
work for a live form and for a late one, which ``late_form`` recognises.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import discord

from cogs.replies import GuardedModal, report
from services.jobs.models import Mode
from services.jobs.validation import DEFAULT_EXTEND_S, DEFAULT_MAX_PROMPT_CHARS, MAX_EXTEND_S, MIN_EXTEND_S

log = logging.getLogger(__name__)

FORM_PREFIX = "gv:form:"
FORM_TIMEOUT_S = 900.0  # how long a form object waits in memory; a later submit is still understood
_FORM_ID = re.compile(
    r"gv:form:(?P<kind>image|edit|result|extend):(?P<target>\d{1,20}):(?P<source>\d{1,20}):[0-9a-f]{8}"
)
RESULT = "result"  # the kind of a result's Edit form; "image" and "edit" are the context menus' (Mode values)
EXTEND = "extend"  # the kind of a result's Extend form (the results cog's too)
RESULT_FORMS = frozenset({RESULT, EXTEND})  # the forms a result's buttons open
UNREADABLE = ""  # the kind of a late form whose id this version cannot read

# What a form's owner does with its answers, for a live form and a late one alike.
FormAnswer = Callable[[discord.Interaction, dict[str, str]], Awaitable[None]]


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


def late_form(interaction: discord.Interaction, open_forms: set[str]) -> FormRef | None:
    """What a submitted form is about when no live form object answers it (the bot restarted, or stopped
    waiting); None for anything else: not a form, not one of ours, or one in ``open_forms``."""
    if interaction.type is not discord.InteractionType.modal_submit:
        return None
    custom_id = interaction.custom_id or ""
    if not custom_id.startswith(FORM_PREFIX) or custom_id in open_forms:
        return None  # not ours, or the live form object answers it
    form = parse_form_id(custom_id)
    if form is None:
        return FormRef(UNREADABLE, 0, None)
    log.info("Form %s arrived for a form this run did not open; answering it from its id", custom_id)
    return form


async def answer_late(interaction: discord.Interaction, answer: FormAnswer) -> None:
    """Answer a late form from its submitted data; a failure is told to the person, as for a live form."""
    try:
        await answer(interaction, form_values(interaction.data))
    except Exception as error:
        await report(interaction, error, what=f"form {interaction.custom_id} (opened before a restart)")


class _Form(GuardedModal):
    """A form its owner keeps track of in ``open_forms``, so a live form's submit is told from a late one."""

    def __init__(self, open_forms: set[str], answer: FormAnswer, *, title: str, custom_id: str) -> None:
        super().__init__(title=title, custom_id=custom_id, timeout=FORM_TIMEOUT_S)
        self.open_forms = open_forms
        self.answer = answer
        open_forms.add(custom_id)

    def stop(self) -> None:
        self.open_forms.discard(self.custom_id)
        super().stop()

    async def on_timeout(self) -> None:
        self.open_forms.discard(self.custom_id)

    async def on_submit(self, interaction: discord.Interaction) -> None:
        await self.answer(interaction, form_values(interaction.data))


class PromptModal(_Form):
    """Asks for the prompt (and, to animate, the duration) for a context-menu job; an animation follows its
    image's shape, so there is no aspect ratio to ask."""

    def __init__(self, open_forms: set[str], answer: FormAnswer, mode: Mode, source: discord.Message) -> None:
        super().__init__(
            open_forms,
            answer,
            title="Animate with Grok" if mode is Mode.IMAGE else "Edit video with Grok",
            custom_id=form_id(mode.value, source.id, None),
        )
        self.add_item(
            prompt_input(
                "Prompt",
                "Make the clouds drift slowly" if mode is Mode.IMAGE else "Turn it into a watercolour",
                required=mode is Mode.EDIT,
            )
        )
        if mode is Mode.IMAGE:
            self.add_item(
                discord.ui.TextInput(
                    label="Duration in seconds (1-15, optional)", custom_id="duration", required=False, max_length=3
                )
            )


def prompt_input(label: str, placeholder: str, *, required: bool = True) -> discord.ui.TextInput[Any]:
    """The prompt box every form has (its id is what the handlers read)."""
    return discord.ui.TextInput(
        label=label,
        custom_id="prompt",
        style=discord.TextStyle.paragraph,
        placeholder=placeholder,
        max_length=DEFAULT_MAX_PROMPT_CHARS,
        required=required,
    )


class _ResultForm(_Form):
    """A form about delivered job ``job_id`` (its result is message ``source_message_id``): ``kind`` in its id,
    ``heading`` its title, ``inputs`` what it asks."""

    kind, heading = RESULT, ""

    def __init__(self, open_forms: set[str], answer: FormAnswer, job_id: int, source_message_id: int | None) -> None:
        custom_id = form_id(self.kind, job_id, source_message_id)
        super().__init__(open_forms, answer, title=self.heading, custom_id=custom_id)
        for text_input in self.inputs():
            self.add_item(text_input)

    def inputs(self) -> list[discord.ui.TextInput[Any]]:
        raise NotImplementedError


class EditResultModal(_ResultForm):
    """Asks how a delivered video should change; the edit is made from that result."""

    kind, heading = RESULT, "Edit this video"

    def inputs(self) -> list[discord.ui.TextInput[Any]]:
        return [prompt_input("How should the video change?", "Make it look like an old film")]


class ExtendResultModal(_ResultForm):
    """Asks how many seconds to add to a delivered video (2 to 10) and, optionally, what happens next."""

    kind, heading = EXTEND, "Extend this video"

    def inputs(self) -> list[discord.ui.TextInput[Any]]:
        return [
            discord.ui.TextInput(
                label=f"Seconds to add ({MIN_EXTEND_S}-{MAX_EXTEND_S}, default {DEFAULT_EXTEND_S})",
                custom_id="seconds",
                required=False,
                max_length=3,
                placeholder=str(DEFAULT_EXTEND_S),
            ),
            prompt_input("What happens next? (optional)", "The camera keeps flying over the hills", required=False),
        ]
