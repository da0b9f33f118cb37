"""Extend end to end: the button on a delivered video, its form, ``POST /v1/videos/extensions`` and the longer clip,
delivered with its own buttons; chains, refusals before anything is sent, and a parent whose files were swept."""

from __future__ import annotations

import time

from services.jobs.models import Job, JobStatus, Mode
from tests.emulators.discord_emulator import InteractionRecord, MessageRecord
from tests.harness import BotRig
from tests.mediafactory import make_mp4
from tests.test_limits_e2e import make_video

MODAL, MESSAGE = 9, 4
DAY = 86400.0


async def delivered(rig: BotRig, job_id: int) -> tuple[MessageRecord, Job]:
    """The result message of a job, and the job once it is over."""
    message = await rig.discord.wait_for_message(
        lambda m: any(a.filename == f"grok-video-{job_id}.mp4" for a in m.attachments) and not m.deleted
    )
    return message, await rig.wait_until_terminal(job_id)


async def first_video(rig: BotRig, prompt: str = "a kite over the hills") -> tuple[MessageRecord, Job]:
    return await delivered(rig, await make_video(rig, prompt))


async def extend(rig: BotRig, message: MessageRecord, job_id: int, values: dict[str, str]) -> InteractionRecord:
    """Click Extend under a result and send its form."""
    click = await rig.discord.click(message.id, f"gv:extend:{job_id}")
    await rig.discord.wait_for(lambda: click.ack_type in (MODAL, MESSAGE))
    assert click.ack_type == MODAL, click.ack_payload
    return await rig.discord.submit_modal(click, values)


async def private_answer(rig: BotRig, inter: InteractionRecord) -> str:
    """A button's own ephemeral answer (the first response, not a deferred one)."""
    await rig.discord.wait_for(lambda: inter.ack_type is not None)
    assert inter.ack_type == MESSAGE and inter.ack_payload is not None
    return str(inter.ack_payload["data"]["content"])


def extension_posts(rig: BotRig) -> list[dict[str, object]]:
    return [r.body for r in rig.xai.requests if r.method == "POST" and r.path == "/v1/videos/extensions"]


def buttons(message: MessageRecord) -> list[str]:
    return [c["custom_id"] for row in message.components for c in row.get("components", []) if "custom_id" in c]


async def test_extend_makes_a_longer_clip_with_its_own_buttons_and_it_chains(rig: BotRig) -> None:
    """A 3 s clip extended by 4 s is a 7 s clip, posted with Again/Extend/Delete and "from #N"; extending that
    (default 6 s) makes 13 s, whose parent is the first extension."""
    rig.xai.output_video = make_mp4(3.0)
    async with rig.running():
        posted, first = await first_video(rig)
        assert f"gv:extend:{first.id}" in buttons(posted)
        sent = await extend(rig, posted, first.id, {"seconds": "4", "prompt": "the kite climbs higher"})
        await rig.wait_for_answer(sent, "Done")
        second_message, second = await delivered(rig, (await rig.latest_job()).id)
        again = await extend(rig, second_message, second.id, {"seconds": "", "prompt": ""})
        await rig.wait_for_answer(again, "Done")
        third_message, third = await delivered(rig, (await rig.latest_job()).id)
    assert second.mode is Mode.EXTEND and second.status is JobStatus.DELIVERED and second.parent_job_id == first.id
    assert second.options.duration == 4 and second.model == "grok-imagine-video"
    assert second.video_duration_s is not None and abs(second.video_duration_s - 7.0) < 0.2
    assert third.parent_job_id == second.id and third.options.duration == 6
    assert third.video_duration_s is not None and abs(third.video_duration_s - 13.0) < 0.2
    bodies = extension_posts(rig)
    assert len(bodies) == 2
    assert bodies[0]["model"] == "grok-imagine-video" and bodies[0]["duration"] == 4
    assert bodies[0]["prompt"] == "the kite climbs higher" and str(bodies[0]["video"]).startswith(
        "{'url': 'data:video/mp4"
    )
    assert not {"resolution", "aspect_ratio", "image"} & set(bodies[0]) and "prompt" not in bodies[1]
    assert bodies[1]["duration"] == 6
    for message, job in ((second_message, second), (third_message, third)):
        assert {f"gv:again:{job.id}", f"gv:extend:{job.id}", f"gv:delete:{job.id}"} <= set(buttons(message))
    link = f"https://discord.com/channels/{rig.discord.guild_id}/{posted.channel_id}/{posted.id}"
    assert f"from [#{first.id}](<{link}>)" in second_message.content
    assert f"from [#{second.id}](<" in third_message.content and "video extension" in third_message.content


async def test_a_clip_outside_2_to_15_seconds_is_refused_before_anything_is_sent(rig: BotRig) -> None:
    """A 1 s clip and a 16 s one: the Extend click answers privately why not, and no extension is sent."""
    async with rig.running():
        rig.xai.output_video = make_mp4(1.0)
        short_message, short = await first_video(rig, "a blink")
        rig.xai.output_video = make_mp4(16.0)
        long_message, long = await first_video(rig, "a long take")
        too_short = await private_answer(rig, await rig.discord.click(short_message.id, f"gv:extend:{short.id}"))
        too_long = await private_answer(rig, await rig.discord.click(long_message.id, f"gv:extend:{long.id}"))
    assert "xAI can only extend videos 2 to 15 seconds long; this one is 1.0 seconds" in too_short
    assert "this one is 16.0 seconds" in too_long
    assert extension_posts(rig) == [] and len(rig.xai.jobs) == 2


async def test_the_form_checks_the_seconds_and_sends_nothing_for_a_wrong_number(rig: BotRig) -> None:
    rig.xai.output_video = make_mp4(3.0)
    async with rig.running():
        posted, first = await first_video(rig)
        sent = await extend(rig, posted, first.id, {"seconds": "12", "prompt": ""})
        answer = await rig.wait_for_answer(sent, "❌")
    assert "An extension adds 2 to 10 seconds; you asked for 12." in answer
    assert extension_posts(rig) == []


async def test_a_swept_parent_says_its_files_were_deleted_at_click_and_at_submit(rig: BotRig) -> None:
    """After retention removed the files, Extend says so; a form opened before the sweep is refused the same way."""
    rig.xai.output_video = make_mp4(3.0)
    async with rig.running() as bot:
        posted, first = await first_video(rig)
        opened = await rig.discord.click(posted.id, f"gv:extend:{first.id}")
        await rig.discord.wait_for(lambda: opened.ack_type == MODAL)
        bot.janitor.clock = lambda: time.time() + 8 * DAY
        assert await bot.janitor.sweep_safely() is not None
        clicked = await private_answer(rig, await rig.discord.click(posted.id, f"gv:extend:{first.id}"))
        late = await rig.wait_for_answer(await rig.discord.submit_modal(opened, {"seconds": "3", "prompt": ""}), "❌")
    words = "This video's files were deleted after 7 days, as this bot keeps them only that long, so I can't extend it"
    assert words in clicked and words in late
    assert extension_posts(rig) == []


async def test_an_extension_waiting_in_line_survives_the_parents_sweep_and_a_restart(rig: BotRig) -> None:
    """The input is stored with the job when it is accepted: a restart, then a sweep of the parent's files while
    the extension waits, still sends the whole clip."""
    rig.xai.output_video = make_mp4(3.0)
    async with rig.running():
        posted, first = await first_video(rig)
    rig.xai.max_concurrent = 0  # xAI takes nothing for now: the extension waits at the bot
    async with rig.running(XAI_MAX_CONCURRENT_JOBS="1") as bot:
        sent = await extend(rig, posted, first.id, {"seconds": "2", "prompt": "and lands"})
        await rig.wait_for_answer(sent, "")
        waiting = await rig.wait_for_job(lambda job: job.mode is Mode.EXTEND)
        assert await bot.runtime.store.jobs.get_input(waiting.id) is not None
    rig.xai.max_concurrent = None
    async with rig.running() as bot:
        bot.janitor.clock = lambda: time.time() + 8 * DAY
        await bot.janitor.sweep_safely()
        done = await rig.wait_until_terminal(waiting.id)
    assert done.status is JobStatus.DELIVERED and done.parent_job_id == first.id
    assert done.video_duration_s is not None and abs(done.video_duration_s - 5.0) < 0.2
