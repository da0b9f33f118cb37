"""Choosing the model, end to end: the real bot against both emulators (the xAI one knows the three models, what
each refuses, and bills each at its own price)."""

from __future__ import annotations

import pytest

from services.jobs.attribution import SALT_KEY, user_tag
from services.jobs.models import JobStatus
from tests.emulators.xai_emulator import Outcome
from tests.harness import BotRig
from tests.mediafactory import make_image, make_mp4
from tests.test_limits_e2e import MANAGE_SERVER, make_video, refused, reply, stored_jobs, text_of

CLASSIC, V15, LITE = "grok-imagine-video", "grok-imagine-video-1.5", "grok-imagine-video-1.5-lite"


async def test_the_offered_models_are_video_choices_and_the_first_is_the_default(rig: BotRig) -> None:
    emu = rig.discord
    async with rig.running(XAI_MODELS=f"{LITE},{V15},{CLASSIC}"):
        video = next(c for c in emu.commands[emu.guild_id] if c["name"] == "video")
        model = next(o for o in video["options"] if o["name"] == "model")
        resolution = next(o for o in video["options"] if o["name"] == "resolution")
        job_id = await make_video(rig, "a kite over dunes")
        job = await rig.job(job_id)
        posted = await rig.delivered_video()
    assert [c["value"] for c in model["choices"]] == [LITE, V15, CLASSIC]
    assert [c["value"] for c in resolution["choices"]] == ["480p", "720p", "1080p"]
    body = rig.xai.submits()[0].body
    assert job.model == LITE and body["model"] == LITE
    assert f"made with {LITE}" in posted.content
    assert job.cost_usd_ticks == 3 * 200_000_000  # xAI's bill for 3 s of lite at 480p, as reported


async def test_1080p_on_1_5_is_sent_priced_and_named(rig: BotRig) -> None:
    async with rig.running():
        inter = await rig.discord.slash(
            "video", {"prompt": "city at night", "duration": 4, "resolution": "1080p", "model": V15}
        )
        status = await rig.wait_for_answer(inter, "About")
        job = await rig.wait_until_terminal()
        posted = await rig.delivered_video()
    assert "💵 About $1.00 on grok-imagine-video-1.5" in status  # 4 s at $0.25
    body = rig.xai.submits()[0].body
    assert (body["model"], body["resolution"], body["duration"]) == (V15, "1080p", 4)
    assert job.status is JobStatus.DELIVERED and job.cost_usd_ticks == 4 * 2_500_000_000
    assert f"made with {V15}" in posted.content


async def test_a_model_that_cannot_do_it_is_refused_in_words_and_nothing_is_sent(rig: BotRig) -> None:
    async with rig.running():
        answer = await refused(rig, "old style", model=CLASSIC, resolution="1080p")
        stored = await stored_jobs(rig)
    assert "1080p is not offered for text-to-video on grok-imagine-video; it offers 480p or 720p." in answer
    assert "1080p runs on grok-imagine-video-1.5 or grok-imagine-video-1.5-lite." in answer
    assert stored == 0 and not rig.xai.submits()


async def test_an_edit_goes_to_the_classic_model_whatever_was_chosen_and_says_so(rig: BotRig) -> None:
    emu = rig.discord
    async with rig.running():
        clip = emu.add_attachment(make_mp4(2.0), "clip.mp4", "video/mp4")
        await emu.slash("video", {"prompt": "as a watercolour", "video": clip, "model": LITE})
        posted = await rig.delivered_video()
        job = await rig.wait_until_terminal()
    edit = rig.xai.submits()[0]
    assert edit.path.endswith("/videos/edits") and edit.body["model"] == CLASSIC
    assert job.model == CLASSIC and f"made with {CLASSIC}" in posted.content


async def test_a_servers_default_and_allowed_models(rig: BotRig) -> None:
    emu = rig.discord
    admin = emu.add_user("admin", permissions=MANAGE_SERVER)
    async with rig.running():
        defaults = next(c for c in emu.commands[emu.guild_id] if c["name"] == "videoadmin")
        sub = next(o for o in defaults["options"] if o["name"] == "defaults")
        choices = next(o for o in sub["options"] if o["name"] == "model")["choices"]
        bad = await emu.slash(
            "videoadmin", {"allowed_models": "grok-imagine-video-9"}, subcommand="defaults", user_id=admin
        )
        assert "is not offered" in (await reply(rig, bad)).content
        saved = await emu.slash(
            "videoadmin", {"model": V15, "allowed_models": f"{V15}, {CLASSIC}"}, subcommand="defaults", user_id=admin
        )
        shown = text_of(await reply(rig, saved))
        chosen = await rig.job(await make_video(rig, "defaulted"))
        not_here = await refused(rig, "cheap please", model=LITE)
    assert [c["value"] for c in choices] == [LITE, V15, CLASSIC, "the bot's default"]
    assert "default: grok-imagine-video-1.5" in shown and f"allowed: {V15}, {CLASSIC}" in shown
    assert chosen.model == V15 and rig.xai.submits()[0].body["model"] == V15
    assert "grok-imagine-video-1.5-lite is not offered in this server" in not_here
    assert len(rig.xai.submits()) == 1


@pytest.mark.sqlite_only  # starts each model's day afresh by removing the SQLite file
async def test_the_spend_cap_follows_each_models_price(rig: BotRig) -> None:
    """$0.60 a day: 3 s at 480p costs $0.24 on 1.5 (two fit) and $0.06 on lite (ten fit)."""
    made: dict[str, int] = {}
    for model in (V15, LITE):
        async with rig.running(LIMIT_SERVER_USD_PER_DAY="0.6", XAI_MODELS=model):
            made[model] = 0
            while (await _made_or_refused(rig, f"{model} {made[model]}")) != "refused":
                made[model] += 1
        rig.database_path.unlink()  # the next model starts the day afresh
    assert made == {V15: 2, LITE: 10}


async def _made_or_refused(rig: BotRig, prompt: str) -> str:
    inter = await rig.discord.slash("video", {"prompt": prompt, "duration": 3})
    await rig.discord.wait_for(lambda: any(mark in rig.answer_to(inter) for mark in ("Done", "⛔")), 20)
    if "⛔" not in rig.answer_to(inter):
        return "made"
    assert "daily budget" in rig.answer_to(inter)
    return "refused"


async def test_usage_shows_spend_per_model_from_xais_figures(rig: BotRig) -> None:
    emu = rig.discord
    emu.set_user_permissions(emu.guild_id, emu.other_user_id, MANAGE_SERVER)
    async with rig.running():
        await make_video(rig, "cheap one")  # lite: 3 s at $0.02
        await make_video(rig, "good one", model=V15, resolution="720p")  # 3 s at $0.14
        usage = text_of(await reply(rig, await emu.slash("usage", {"period": "today"}, user_id=emu.other_user_id)))
        export = [m for m in emu.messages.values() if any(a.filename.endswith(".csv") for a in m.attachments)]
    assert "Spend per model" in usage
    # Seconds are the delivered files' (the emulator's clips last 1 s); dollars are what xAI reported.
    assert f"`{V15}`: 1 jobs · 1 s · $0.42" in usage and f"`{LITE}`: 1 jobs · 1 s · $0.06" in usage
    assert "**$0.48** spent" in usage
    table = export[-1].attachments[0].data.decode()
    assert ",model," in table.splitlines()[0] and f",{V15}," in table and f",{LITE}," in table


async def test_xai_gets_a_hashed_user_and_no_aspect_ratio_with_an_image(rig: BotRig) -> None:
    emu = rig.discord
    async with rig.running():
        picture = emu.add_attachment(make_image("PNG"), "photo.png", "image/png")
        await emu.slash("video", {"prompt": "leaves falling", "image": picture, "aspect_ratio": "9:16"})
        await rig.delivered_video()
        job = await rig.wait_until_terminal()
        assert rig.bot is not None
        salt = await rig.bot.runtime.store.kv.get(SALT_KEY)
    body = rig.xai.submits()[0].body
    assert salt is not None and body["user"] == user_tag(salt, emu.user_id)
    assert str(emu.user_id) not in str(body["user"]) and "aspect_ratio" not in body
    assert job.cost_usd_ticks == 8 * 200_000_000 + 100_000_000  # 8 s of lite plus the image fee


async def test_a_waiting_video_shows_its_price_place_and_expected_start(rig: BotRig) -> None:
    """One slot at xAI: the second video waits, its status saying the estimate, its place and when it should start."""
    rig.xai.prompt_outcomes["slow"] = Outcome(generation_s=1.5)
    async with rig.running(XAI_MAX_CONCURRENT_JOBS="1"):
        first = await rig.discord.slash("video", {"prompt": "slow first", "duration": 3})
        await rig.wait_for_answer(first, "Generating")
        second = await rig.discord.slash("video", {"prompt": "slow second", "duration": 5, "resolution": "720p"})
        waiting = await rig.wait_for_answer(second, "position")
        await rig.wait_for_answer(second, "Done")
    assert "In line: position 1" in waiting and "💵 About $0.15 on grok-imagine-video-1.5-lite" in waiting
    assert "🕒 expected to start <t:" in waiting
