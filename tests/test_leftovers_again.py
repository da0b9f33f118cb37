"""Again on a video whose model is no longer offered (dropped from XAI_MODELS, or no longer allowed in this
server): the member is told so, and shown what Again would do instead (the model it would use, and its price)
before anything is sent, written or counted; Confirm makes it, Cancel makes nothing."""

from __future__ import annotations

from tests.harness import BotRig
from tests.test_confirm_e2e import button, question
from tests.test_limits_e2e import MANAGE_SERVER, reply, stored_jobs
from tests.test_models_e2e import CLASSIC, LITE, V15


async def _made_on_v15(rig: BotRig) -> tuple[int, int]:
    """A delivered video made on grok-imagine-video-1.5: (its message, its job)."""
    async with rig.running(XAI_MODELS=f"{LITE},{V15},{CLASSIC}"):
        await rig.discord.slash("video", {"prompt": "a fox in the snow", "duration": 3, "model": V15})
        posted = await rig.delivered_video()
        job = await rig.wait_until_terminal()
    assert job.model == V15
    return posted.id, job.id


async def test_again_on_a_dropped_model_says_so_and_asks_before_using_the_default(rig: BotRig) -> None:
    message_id, job_id = await _made_on_v15(rig)
    emu = rig.discord
    async with rig.running(XAI_MODELS=f"{LITE},{CLASSIC}"):
        click = await emu.click(message_id, f"gv:again:{job_id}")
        asked = await question(rig, click)
        said, public = asked.content, rig.answer_to(click)
        before = (await stored_jobs(rig), len(rig.xai.submits()))
        await emu.click(asked.id, button(asked, "Confirm"))
        await rig.wait_for_answer(click, "Done")
        remade = await rig.wait_until_terminal()
    assert said.startswith(
        f"ℹ️ Job #{job_id} was made with `{V15}`, which is no longer offered here, so Again would make this one "
        f"with `{LITE}` instead (to pick another, use `/video` with `model:`).\n"
    )
    assert f"About $0.06 on {LITE}" in said  # 3 s at 480p on lite
    assert "choose one of" not in said and "choose one of" not in public
    assert "Waiting for the requester to confirm" in public
    assert before == (1, 1)  # only the first video: nothing was written or sent while it asked
    assert remade.id != job_id and remade.model == LITE and remade.parent_job_id == job_id
    assert rig.xai.submits()[-1].body["model"] == LITE


async def test_again_on_a_model_this_server_stopped_allowing_says_so_and_cancel_makes_nothing(rig: BotRig) -> None:
    message_id, job_id = await _made_on_v15(rig)
    emu = rig.discord
    admin = emu.add_user("admin", permissions=MANAGE_SERVER)
    async with rig.running(XAI_MODELS=f"{LITE},{V15},{CLASSIC}"):
        only = await emu.slash("videoadmin", {"allowed_models": CLASSIC}, subcommand="defaults", user_id=admin)
        assert f"allowed: {CLASSIC}" in (await reply(rig, only)).content + str((await reply(rig, only)).embeds)
        click = await emu.click(message_id, f"gv:again:{job_id}")
        asked = await question(rig, click)
        said = asked.content
        await emu.click(asked.id, button(asked, "Cancel"))
        await rig.wait_for_answer(click, "Not started: cancelled")
        stored = await stored_jobs(rig)
    assert said.startswith(
        f"ℹ️ Job #{job_id} was made with `{V15}`, which is no longer offered in this server, so Again would make "
        f"this one with `{CLASSIC}` instead"
    )
    assert stored == 1 and len(rig.xai.submits()) == 1


async def test_a_double_click_on_again_for_a_dropped_model_asks_once_and_claims_nothing(rig: BotRig) -> None:
    """One click asks; the other is told it was a second click, without saying a video is being made (nothing is,
    until Confirm). The two are handled at once, so either may be the one that asks."""
    message_id, job_id = await _made_on_v15(rig)
    emu = rig.discord
    async with rig.running(XAI_MODELS=f"{LITE},{CLASSIC}"):
        clicks = [await emu.click(message_id, f"gv:again:{job_id}") for _ in range(2)]
        await emu.wait_for(lambda: any("second click" in rig.answer_to(click) for click in clicks))
        told = next(click for click in clicks if "second click" in rig.answer_to(click))
        asking = next(click for click in clicks if click is not told)
        await question(rig, asking)
        questions = [m for m in emu.world.messages.values() if m.ephemeral and "no longer offered" in m.content]
    assert "making" not in rig.answer_to(told) and told.ephemeral and len(questions) == 1
