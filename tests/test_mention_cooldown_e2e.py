"""A member cannot make the bot spam a channel by mentioning it: one explanation per member per minute.

Help for a bare mention, "I can't see attachments here", a mistake or a refusal explained: each is a
message in the channel. A member gets at most one of them a minute and the repeats get nothing; other
members are answered as usual, and a request that starts a job is never held back. The cog's clock is
moved forward instead of waiting out the minute.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tests.emulators.discord_emulator import MessageRecord
from tests.harness import BotRig
from tests.mediafactory import make_image

if TYPE_CHECKING:
    from bot import GrokVideoBot
    from cogs.mentions import MentionsCog


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _use_clock(bot: GrokVideoBot) -> FakeClock:
    cog: MentionsCog = bot.get_cog("MentionsCog")  # type: ignore[assignment]
    clock = FakeClock()
    cog.answers.clock = clock
    return clock


def _answers_to(rig: BotRig, message: MessageRecord) -> list[MessageRecord]:
    return [
        m
        for m in rig.discord.messages_in(rig.discord.channel_id)
        if m.via == "bot" and m.message_reference and int(m.message_reference["message_id"]) == message.id
    ]


async def _answered(rig: BotRig, message: MessageRecord) -> MessageRecord:
    await rig.discord.wait_for(lambda: bool(_answers_to(rig, message)))
    return _answers_to(rig, message)[0]


async def test_repeated_mentions_get_one_answer_a_minute_and_others_are_still_answered(rig: BotRig) -> None:
    """Five mentions in a row: one help. Another member is answered meanwhile; a minute later, the first again."""
    emu = rig.discord
    async with rig.running() as bot:
        clock = _use_clock(bot)
        spam = [await emu.user_message(f"<@{bot.user.id}> hello {n}") for n in range(5)]
        other = await emu.user_message(f"<@{bot.user.id}> what can you do?", author_id=emu.other_user_id)
        await _answered(rig, other)  # messages are handled in order: all five were seen by now
        answered_spam = [m for m in spam if _answers_to(rig, m)]
        clock.now += 61
        later = await emu.user_message(f"<@{bot.user.id}> hello again")
        await _answered(rig, later)
    assert answered_spam == spam[:1]
    assert len([m for m in emu.messages_in(emu.channel_id) if m.via == "bot"]) == 3
    assert not rig.xai.requests


async def test_every_kind_of_explanation_shares_the_pause(rig: BotRig) -> None:
    """Help, then a reply the bot cannot act on (no image), then one with no prompt: only the first is answered."""
    emu = rig.discord
    async with rig.running(ENABLE_REPLY_TRIGGER="true") as bot:
        _use_clock(bot)
        photo = emu.add_attachment(make_image("PNG"), "a.png", "image/png")
        with_image = await emu.user_message("pic", attachments=[photo], author_id=emu.other_user_id)
        words_only = await emu.user_message("no files here", author_id=emu.other_user_id)
        first = await emu.user_message(f"<@{bot.user.id}>")
        no_file = await emu.user_message(f"<@{bot.user.id}> animate it", reply_to=words_only.id)
        no_prompt = await emu.user_message(f"<@{bot.user.id}>", reply_to=with_image.id)
        probe = await emu.user_message(f"<@{bot.user.id}>", author_id=emu.other_user_id)
        await _answered(rig, probe)
    assert "/video" in (await _answered(rig, first)).content
    assert not _answers_to(rig, no_file) and not _answers_to(rig, no_prompt)


async def test_a_request_right_after_an_answer_still_starts_its_job(rig: BotRig) -> None:
    """The pause holds back explanations only: a real request a moment after the help makes its video."""
    emu = rig.discord
    async with rig.running(ENABLE_REPLY_TRIGGER="true") as bot:
        _use_clock(bot)
        await _answered(rig, await emu.user_message(f"<@{bot.user.id}> hi"))
        photo = emu.add_attachment(make_image("PNG"), "cat.png", "image/png")
        source = await emu.user_message("my cat", attachments=[photo], author_id=emu.other_user_id)
        ask = await emu.user_message(f"<@{bot.user.id}> make the cat wave", reply_to=source.id)
        posted = await rig.delivered_video()
        job = await rig.wait_until_terminal()
    assert job.prompt == "make the cat wave" and job.status.value == "delivered"
    assert posted.message_reference and int(posted.message_reference["message_id"]) == ask.id
