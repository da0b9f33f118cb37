"""A reply is not a request: only a mention written in the text (or the bot's role) asks the bot for anything.

Discord puts the replied-to author in a reply's mentions whenever the reply pings (the default), so a
chat reply under a delivered video "mentions" the bot. These tests drive the real bot through the
emulator, which does exactly that (`user_message(..., reply_to=..., ping_reply=True)`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
from discord.ext import commands

from tests.emulators.discord_emulator import MessageRecord
from tests.harness import BotRig
from tests.mediafactory import make_image


def _bot_replies_to(rig: BotRig, message: MessageRecord) -> list[MessageRecord]:
    return [
        m
        for m in rig.discord.messages_in(rig.discord.channel_id)
        if m.via == "bot" and m.message_reference and int(m.message_reference["message_id"]) == message.id
    ]


async def _help_for(
    rig: BotRig,
    bot_id: int,
    text: str = "",
    *,
    author_id: int | None = None,
    or_until: Callable[[], bool] = lambda: False,
) -> MessageRecord | None:
    """Mention the bot outside a reply and wait for its short help, which also proves that every earlier
    message was handled (they are handled in order). Stops early when ``or_until()`` holds. Each probe
    needs an author the bot has not answered in the last minute (``author_id``; default the test user)."""
    probe = await rig.discord.user_message(f"<@{bot_id}> {text}".strip(), author_id=author_id)
    await rig.discord.wait_for(lambda: bool(_bot_replies_to(rig, probe)) or or_until())
    answers = _bot_replies_to(rig, probe)
    return answers[0] if answers else None


@pytest.mark.parametrize("trigger", ["true", "false"])
async def test_a_pinging_reply_under_a_delivered_video_starts_nothing_and_gets_no_answer(
    rig: BotRig, trigger: str
) -> None:
    """ "lol this is great" as a pinging reply to the bot's video: no job, no answer, no xAI request."""
    emu = rig.discord
    async with rig.running(ENABLE_REPLY_TRIGGER=trigger) as bot:
        await emu.slash("video", {"prompt": "a kite", "duration": 3})
        video = await rig.delivered_video()
        await rig.wait_until_terminal()
        submits_before = len([r for r in rig.xai.requests if r.method == "POST"])
        chat = await emu.user_message("lol this is great", reply_to=video.id, ping_reply=True)
        assert emu.bot_user_id in chat.mentions  # Discord's doing, not the person's
        await _help_for(rig, bot.user.id, or_until=lambda: bool(_bot_replies_to(rig, chat)))
        jobs = await bot.runtime.store.jobs.of_user(emu.user_id)
    assert not _bot_replies_to(rig, chat)
    assert len(jobs) == 1 and len([r for r in rig.xai.requests if r.method == "POST"]) == submits_before


@pytest.mark.parametrize("form", ["<@{id}>", "<@!{id}>", "<@&{role}>"])
async def test_an_explicit_mention_in_a_reply_is_a_request(rig: BotRig, form: str) -> None:
    """`<@id>`, `<@!id>` and the bot's own role mention each start the job, and leave the mention out of the prompt."""
    emu = rig.discord
    role = emu.add_bot_role(emu.guild_id, "Grok Video")
    async with rig.running(ENABLE_REPLY_TRIGGER="true") as bot:
        await emu.wait_for(lambda: (g := bot.get_guild(emu.guild_id)) is not None and g.self_role is not None)
        photo = emu.add_attachment(make_image("PNG"), "sky.png", "image/png")
        source = await emu.user_message("look", attachments=[photo], author_id=emu.other_user_id)
        mention = form.format(id=bot.user.id, role=role)
        await emu.user_message(f"{mention} make the clouds move", reply_to=source.id, ping_reply=False)
        await rig.delivered_video()
        job = await rig.wait_until_terminal()
    assert job.prompt == "make the clouds move" and job.mode.value == "image"


@pytest.mark.parametrize("trigger", ["true", "false"])
async def test_a_mention_outside_a_reply_gets_the_short_help_and_starts_nothing(rig: BotRig, trigger: str) -> None:
    """A bare mention, or a mention with words but no reply, gets how to use the bot; no job, no xAI request."""
    async with rig.running(ENABLE_REPLY_TRIGGER=trigger) as bot:
        bare = await _help_for(rig, bot.user.id)
        worded = await _help_for(rig, bot.user.id, "a dragon over the sea", author_id=rig.discord.other_user_id)
        jobs = await bot.runtime.store.jobs.of_user(rig.discord.user_id)
    for answer in (bare, worded):
        assert answer is not None
        assert "/video" in answer.content and "Animate with Grok" in answer.content
        assert ("reply to such a message" in answer.content) is (trigger == "true")
        assert not answer.mentions and not answer.mention_roles and not answer.mention_everyone
    assert not jobs and not rig.xai.requests


async def test_a_mention_is_not_parsed_as_a_text_command(rig: BotRig, caplog: pytest.LogCaptureFixture) -> None:
    """Mentions are not a command prefix: no CommandNotFound (or any error) is logged for them."""
    caplog.set_level(logging.INFO)

    def not_found() -> list[logging.LogRecord]:
        return [r for r in caplog.records if r.exc_info and isinstance(r.exc_info[1], commands.CommandNotFound)]

    async with rig.running(ENABLE_REPLY_TRIGGER="true") as bot:
        await _help_for(rig, bot.user.id, "hello there", or_until=lambda: bool(not_found()))
        await _help_for(
            rig, bot.user.id, "video a cat", author_id=rig.discord.other_user_id, or_until=lambda: bool(not_found())
        )
    assert not not_found()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], [r.getMessage() for r in caplog.records]
