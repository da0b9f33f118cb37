"""The price before the work, end to end: a costly video waits for its requester's Confirm, and nothing is
written, queued or counted before it. The expiry is decided by the bot's injected clock, never by sleeping."""

from __future__ import annotations

import pytest

from tests.emulators.discord_emulator import InteractionRecord, MessageRecord
from tests.emulators.discord_rules import iter_components
from tests.harness import BotRig
from tests.mediafactory import make_mp4
from tests.test_limits_e2e import MANAGE_SERVER, reply, stored_jobs

DEAR = {"prompt": "a long sunset", "duration": 10, "resolution": "720p", "model": "grok-imagine-video-1.5"}  # $1.40


def button(message: MessageRecord, label: str) -> str:
    return next(str(c["custom_id"]) for c in iter_components(message.components) if c.get("label") == label)


async def question(rig: BotRig, inter: InteractionRecord) -> MessageRecord:
    """The ephemeral answer that carries Confirm and Cancel."""
    await rig.discord.wait_for(lambda: bool(inter.followup_message_ids), 20)
    message = rig.discord.messages[inter.followup_message_ids[0]]
    assert message.ephemeral
    return message


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_a_costly_video_waits_for_confirm_then_starts(rig: BotRig) -> None:
    emu = rig.discord
    async with rig.running(CONFIRM_ABOVE_USD="0.5", LIMIT_SERVER_USD_PER_DAY="10", LIMIT_USER_VIDEOS="5") as bot:
        inter = await emu.slash("video", DEAR)
        asked = await question(rig, inter)
        before = (await stored_jobs(rig), len(rig.xai.submits()))
        public, said = rig.answer_to(inter), asked.content  # the records are live: what was shown then
        await emu.click(asked.id, button(asked, "Confirm"))
        await rig.wait_for_answer(inter, "Done")
        job = await rig.wait_until_terminal()
        quota = await bot.runtime.jobs.quota(emu.guild_id, emu.user_id)
    assert before == (0, 0)  # nothing written, queued, sent or counted while it waited
    assert "Waiting for the requester to confirm the price" in public and "$1.40" not in public  # said privately
    assert "💵 About $1.40 on grok-imagine-video-1.5." in said
    assert "more than $0.50, so this server asks you to confirm first" in said
    assert "It leaves $8.60 of this server's $10.00 daily budget" in said
    assert "After it, you have 4 videos left per hour" in said and "should start at once" in said
    assert "Confirmed" in emu.messages[asked.id].content and not emu.messages[asked.id].components
    assert job.model == "grok-imagine-video-1.5" and len(rig.xai.submits()) == 1
    assert quota.videos_used == 1 and quota.server_spend_ticks == job.cost_usd_ticks == 14_000_000_000


async def test_cancel_starts_nothing(rig: BotRig) -> None:
    emu = rig.discord
    async with rig.running(CONFIRM_ABOVE_USD="0.5"):
        inter = await emu.slash("video", DEAR)
        asked = await question(rig, inter)
        await emu.click(asked.id, button(asked, "Cancel"))
        await rig.wait_for_answer(inter, "Not started: cancelled")
        stored = await stored_jobs(rig)
    assert "nothing was sent to xAI or counted" in emu.messages[asked.id].content
    assert stored == 0 and not rig.xai.submits()


@pytest.mark.parametrize("late", [True, False])
async def test_an_expired_confirm_says_so_and_starts_nothing(rig: BotRig, late: bool) -> None:
    """Past its few minutes (by the bot's clock, moved here) a Confirm starts nothing; a second before, it does."""
    emu = rig.discord
    clock = Clock()
    async with rig.running(CONFIRM_ABOVE_USD="0.5") as bot:
        bot.confirmations.clock = clock
        inter = await emu.slash("video", DEAR)
        asked = await question(rig, inter)
        clock.now += bot.confirmations.ttl_s + (1 if late else -1)
        await emu.click(asked.id, button(asked, "Confirm"))
        await rig.wait_for_answer(inter, "not confirmed in time" if late else "Done")
        stored = await stored_jobs(rig)
    if late:
        assert "This confirmation expired, so nothing was started" in emu.messages[asked.id].content
    assert (stored, len(rig.xai.submits())) == ((0, 0) if late else (1, 1))


async def test_a_cheap_video_is_not_asked_about_and_0_turns_the_step_off(rig: BotRig) -> None:
    emu = rig.discord
    async with rig.running(CONFIRM_ABOVE_USD="0.5"):
        cheap = await emu.slash("video", {"prompt": "short", "duration": 3})  # $0.06 on lite
        await rig.wait_for_answer(cheap, "Done")
    async with rig.running(CONFIRM_ABOVE_USD="0"):
        dear = await emu.slash("video", DEAR)
        await rig.wait_for_answer(dear, "Done")
    assert not cheap.followup_message_ids and not dear.followup_message_ids
    assert len(rig.xai.submits()) == 2


async def test_more_than_half_of_the_days_budget_left_asks_first(rig: BotRig) -> None:
    emu = rig.discord
    async with rig.running(CONFIRM_ABOVE_USD="100", LIMIT_SERVER_USD_PER_DAY="1"):
        inter = await emu.slash("video", {"prompt": "x", "duration": 10, "model": "grok-imagine-video"})  # $0.50
        fine = await rig.wait_for_answer(inter, "Done")
        second = await emu.slash("video", {"prompt": "y", "duration": 6, "model": "grok-imagine-video"})  # $0.30
        asked = await question(rig, second)
    assert "Done" in fine
    assert "more than half of what is left of this server's daily budget" in asked.content
    assert "It leaves $0.20 of this server's $1.00 daily budget" in asked.content


async def test_a_reply_trigger_job_asks_on_its_message_and_only_its_owner_may_answer(rig: BotRig) -> None:
    """The reply trigger has no private answers: the question is on the bot's message, and a click by anyone
    else gets a private refusal."""
    emu = rig.discord
    async with rig.running(ENABLE_REPLY_TRIGGER="true", CONFIRM_ABOVE_USD="0.5") as bot:
        clip = emu.add_attachment(make_mp4(2.0), "clip.mp4", "video/mp4")
        source = await emu.user_message("my clip", attachments=[clip])
        await emu.user_message(f"<@{bot.user.id}> make it look like film", reply_to=source.id)
        await emu.wait_for(lambda: any("Confirm" in str(m.components) for m in emu.messages.values()), 20)
        asked = next(m for m in emu.messages.values() if "Confirm" in str(m.components))
        said = asked.content
        intruder = await emu.click(asked.id, button(asked, "Confirm"), user_id=emu.other_user_id)
        await emu.wait_for(lambda: bool(intruder.ack_type), 20)
        still = (await stored_jobs(rig), bool(emu.messages[asked.id].components))
        await emu.click(asked.id, button(asked, "Confirm"))
        job = await rig.wait_until_terminal()
    assert "💵 About $0.63 on grok-imagine-video." in said  # an edit: 9 s at 720p, the classic model
    refusal = emu.messages[intruder.original_message_id or 0]
    assert refusal.ephemeral and f"Only <@{emu.user_id}> can confirm or cancel this video" in refusal.content
    assert still == (0, True)
    assert job.status.value == "delivered" and job.model == "grok-imagine-video"


async def test_again_on_a_costly_video_asks_first_too(rig: BotRig) -> None:
    """The result buttons start jobs through the same path: a costly Again waits for Confirm."""
    emu = rig.discord
    classic = "grok-imagine-video"
    async with rig.running(CONFIRM_ABOVE_USD="0", XAI_MODELS=classic):
        first = await emu.slash("video", {"prompt": "waves", "duration": 10, "resolution": "720p"})  # $0.70
        await rig.wait_for_answer(first, "Done")
        posted = await rig.delivered_video()
        job = await rig.wait_until_terminal()
    async with rig.running(CONFIRM_ABOVE_USD="0.5", XAI_MODELS=classic):
        again = await emu.click(posted.id, f"gv:again:{job.id}")
        asked = await question(rig, again)
        said, waiting = asked.content, (await stored_jobs(rig), len(rig.xai.submits()))
        await emu.click(asked.id, button(asked, "Confirm"))
        await rig.wait_for_answer(again, "Done")
    assert "💵 About $0.70 on grok-imagine-video." in said and waiting == (1, 1)
    assert len(rig.xai.submits()) == 2


async def test_a_confirm_pressed_after_a_restart_is_answered_and_starts_nothing(rig: BotRig) -> None:
    """The question outlives the run that asked it (its buttons stay on the message): a click then is answered,
    not left as Discord's "This interaction failed", and starts nothing."""
    emu = rig.discord
    async with rig.running(CONFIRM_ABOVE_USD="0.5"):
        inter = await emu.slash("video", DEAR)
        asked = await question(rig, inter)
    async with rig.running(CONFIRM_ABOVE_USD="0.5"):
        late = await emu.click(asked.id, button(asked, "Confirm"))
        await emu.wait_for(lambda: late.ack_type is not None, 20)
        await emu.wait_for(lambda: "no longer open" in emu.messages[asked.id].content, 20)
        stored = await stored_jobs(rig)
    assert "nothing was started" in emu.messages[asked.id].content and not emu.messages[asked.id].components
    assert (stored, len(rig.xai.submits())) == (0, 0)


async def test_confirm_and_cancel_pressed_together_start_one_video_and_say_so(rig: BotRig) -> None:
    """A double click, or Confirm then Cancel before the buttons vanish: one video, and no word says otherwise."""
    emu = rig.discord
    async with rig.running(CONFIRM_ABOVE_USD="0.5"):
        inter = await emu.slash("video", DEAR)
        asked = await question(rig, inter)
        yes, no = button(asked, "Confirm"), button(asked, "Cancel")
        clicks = [await emu.click(asked.id, yes), await emu.click(asked.id, yes), await emu.click(asked.id, no)]
        await rig.wait_for_answer(inter, "Done")
        await emu.wait_for(lambda: all(click.ack_type is not None for click in clicks), 20)
        stored = await stored_jobs(rig)
    assert (stored, len(rig.xai.submits())) == (1, 1)
    assert "Done" in rig.answer_to(inter) and "Confirmed" in emu.messages[asked.id].content


async def test_confirm_runs_the_model_whose_price_was_shown(rig: BotRig) -> None:
    """A moderator changes the server's default model while the question waits: Confirm starts what was priced
    (lite at $0.18), not the new default (1.5 at $0.84), which nobody agreed to pay."""
    emu = rig.discord
    admin = emu.add_user("admin", permissions=MANAGE_SERVER)
    async with rig.running(CONFIRM_ABOVE_USD="0.1"):
        inter = await emu.slash("video", {"prompt": "a slow pan", "duration": 6, "resolution": "720p"})
        asked = await question(rig, inter)
        said = asked.content  # the records are live: what was shown then
        change = await emu.slash(
            "videoadmin", {"model": "grok-imagine-video-1.5"}, subcommand="defaults", user_id=admin
        )
        await reply(rig, change)
        await emu.click(asked.id, button(asked, "Confirm"))
        await rig.wait_for_answer(inter, "Done")
        job = await rig.wait_until_terminal()
    assert "💵 About $0.18 on grok-imagine-video-1.5-lite." in said
    assert job.model == "grok-imagine-video-1.5-lite" and rig.xai.submits()[0].body["model"] == job.model


async def test_a_confirm_that_lost_the_last_slot_says_it_did_not_start(rig: BotRig) -> None:
    """While the question waits, a cheap video takes the last slot: Confirm checks the limits again, refuses in
    public, and its private answer no longer says the video is starting."""
    emu = rig.discord
    async with rig.running(CONFIRM_ABOVE_USD="0.5", LIMIT_USER_VIDEOS="1"):
        inter = await emu.slash("video", DEAR)
        asked = await question(rig, inter)
        cheap = await emu.slash("video", {"prompt": "short", "duration": 3})
        await rig.wait_for_answer(cheap, "Done")
        await emu.click(asked.id, button(asked, "Confirm"))
        refusal = await rig.wait_for_answer(inter, "⛔")
        await emu.wait_for(lambda: "could not start" in emu.messages[asked.id].content, 20)
    assert "1 video" in refusal and len(rig.xai.submits()) == 1
    assert emu.messages[asked.id].content == "⛔ Confirmed, but it could not start: the public answer says why."


async def test_an_unanswered_question_closes_itself_when_it_expires(rig: BotRig) -> None:
    """Nobody presses anything: when the question's time is up (its timer, run here at once), the public answer
    says it was not started and the private question loses its buttons."""
    emu = rig.discord
    async with rig.running(CONFIRM_ABOVE_USD="0.5") as bot:
        inter = await emu.slash("video", DEAR)
        asked = await question(rig, inter)
        key = button(asked, "Confirm").split(":")[2]
        bot.confirmations.expire(key)
        await rig.wait_for_answer(inter, "not confirmed in time")
        await emu.wait_for(lambda: not emu.messages[asked.id].components, 20)
        stored = await stored_jobs(rig)
    assert "This confirmation expired, so nothing was started" in emu.messages[asked.id].content
    assert (stored, len(rig.xai.submits())) == (0, 0)
