"""Context menus, the reply trigger, buttons (also after a restart), Cancel and /myvideos, end to end."""

from __future__ import annotations

import discord

from services.jobs.models import JobStatus
from tests.emulators.discord_emulator import InteractionRecord, MessageRecord
from tests.emulators.xai_emulator import Outcome
from tests.harness import BotRig
from tests.mediafactory import make_image, make_mp4

MODAL = 9
EPHEMERAL = 64


async def _modal_opened(rig: BotRig, inter: InteractionRecord) -> None:
    await rig.discord.wait_for(lambda: inter.ack_type == MODAL)


async def test_animate_with_grok_from_the_context_menu(rig: BotRig) -> None:
    """Right-click an image, fill the modal, and the video replies to that message."""
    emu = rig.discord
    async with rig.running():
        photo = emu.add_attachment(make_image("PNG"), "sky.png", "image/png")
        source = await emu.user_message("look at this sky", attachments=[photo], author_id=emu.other_user_id)
        menu = await emu.message_command("Animate with Grok", source.id)
        await _modal_opened(rig, menu)
        await emu.submit_modal(menu, {"prompt": "clouds drifting", "duration": "4"})
        posted = await rig.delivered_video()
        job = await rig.wait_until_terminal()
    assert job.status is JobStatus.DELIVERED and job.origin.source_message_id == source.id
    assert posted.message_reference and int(posted.message_reference["message_id"]) == source.id
    body = rig.xai.requests[0].body
    assert body["duration"] == 4 and body["image"]["url"].startswith("data:image/png")
    assert "aspect_ratio" not in body  # with an image, the video takes the image's shape (xAI ignores the ratio)


async def test_edit_video_with_grok_from_the_context_menu(rig: BotRig) -> None:
    """Right-click an MP4, write the edit prompt, and the edit is made from that clip."""
    emu = rig.discord
    async with rig.running():
        clip = emu.add_attachment(make_mp4(1.5), "clip.mp4", "video/mp4")
        source = await emu.user_message("my clip", attachments=[clip])
        menu = await emu.message_command("Edit video with Grok", source.id)
        await _modal_opened(rig, menu)
        await emu.submit_modal(menu, {"prompt": "make it snow"})
        await rig.delivered_video()
        job = await rig.wait_until_terminal()
    assert job.mode.value == "edit" and job.status is JobStatus.DELIVERED
    assert rig.xai.requests[0].path == "/v1/videos/edits"


async def test_context_menu_on_a_message_without_a_usable_attachment(rig: BotRig) -> None:
    """A plain text message (or the wrong kind of file) gets a clear private answer and no modal."""
    emu = rig.discord
    async with rig.running():
        plain = await emu.user_message("just words")
        first = await emu.message_command("Animate with Grok", plain.id)
        clip = emu.add_attachment(make_mp4(1.0), "clip.mp4", "video/mp4")
        video_only = await emu.user_message("a clip", attachments=[clip])
        second = await emu.message_command("Animate with Grok", video_only.id)
        await emu.wait_for(lambda: first.ack_type == second.ack_type == 4)
    for inter in (first, second):
        assert inter.ack_payload is not None
        data = inter.ack_payload["data"]
        assert (
            data["flags"] & EPHEMERAL
            and "no an image" not in data["content"]
            and "PNG, JPEG or WebP" in data["content"]
        )
    assert not rig.xai.requests


async def test_reply_trigger_with_the_message_content_intent(rig: BotRig) -> None:
    """Reply to an image, mention the bot with a prompt, get the video as a reply to your message."""
    emu = rig.discord
    async with rig.running(ENABLE_REPLY_TRIGGER="true") as bot:
        photo = emu.add_attachment(make_image("JPEG"), "cat.jpg", "image/jpeg")
        source = await emu.user_message("my cat", attachments=[photo], author_id=emu.other_user_id)
        ask = await emu.user_message(f"<@{bot.user.id}> make the cat wave", reply_to=source.id)
        posted = await rig.delivered_video()
        job = await rig.wait_until_terminal()
    assert job.prompt == "make the cat wave" and job.mode.value == "image"
    assert posted.message_reference and int(posted.message_reference["message_id"]) == ask.id
    assert posted.mentions == [emu.user_id]
    status = emu.messages[job.status_message_id or 0]
    assert "Done" in status.content and status.via == "bot"


async def test_reply_trigger_answers_helpfully_when_it_cannot_act(rig: BotRig) -> None:
    """No prompt, or nothing usable in the replied-to message: a short answer saying what to do."""
    emu = rig.discord
    async with rig.running(ENABLE_REPLY_TRIGGER="true") as bot:
        photo = emu.add_attachment(make_image("PNG"), "a.png", "image/png")
        with_image = await emu.user_message("pic", attachments=[photo], author_id=emu.other_user_id)
        words_only = await emu.user_message("no files here", author_id=emu.other_user_id)
        await emu.user_message(f"<@{bot.user.id}>", reply_to=with_image.id)
        # Another member: the bot explains at most once a minute to each (tests/test_mention_cooldown_e2e.py).
        someone = emu.add_user("someone")
        await emu.user_message(f"<@{bot.user.id}> animate it", reply_to=words_only.id, author_id=someone)

        def answers() -> list[str]:
            return [m.content for m in emu.messages_in(emu.channel_id) if m.via == "bot"]

        await emu.wait_for(lambda: len(answers()) == 2)
    assert any("Tell me what to do" in text for text in answers())
    assert any("no image or MP4 I can use" in text for text in answers())
    assert not rig.xai.requests


async def test_reply_trigger_without_the_intent_points_to_the_context_menu(rig: BotRig) -> None:
    """With the trigger off (no Message Content intent) the bot explains the right-click way."""
    emu = rig.discord
    async with rig.running() as bot:
        assert not bot.intents.message_content
        photo = emu.add_attachment(make_image("PNG"), "a.png", "image/png")
        source = await emu.user_message("pic", attachments=[photo], author_id=emu.other_user_id)
        await emu.user_message(f"<@{bot.user.id}> animate this", reply_to=source.id)
        answer = await emu.wait_for_message(lambda m: m.via == "bot")
    assert "Animate with Grok" in answer.content and not rig.xai.requests


async def test_other_bots_are_ignored(rig: BotRig) -> None:
    """Messages from bots never trigger anything."""
    emu = rig.discord
    other_bot = emu.add_user("another-bot", bot=True)
    async with rig.running(ENABLE_REPLY_TRIGGER="true") as bot:
        photo = emu.add_attachment(make_image("PNG"), "a.png", "image/png")
        source = await emu.user_message("pic", attachments=[photo])
        await emu.user_message(f"<@{bot.user.id}> animate", reply_to=source.id, author_id=other_bot)
        probe = await emu.slash("myvideos", {})
        await emu.wait_for(lambda: probe.acked)
    assert not [m for m in emu.messages.values() if m.via == "bot"] and not rig.xai.requests


async def _deliver_one(rig: BotRig, prompt: str = "a kite") -> tuple[MessageRecord, int]:
    await rig.discord.slash("video", {"prompt": prompt, "duration": 3})
    posted = await rig.delivered_video()
    job = await rig.wait_until_terminal()
    return posted, job.id


async def test_result_buttons_are_again_edit_extend_and_delete(rig: BotRig) -> None:
    """Every delivered video carries buttons bound to its job."""
    async with rig.running():
        posted, job_id = await _deliver_one(rig)
    ids = [f"gv:again:{job_id}", f"gv:edit:{job_id}", f"gv:extend:{job_id}", f"gv:delete:{job_id}"]
    assert posted.custom_ids == ids


async def test_again_after_a_restart_makes_a_new_job_for_whoever_clicks(rig: BotRig) -> None:
    """The Again button still works after the bot restarts, and the new job belongs to the clicker."""
    emu = rig.discord
    async with rig.running():
        posted, job_id = await _deliver_one(rig)
    async with rig.running() as bot:
        await emu.click(posted.id, f"gv:again:{job_id}", user_id=emu.other_user_id)
        await emu.wait_for_message(
            lambda m: bool(m.attachments) and m.id != posted.id and m.mentions == [emu.other_user_id]
        )
        clicked = await bot.runtime.store.jobs.of_user(emu.other_user_id, limit=1)
        again = await rig.wait_until_terminal(clicked[0].id)
    assert again.parent_job_id == job_id and again.prompt == "a kite" and again.options.duration == 3
    assert again.status is JobStatus.DELIVERED


async def test_edit_button_chains_an_edit_on_the_result(rig: BotRig) -> None:
    """Edit opens a modal; the edit job is made from the delivered video."""
    emu = rig.discord
    async with rig.running():
        posted, job_id = await _deliver_one(rig)
        click = await emu.click(posted.id, f"gv:edit:{job_id}")
        await _modal_opened(rig, click)
        await emu.submit_modal(click, {"prompt": "add fireworks"})
        edited = await rig.wait_for_job(lambda j: j.parent_job_id == job_id and j.status.is_terminal)
    assert edited.mode.value == "edit" and edited.status is JobStatus.DELIVERED
    assert rig.xai.requests[-1].path.startswith("/v1/videos/") and any(
        r.path == "/v1/videos/edits" for r in rig.xai.requests
    )


async def test_delete_is_for_the_requester_or_moderators(rig: BotRig) -> None:
    """Someone else is refused privately; the requester deletes it and the deletion is recorded."""
    emu = rig.discord
    async with rig.running():
        posted, job_id = await _deliver_one(rig)
        refused = await emu.click(posted.id, f"gv:delete:{job_id}", user_id=emu.other_user_id)
        await rig.wait_for_answer(refused, "Only the person")
        assert refused.ephemeral and not emu.messages[posted.id].deleted
        await emu.click(posted.id, f"gv:delete:{job_id}")
        await emu.wait_for(lambda: emu.messages[posted.id].deleted)
        job = await rig.wait_for_job(lambda j: j.deleted_at is not None, job_id)
        assert job.deleted_at is not None


async def test_moderators_may_delete_anyones_video(rig: BotRig) -> None:
    """Manage Messages is enough to remove someone else's video."""
    emu = rig.discord
    emu.set_user_permissions(emu.guild_id, emu.other_user_id, discord.Permissions(manage_messages=True).value)
    async with rig.running():
        posted, job_id = await _deliver_one(rig)
        await emu.click(posted.id, f"gv:delete:{job_id}", user_id=emu.other_user_id)
        await emu.wait_for(lambda: emu.messages[posted.id].deleted)


async def test_cancel_a_queued_and_a_running_job(rig: BotRig) -> None:
    """Cancel takes a waiting job out of line (it costs nothing) and stops a running one (xAI may still charge)."""
    emu = rig.discord
    rig.xai.outcomes.append(Outcome(kind="never"))
    async with rig.running(XAI_MAX_CONCURRENT_JOBS="1") as bot:
        first = await emu.slash("video", {"prompt": "forever"})
        await rig.wait_for_answer(first, "Generating")  # first in line: two commands at once may go either way
        second = await emu.slash("video", {"prompt": "waiting"})
        await rig.wait_for_answer(second, "In line")
        first_job, second_job = sorted(j.id for j in await bot.runtime.store.jobs.of_user(emu.user_id))
        await emu.wait_for(
            lambda: f"gv:cancel:{second_job}" in emu.messages[second.original_message_id or 0].custom_ids
        )
        await emu.click(second.original_message_id or 0, f"gv:cancel:{second_job}")
        queued_text = await rig.wait_for_answer(second, "Cancelled")
        await emu.click(first.original_message_id or 0, f"gv:cancel:{first_job}")
        running_text = await rig.wait_for_answer(first, "Cancelled")
        statuses = [(await rig.job(i)).status for i in (first_job, second_job)]
    assert "before it was sent to xAI; it costs nothing" in queued_text
    assert "had already reached xAI" in running_text and "may still charge" in running_text
    assert statuses == [JobStatus.CANCELLED, JobStatus.CANCELLED]
    assert not emu.messages[first.original_message_id or 0].custom_ids
    assert len([r for r in rig.xai.requests if r.method == "POST"]) == 1


async def test_my_videos_lists_recent_jobs_privately(rig: BotRig) -> None:
    """/myvideos answers ephemerally with the caller's jobs and links."""
    emu = rig.discord
    async with rig.running():
        posted, job_id = await _deliver_one(rig, "a lighthouse")
        mine = await emu.slash("myvideos", {})
        answer = await emu.wait_for_message(lambda m: m.interaction_id == mine.id and bool(m.embeds))
    assert answer.ephemeral
    description = answer.embeds[0]["description"]
    assert f"#{job_id}" in description and "a lighthouse" in description and str(posted.id) in description
