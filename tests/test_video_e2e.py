"""/video end to end: the real bot, the Discord emulator, the xAI emulator, a real SQLite file."""

from __future__ import annotations

import time

import discord

from services.jobs.models import ErrorCode, JobStatus
from tests.emulators.xai_emulator import Outcome
from tests.harness import BotRig
from tests.mediafactory import make_image, make_mp4

ACK_DEFERRED = 5


async def test_text_to_video_is_posted_as_a_reply_that_pings_only_the_requester(rig: BotRig) -> None:
    """Acknowledged at once, progress shown, the MP4 replies to the status message and mentions the requester."""
    emu = rig.discord
    async with rig.running():
        inter = await emu.slash("video", {"prompt": "a paper boat on a rainy street", "duration": 5})
        posted = await rig.delivered_video()
        job = await rig.wait_until_terminal()

    assert inter.ack_type == ACK_DEFERRED and inter.ack_latency_s is not None and inter.ack_latency_s < 3
    assert job.status is JobStatus.DELIVERED and job.delivery_method == "channel"
    assert (job.delivered_channel_id, job.delivered_message_id) == (emu.channel_id, posted.id)
    assert posted.channel_id == emu.channel_id and posted.via == "bot"
    assert posted.message_reference and int(posted.message_reference["message_id"]) == job.status_message_id
    assert posted.attachments[0].data == rig.xai.output_video
    assert posted.allowed_mentions == {"parse": [], "users": [str(emu.user_id)], "replied_user": False} or (
        posted.mentions == [emu.user_id] and not posted.mention_everyone and not posted.mention_roles
    )
    assert f"<@{emu.user_id}>" in posted.content and "5 s" in posted.content
    assert posted.embeds[0]["description"] == "a paper boat on a rainy street"
    status = emu.messages[job.status_message_id]
    assert any("Generating" in version.content for version in status.versions)
    assert "Done" in status.content and not status.loading
    body = next(r.body for r in rig.xai.requests if r.method == "POST")
    assert body["prompt"] == "a paper boat on a rainy street" and body["duration"] == 5


async def test_an_attached_image_is_animated(rig: BotRig) -> None:
    """The image goes to xAI as a data URI in the official {"image": {"url"}} shape."""
    emu = rig.discord
    async with rig.running():
        picture = emu.add_attachment(make_image("JPEG"), "photo.jpg", "image/jpeg")
        await emu.slash("video", {"prompt": "make the clouds move", "image": picture})
        await rig.delivered_video()
        job = await rig.wait_until_terminal()
    assert job.mode.value == "image" and job.status is JobStatus.DELIVERED
    body = next(r.body for r in rig.xai.requests if r.method == "POST")
    assert str(body["image"]["url"]).startswith("data:image/jpeg;base64,")
    assert "image_url" not in body


async def test_an_attached_video_is_edited(rig: BotRig) -> None:
    """A short MP4 is sent to /videos/edits, without duration, aspect ratio or resolution."""
    emu = rig.discord
    async with rig.running():
        clip = emu.add_attachment(make_mp4(2.0), "clip.mp4", "video/mp4")
        await emu.slash("video", {"prompt": "make it look like film", "video": clip})
        await rig.delivered_video()
        job = await rig.wait_until_terminal()
    assert job.mode.value == "edit" and job.status is JobStatus.DELIVERED
    edit = next(r for r in rig.xai.requests if r.method == "POST")
    assert edit.path.endswith("/videos/edits") and not {"duration", "aspect_ratio", "resolution"} & set(edit.body)


async def _status_text_after(rig: BotRig, outcome: Outcome, mark: str = "❌") -> tuple[str, str | None]:
    """Run one /video whose xAI job ends as ``outcome``; return the final status line and error code."""
    rig.xai.outcomes.append(outcome)
    async with rig.running():
        inter = await rig.discord.slash("video", {"prompt": "a storm over the sea"})
        job = await rig.wait_until_terminal()
        return await rig.wait_for_answer(inter, mark), job.error_code


async def test_moderation_is_explained_with_the_charge_warning(rig: BotRig) -> None:
    """A moderated video says so, and that xAI may still charge."""
    text, code = await _status_text_after(rig, Outcome(kind="moderated"), "🚫")
    assert code == ErrorCode.MODERATED and "moderation" in text and "may still charge" in text


async def test_a_failed_video_shows_xais_reason(rig: BotRig) -> None:
    """xAI's own reason for a failure reaches the requester."""
    text, code = await _status_text_after(rig, Outcome(kind="failed", error_message="GPU on fire"))
    assert code == ErrorCode.XAI_FAILED and "GPU on fire" in text


async def test_an_expired_video_is_explained(rig: BotRig) -> None:
    """Expired jobs are reported as such."""
    text, code = await _status_text_after(rig, Outcome(kind="expired"))
    assert code == ErrorCode.EXPIRED and "expired" in text


async def test_a_timed_out_video_is_explained(rig: BotRig) -> None:
    """A job xAI never finishes is ended after the configured timeout with a clear line."""
    rig.xai.outcomes.append(Outcome(kind="never"))
    async with rig.running(XAI_JOB_TIMEOUT_SECONDS="1"):
        inter = await rig.discord.slash("video", {"prompt": "a slow sunset"})
        job = await rig.wait_until_terminal()
        text = await rig.wait_for_answer(inter, "⌛")
    assert job.error_code == ErrorCode.TIMEOUT and "did not finish" in text and str(job.request_id) in text


async def test_bad_input_is_refused_before_anything_reaches_xai(rig: BotRig) -> None:
    """A PNG named .mp4, and both attachments at once, get a clear answer and cost nothing."""
    emu = rig.discord
    async with rig.running():
        liar = emu.add_attachment(make_image("PNG"), "movie.mp4", "video/mp4")
        first = await emu.slash("video", {"prompt": "edit this", "video": liar})
        picture = emu.add_attachment(make_image("PNG"), "a.png", "image/png")
        clip = emu.add_attachment(make_mp4(1.0), "b.mp4", "video/mp4")
        second = await emu.slash("video", {"prompt": "both", "image": picture, "video": clip})
        assert "image, not a video" in await rig.wait_for_answer(first, "❌")
        assert "not both" in await rig.wait_for_answer(second, "❌")
    assert not rig.xai.requests


async def test_missing_permissions_are_refused_before_any_xai_request(rig: BotRig) -> None:
    """Without Attach Files the bot says which permission is missing and sends nothing to xAI."""
    emu = rig.discord
    without_files = discord.Permissions(
        view_channel=True, send_messages=True, embed_links=True, read_message_history=True
    )
    emu.set_bot_permissions(emu.channel_id, without_files.value)
    async with rig.running():
        inter = await emu.slash("video", {"prompt": "a cat"})
        answer = await rig.wait_for_answer(inter, "Attach Files")
    assert "Nothing was sent to xAI" in answer and "Send Messages" not in answer
    assert not rig.xai.requests


async def test_a_prompt_with_everyone_and_a_role_mention_pings_no_one(rig: BotRig) -> None:
    """Echoed prompts are inert: no @everyone, no role ping, only the requester is mentioned."""
    emu = rig.discord
    role = emu.add_role(emu.guild_id, "mods")
    async with rig.running():
        await emu.slash("video", {"prompt": f"@everyone look <@&{role}> **now**"})
        posted = await rig.delivered_video()
    assert not posted.mention_everyone and not posted.mention_roles
    assert posted.mentions == [emu.user_id]
    assert "@everyone" not in posted.embeds[0]["description"] and "\\*\\*now\\*\\*" in posted.embeds[0]["description"]


async def test_an_oversized_result_is_re_encoded_under_the_limit_and_still_plays(rig: BotRig) -> None:
    """A 12+ MiB video is squeezed under the server's 10 MiB limit before uploading, and decodes end to end."""
    import io

    import av

    big = make_mp4(2.0, width=640, height=360, fps=24, noise=True)
    assert len(big) > 10 * 1024 * 1024
    rig.xai.outcomes.append(Outcome(video=big))
    async with rig.running():
        await rig.discord.slash("video", {"prompt": "static"})
        posted = await rig.delivered_video(timeout=60)
        job = await rig.wait_until_terminal()
    data = posted.attachments[0].data
    assert len(data) <= 10 * 1024 * 1024 and job.status is JobStatus.DELIVERED
    with av.open(io.BytesIO(data), "r") as container:
        frames = sum(1 for _ in container.decode(video=0))
    assert frames >= 40


async def test_a_job_finishing_after_the_token_expired_is_still_delivered(rig: BotRig) -> None:
    """With the interaction token dead, the video still lands in the channel through the bot token."""
    emu = rig.discord
    rig.xai.outcomes.append(Outcome(generation_s=1.0))
    async with rig.running():
        await emu.slash("video", {"prompt": "late bloomer"}, created_at=time.time() - 15 * 60 + 1)
        posted = await rig.delivered_video()
        job = await rig.wait_until_terminal()
    assert job.status is JobStatus.DELIVERED and job.delivery_method == "channel"
    assert posted.via == "bot" and posted.mentions == [emu.user_id]
    webhook_after_expiry = [r for r in emu.requests if r.error_code == 50027]
    assert not webhook_after_expiry, "the bot kept using a dead interaction token"
