"""``/show job:N`` end to end: a kept result posted again with buttons that work, and each reason it cannot be."""

from __future__ import annotations

import time

from services.jobs.models import JobRequest, Mode, Origin, VideoOptions
from tests.emulators.discord_models import DEFAULT_MEMBER_PERMISSIONS, MANAGE_MESSAGES
from tests.emulators.xai_emulator import Outcome
from tests.harness import BotRig
from tests.mediafactory import make_mp4
from tests.test_extend_e2e import DAY, buttons, first_video


async def show(rig: BotRig, job: int, user_id: int | None = None, channel_id: int | None = None) -> str:
    inter = await rig.discord.slash("show", {"job": job}, user_id=user_id, channel_id=channel_id)
    await rig.discord.wait_for(lambda: "job #" in rig.answer_to(inter) or "Job #" in rig.answer_to(inter))
    assert inter.ephemeral
    return rig.answer_to(inter)


async def test_show_posts_a_kept_video_again_and_its_buttons_work(rig: BotRig) -> None:
    """Anyone in the server may re-post it; it pings nobody, and Again on the re-post makes a new video."""
    rig.xai.output_video = make_mp4(3.0)
    emu = rig.discord
    async with rig.running() as bot:
        posted, first = await first_video(rig, "a lighthouse at dusk")
        answer = await show(rig, first.id, user_id=emu.other_user_id)
        reposts = [
            m
            for m in emu.messages.values()
            if m.id != posted.id and any(a.filename == f"grok-video-{first.id}.mp4" for a in m.attachments)
        ]
        assert len(reposts) == 1
        again = await emu.click(reposts[0].id, f"gv:again:{first.id}", user_id=emu.other_user_id)
        await rig.wait_for_answer(again, "Done")
        await emu.wait_for(lambda: len([m for m in emu.messages.values() if m.attachments]) == 3)
        remade = (await bot.runtime.store.jobs.of_user(emu.other_user_id, limit=1))[0]
    repost = reposts[0]
    assert f"Posted job #{first.id} again below" in answer
    assert f"Job #{first.id} by <@{emu.user_id}>, posted again for <@{emu.other_user_id}>" in repost.content
    assert "first posted here" in repost.content and repost.mentions == []
    assert {f"gv:again:{first.id}", f"gv:extend:{first.id}", f"gv:delete:{first.id}"} <= set(buttons(repost))
    assert remade.parent_job_id == first.id


async def test_show_says_why_it_cannot(rig: BotRig) -> None:
    """No such job, another server's, still being made, failed, deleted by its owner, swept by retention."""
    rig.xai.output_video = make_mp4(3.0)
    emu = rig.discord
    rig.xai.prompt_outcomes["breaks"] = Outcome(kind="failed", error_message="The model fell over.")
    rig.xai.prompt_outcomes["slowly"] = Outcome(kind="never")
    async with rig.running() as bot:
        store = bot.runtime.store
        elsewhere = await store.jobs.create(
            JobRequest(Mode.TEXT, "far away", VideoOptions(), Origin(guild_id=emu.guild_id + 1, user_id=emu.user_id))
        )
        failed = await rig.wait_until_terminal(await _asked(rig, "it breaks"))
        making = await _asked(rig, "it goes slowly")
        deleted_message, deleted = await first_video(rig, "soon gone")
        delete = await emu.click(deleted_message.id, f"gv:delete:{deleted.id}")
        await rig.wait_for_answer(delete, "Deleted")
        _, swept = await first_video(rig, "kept a week")
        bot.janitor.clock = lambda: time.time() + 8 * DAY
        assert await bot.janitor.sweep_safely() is not None
        answers = [await show(rig, n) for n in (999, elsewhere.id, making, failed.id, deleted.id, swept.id)]
        posts_before = len([m for m in emu.messages.values() if m.attachments])
    assert "There is no job #999" in answers[0]
    assert f"Job #{elsewhere.id} was not made in this server" in answers[1]
    assert f"Job #{making} is still being made" in answers[2]
    assert f"Job #{failed.id} ended without a video" in answers[3] and "The model fell over." in answers[3]
    assert f"Job #{deleted.id}'s video was deleted by the person who asked for it or a moderator" in answers[4]
    assert "files were deleted after 7 days" in answers[5] and f"can't post job #{swept.id} again" in answers[5]
    assert posts_before == len([m for m in emu.messages.values() if m.attachments])  # nothing was re-posted


async def _asked(rig: BotRig, prompt: str) -> int:
    """/video without waiting for a video: the job's id once it is recorded."""
    inter = await rig.discord.slash("video", {"prompt": prompt, "duration": 2})
    await rig.discord.wait_for(lambda: "job #" in rig.answer_to(inter))
    return (await rig.latest_job()).id


async def test_someone_elses_video_is_shown_again_only_where_it_was_posted(rig: BotRig) -> None:
    """Job numbers are easy to guess: a member who is not its maker (nor a moderator) may re-post a video only
    in the channel it was posted in, so /show cannot carry a video out of a channel they may not see into a
    public one. Its maker, and a moderator, may post it anywhere in the server."""
    rig.xai.output_video = make_mp4(3.0)
    emu = rig.discord
    moderator = emu.add_user("mod", permissions=DEFAULT_MEMBER_PERMISSIONS | MANAGE_MESSAGES)
    async with rig.running():
        _, first = await first_video(rig, "a quiet staff room")
        elsewhere = emu.add_channel(emu.guild_id, "general")
        stranger = await show(rig, first.id, user_id=emu.other_user_id, channel_id=elsewhere)
        here = await show(rig, first.id, user_id=emu.other_user_id)
        maker = await show(rig, first.id, channel_id=elsewhere)
        moderated = await show(rig, first.id, user_id=moderator, channel_id=elsewhere)
    assert f"Only the person who asked for job #{first.id} or a moderator can post it in another channel" in stranger
    assert f"<#{first.delivered_channel_id}>" in stranger
    assert all(f"Posted job #{first.id} again below" in answer for answer in (here, maker, moderated))
