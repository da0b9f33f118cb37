"""Retention, Delete and ``/videoadmin forget`` end to end: the real bot, both emulators, a real store and folder."""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import io
import logging
import time
from pathlib import Path

import pytest

from services.config import Settings
from services.jobs.models import Job, JobStatus
from tests.emulators.discord_emulator import InteractionRecord, MessageRecord
from tests.emulators.xai_emulator import Outcome
from tests.harness import BotRig
from tests.mediafactory import make_image
from tests.test_limits_e2e import make_video, refused, reply, text_of
from tests.test_usage_e2e import MANAGE_SERVER

DAY = 86400.0
MODAL, MESSAGE = 9, 4
RETENTION_WORDS = "This video's files were deleted after 7 days, as this bot keeps them only that long"


async def _image_video(rig: BotRig, prompt: str, user_id: int | None = None) -> tuple[MessageRecord, Job]:
    """Animate a picture with /video until the result is posted."""
    emu = rig.discord
    picture = emu.add_attachment(make_image("PNG"), "pic.png", "image/png")
    inter = await emu.slash("video", {"prompt": prompt, "duration": 3, "image": picture}, user_id=user_id)
    await rig.wait_for_answer(inter, "Done")
    assert rig.bot is not None
    job = (await rig.bot.runtime.store.jobs.of_user(user_id or emu.user_id, limit=1))[0]
    return await _result_message(rig, job.id), await rig.wait_until_terminal(job.id)


async def _text_video(rig: BotRig, prompt: str, user_id: int | None = None) -> Job:
    """/video with a prompt only, until the job is over (the status line says "Done" a moment before)."""
    return await rig.wait_until_terminal(await make_video(rig, prompt, user_id=user_id))


async def _result_message(rig: BotRig, job_id: int) -> MessageRecord:
    return await rig.discord.wait_for_message(
        lambda m: any(a.filename == f"grok-video-{job_id}.mp4" for a in m.attachments) and not m.deleted
    )


async def _sweep_days_later(rig: BotRig, days: float) -> None:
    """One sweep, run as if ``days`` had passed (the janitor's clock is injected; nobody waits)."""
    assert rig.bot is not None
    janitor = rig.bot.janitor
    janitor.clock = lambda: time.time() + days * DAY
    assert await janitor.sweep_safely() is not None


async def _private_answer(rig: BotRig, inter: InteractionRecord) -> str:
    """A button's own ephemeral answer (the first response, not a deferred one)."""
    await rig.discord.wait_for(lambda: inter.ack_type == MESSAGE)
    assert inter.ack_payload is not None
    return str(inter.ack_payload["data"]["content"])


def _posts(rig: BotRig) -> int:
    return len([r for r in rig.xai.requests if r.method == "POST"])


async def test_after_a_sweep_again_and_edit_say_the_files_were_deleted_after_7_days(rig: BotRig) -> None:
    """Again on an image job and Edit on its result explain why they cannot; Again on a text job still works."""
    emu = rig.discord
    async with rig.running() as bot:
        posted, job = await _image_video(rig, "the clouds drift")
        text_job = (await _text_video(rig, "a paper boat")).id
        text_posted = await _result_message(rig, text_job)
        await _sweep_days_later(rig, 8)
        swept = await rig.job(job.id)
        assert swept.media_purged_at is not None and not Path(job.output_path or "").exists()

        again = await emu.click(posted.id, f"gv:again:{job.id}")
        again_text = await rig.wait_for_answer(again, "❌")
        edit = await emu.click(posted.id, f"gv:edit:{job.id}")
        edit_text = await _private_answer(rig, edit)
        text_again = await emu.click(text_posted.id, f"gv:again:{text_job}")
        await rig.wait_for_answer(text_again, "Done")
        remade = await rig.wait_until_terminal((await bot.runtime.store.jobs.of_user(emu.user_id, limit=1))[0].id)
    assert f"{RETENTION_WORDS}, the image it was made from included, so I can't make it again" in again_text
    assert "attach the image once more" in again_text
    assert f"{RETENTION_WORDS}, so I can't edit it" in edit_text and "Edit video with Grok" in edit_text
    assert edit.ephemeral
    assert remade.parent_job_id == text_job and remade.status is JobStatus.DELIVERED
    assert _posts(rig) == 3  # the two originals and the text job's Again; nothing for the refused clicks


async def test_an_edit_form_sent_after_the_sweep_says_why(rig: BotRig) -> None:
    """A form opened while the file was there and sent after it was deleted gets the same reason, not a job."""
    emu = rig.discord
    async with rig.running():
        posted, job = await _image_video(rig, "a lantern")
        click = await emu.click(posted.id, f"gv:edit:{job.id}")
        await emu.wait_for(lambda: click.ack_type == MODAL)
        await _sweep_days_later(rig, 8)
        sent = await emu.submit_modal(click, {"prompt": "make it rain"})
        answer = await rig.wait_for_answer(sent, "❌")
    assert f"{RETENTION_WORDS}, so I can't edit it" in answer and _posts(rig) == 1


async def test_delete_removes_the_video_file_and_the_stored_input(rig: BotRig) -> None:
    """Delete takes the message, the bot's MP4 and the image it was made from; the row stays, marked, and counts."""
    emu = rig.discord
    async with rig.running() as bot:
        posted, job = await _image_video(rig, "a red kite")
        store = bot.runtime.store
        output = Path(job.output_path or "")
        assert output.is_file() and await store.jobs.get_input(job.id) is not None
        delete = await emu.click(posted.id, f"gv:delete:{job.id}")
        answer = await rig.wait_for_answer(delete, "Deleted")
        gone = await rig.job(job.id)
        counted = await store.usage.counted_count(emu.guild_id, emu.user_id, 0)
    assert emu.messages[posted.id].deleted and "the bot's copy of the video with it" in answer
    assert not output.exists() and not list(output.parent.glob(f"job-{job.id}*"))
    assert gone.deleted_at is not None and gone.media_purged_at is not None and not gone.has_media
    assert gone.prompt == "a red kite" and gone.status is JobStatus.DELIVERED and counted == 1


async def test_forget_erases_a_members_prompts_and_files_and_keeps_their_counts(rig: BotRig) -> None:
    """The DB, /usage's CSV and /myvideos show "(forgotten)"; the files go; the member's limits still count them."""
    emu = rig.discord
    member = emu.other_user_id
    emu.set_user_permissions(emu.guild_id, emu.user_id, MANAGE_SERVER)
    async with rig.running(LIMIT_USER_VIDEOS="2") as bot:
        posted, image_job = await _image_video(rig, "my secret garden", user_id=member)
        text_job = await _text_video(rig, "my secret boat", user_id=member)
        mine = (await _text_video(rig, "the moderator's own")).id

        emu.open_to_everyone.add("videoadmin")  # a server may show it to everyone: the bot checks again itself
        refusal = await emu.slash("videoadmin", {"user": member}, subcommand="forget", user_id=member)
        not_allowed = await reply(rig, refusal)
        answer = text_of(await reply(rig, await emu.slash("videoadmin", {"user": member}, subcommand="forget")))
        store = bot.runtime.store
        erased = [await rig.job(j.id) for j in (image_job, text_job)]
        inputs = await store.jobs.get_input(image_job.id)
        usage = await reply(rig, await emu.slash("usage", {"period": "all"}))
        listing = text_of(await reply(rig, await emu.slash("myvideos", {}, user_id=member)))
        again = await emu.click(posted.id, f"gv:again:{image_job.id}")
        again_text = await rig.wait_for_answer(again, "❌")
        limit = await refused(rig, "one more", user_id=member)
        moderator = await rig.job(mine)
    assert "Manage Server" in text_of(not_allowed)
    assert f"Forgot 2 videos by <@{member}> here" in answer and "counts and costs stay" in answer
    assert all(j.prompt == "" and j.forgotten_at is not None and j.media_purged_at is not None for j in erased)
    assert inputs is None and not any(Path(j.output_path or "").exists() for j in erased)
    assert moderator.prompt == "the moderator's own" and Path(moderator.output_path or "").is_file()
    rows = list(csv.DictReader(io.StringIO(usage.attachment("usage-all.csv").data.decode())))
    assert sorted(row["prompt"] for row in rows) == ["(forgotten)", "(forgotten)", "the moderator's own"]
    assert "(forgotten)" in listing and "secret" not in listing
    assert "forgotten at a moderator's request" in again_text and _posts(rig) == 3
    assert "2 videos in the last hour" in limit  # the forgotten jobs still count against the member's limit


async def test_forget_while_a_video_is_in_the_making_erases_it_once_it_is_over(rig: BotRig) -> None:
    """A job at xAI keeps its prompt and input (xAI may need them), is posted without echoing the prompt, and the
    first sweep after it ends erases it."""
    emu = rig.discord
    member = emu.other_user_id
    emu.set_user_permissions(emu.guild_id, emu.user_id, MANAGE_SERVER)
    rig.xai.outcomes.append(Outcome(generation_s=2.0))
    async with rig.running() as bot:
        picture = emu.add_attachment(make_image("PNG"), "pic.png", "image/png")
        making = await emu.slash("video", {"prompt": "slow and secret", "image": picture}, user_id=member)
        await rig.wait_for_answer(making, "Generating")
        job = (await bot.runtime.store.jobs.of_user(member, limit=1))[0]
        answer = text_of(await reply(rig, await emu.slash("videoadmin", {"user": member}, subcommand="forget")))
        waiting = await rig.job(job.id)
        still_has_input = await bot.runtime.store.jobs.get_input(job.id) is not None
        posted = await _result_message(rig, job.id)
        await rig.wait_until_terminal(job.id)
        await _sweep_days_later(rig, 0)
        over = await rig.job(job.id)
    assert "Forgot 1 video by" in answer and "1 of them is still in progress" in answer and "every 1 hour" in answer
    assert waiting.prompt == "slow and secret" and still_has_input and waiting.forgotten_at is not None
    assert "secret" not in text_of(posted) and "forgotten at a moderator's request" in text_of(posted)
    assert over.prompt == "" and not over.has_media and over.media_purged_at is not None
    assert not Path(over.output_path or "").exists()


async def test_the_janitor_starts_with_the_bot_and_stops_with_it(rig: BotRig, caplog: pytest.LogCaptureFixture) -> None:
    """The first sweep comes soon after start, more follow, and no janitor task is left once the bot has closed."""

    def quick(settings: Settings) -> Settings:
        retention = dataclasses.replace(settings.retention, first_sweep_s=0.05, sweep_interval_s=0.05)
        return dataclasses.replace(settings, retention=retention)

    with caplog.at_level(logging.INFO, logger="services.media.retention"):
        async with rig.running(adjust=quick) as bot:
            janitor = bot.janitor
            await rig.discord.wait_for(lambda: janitor.sweeps >= 2)
            assert janitor.running
    assert not janitor.running
    await asyncio.sleep(0)
    assert not [t for t in asyncio.all_tasks() if t.get_name() == "media-janitor"]
    assert "Media sweep: removed the media of 0 job(s)" in caplog.text
