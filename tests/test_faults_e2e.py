"""Faults from both sides, end to end: each ends in a retry where that is safe, or in words to the requester,
and never in a lost or doubled job. (Single-layer cases live in test_xai_client.py and test_scheduler.py.)"""

from __future__ import annotations

import asyncio
import logging
import re
import sqlite3
import threading

import pytest

from services.jobs.models import JobStatus
from tests.emulators.discord_emulator import MessageRecord
from tests.emulators.xai_emulator import Outcome
from tests.harness import BotRig
from tests.mediafactory import make_mp4

UPLOADS = r"/channels/\d+/messages$"
POLLS = r"^/v1/videos/[0-9a-f-]{36}$"


def _videos(rig: BotRig, job_id: int) -> list[MessageRecord]:
    name = f"grok-video-{job_id}.mp4"
    return [m for m in rig.discord.world.messages.values() if any(a.filename == name for a in m.attachments)]


def _submits(rig: BotRig) -> int:
    return sum(1 for r in rig.xai.requests if r.method == "POST" and r.path.startswith("/v1/videos/"))


async def _delivered_once(rig: BotRig, timeout: float = 30) -> MessageRecord:
    job = await rig.wait_until_terminal(timeout=timeout)
    assert job.status is JobStatus.DELIVERED, job
    videos = _videos(rig, job.id)
    assert [m.id for m in videos] == [job.delivered_message_id]
    assert _submits(rig) == 1
    return videos[0]


@pytest.mark.parametrize(
    ("reset", "nonce_window_s"),
    [(False, 300.0), (True, 300.0), (True, 0.0)],
    ids=["500-then-discord.py-retries", "reset-then-scheduler-retries", "reset-past-the-nonce-window"],
)
async def test_an_upload_discord_took_but_never_confirmed_is_posted_once(
    rig: BotRig, reset: bool, nonce_window_s: float
) -> None:
    """Discord stores the message, the bot hears a 500 or a dropped connection. discord.py retries a 500 at once
    (Discord's nonce dedupes it); after a reset the scheduler retries seconds later, when only the bot's own look
    at the channel may still know (Discord dedupes nonces for a few minutes only)."""
    rig.discord.nonce_window_s = nonce_window_s
    rig.discord.lose_next_answer("POST", UPLOADS, reset=reset)
    async with rig.running():
        await rig.discord.slash("video", {"prompt": "a red fox in the snow"})
        await _delivered_once(rig)
        await asyncio.sleep(0.3)  # nothing else arrives afterwards
        assert len(_videos(rig, 1)) == 1


async def test_a_burst_of_discord_server_errors_on_upload_is_retried(rig: BotRig) -> None:
    """502s (retried by discord.py) and a 503 (retried by the scheduler) end in one post."""
    rig.discord.fail_next("POST", UPLOADS, 502, times=2)
    rig.discord.fail_next("POST", UPLOADS, 503)
    async with rig.running():
        await rig.discord.slash("video", {"prompt": "waves on a pier"})
        await _delivered_once(rig)
    assert [r.status for r in rig.discord.requests_matching("POST", UPLOADS)] == [502, 502, 503, 200]


async def test_a_413_on_upload_re_encodes_smaller_and_posts_once(rig: BotRig) -> None:
    """Discord refusing the file as too large: squeezed once under 70% of the size and posted."""
    rig.xai.output_video = make_mp4(1.0, noise=True)
    rig.discord.fail_next("POST", UPLOADS, 413, code=40005, message="Request entity too large")
    async with rig.running():
        await rig.discord.slash("video", {"prompt": "static on an old television"})
        posted = await _delivered_once(rig)
    assert posted.attachments[0].size <= 0.7 * len(rig.xai.output_video)


async def test_a_long_discord_rate_limit_holds_up_no_other_job(rig: BotRig) -> None:
    """Job A times out while its status message is rate limited for 6 s (discord.py sleeps it out, so it is real
    time, kept to what job B needs several times over): telling A waits, job B does not."""
    emu = rig.discord
    rig.xai.prompt_outcomes["never"] = Outcome(kind="never")
    async with rig.running(XAI_JOB_TIMEOUT_SECONDS="1"):
        first = await emu.slash("video", {"prompt": "never finishes"})
        await rig.wait_for_answer(first, "Generating")
        token = re.escape(first.token)
        emu.fail_next("PATCH", rf"/webhooks/\d+/{token}/messages/@original$", 429, retry_after=6.0)
        await emu.wait_for(lambda: any(r.status == 429 for r in emu.requests_matching("PATCH", token)), 20)
        await emu.slash("video", {"prompt": "a quick one"})
        await emu.wait_for(lambda: len(_videos(rig, 2)) == 1, 12)
        assert "did not finish" not in rig.answer_to(first)  # A's notice is still waiting out the limit
        await rig.wait_for_answer(first, "did not finish", timeout=30)
        job = await rig.job(1)
        assert job.status is JobStatus.FAILED


@pytest.mark.sqlite_only  # locks the SQLite file
async def test_a_locked_database_delays_jobs_but_loses_none(rig: BotRig, caplog: pytest.LogCaptureFixture) -> None:
    """Another process holds the write lock past busy_timeout: the job's steps wait, then it is delivered once."""
    caplog.set_level(logging.WARNING, logger="services.store.patience")
    rig.xai.outcomes.append(Outcome(generation_s=0.5))
    locked, release = threading.Event(), threading.Event()

    def hold_the_lock() -> None:
        other = sqlite3.connect(rig.database_path, timeout=10)
        try:
            other.execute("BEGIN IMMEDIATE")
            locked.set()
            release.wait(15)
            other.rollback()
        finally:
            other.close()

    async with rig.running():
        await rig.discord.slash("video", {"prompt": "a locked door"})
        await rig.wait_for_job(lambda job: job.status is not JobStatus.QUEUED)
        holder = asyncio.create_task(asyncio.to_thread(hold_the_lock))
        await asyncio.to_thread(locked.wait, 10)
        await rig.discord.wait_for(lambda: "locked by another process" in caplog.text, 20)
        release.set()
        await holder
        await _delivered_once(rig)


async def test_the_video_host_failing_is_retried(rig: BotRig) -> None:
    """A 503 and then a reset from xAI's file host: downloaded on the third try, posted once."""
    rig.xai.fail_requests("GET", r"^/xai-vidgen-bucket/", status=503)
    rig.xai.fail_requests("GET", r"^/xai-vidgen-bucket/", reset=True)
    async with rig.running():
        await rig.discord.slash("video", {"prompt": "a windmill at dusk"})
        posted = await _delivered_once(rig)
    assert posted.attachments[0].data == rig.xai.output_video
    assert rig.xai.pending_faults() == 0


async def test_polls_survive_server_errors_hangs_resets_and_broken_json(rig: BotRig) -> None:
    """Every kind of bad poll answer in a row; the job still ends delivered, submitted once."""
    xai = rig.xai
    xai.outcomes.append(Outcome(generation_s=1.0))
    xai.fail_requests("GET", POLLS, status=503, times=2)
    xai.fail_requests("GET", POLLS, status=502)
    xai.fail_requests("GET", POLLS, reset=True)
    xai.fail_requests("GET", POLLS, hang_s=2.5)
    xai.fail_requests("GET", POLLS, status=200, body='{"status": "done", "video": {"url": ')
    async with rig.running(XAI_REQUEST_TIMEOUT_SECONDS="1"):
        await rig.discord.slash("video", {"prompt": "a storm over the sea"})
        await _delivered_once(rig)
    assert xai.pending_faults() == 0


async def test_a_failure_notice_discord_refuses_at_first_is_retried_without_a_restart(rig: BotRig) -> None:
    """The status message cannot be edited and the channel answers 503: the notice is retried and lands once."""
    emu = rig.discord
    rig.xai.outcomes.append(Outcome(kind="failed", error_message="the engine broke"))
    emu.fail_next("PATCH", r"/messages/@original$", 404, code=10015, message="Unknown Webhook", times=10)
    emu.fail_next("POST", UPLOADS, 503)
    async with rig.running():
        await emu.slash("video", {"prompt": "a broken engine"})
        await rig.wait_for_job(lambda job: job.status is JobStatus.FAILED)
        await emu.wait_for(lambda: any("the engine broke" in m.content for m in emu.messages.values()), 20)
        store = rig.bot.runtime.store if rig.bot else None
        assert store is not None
        for _ in range(200):  # marked told right after the message lands
            if not await store.jobs.unnotified_endings():
                break
            await asyncio.sleep(0.02)
        assert not await store.jobs.unnotified_endings()
        job = await rig.job(1)
        told = [m for m in emu.messages.values() if "the engine broke" in m.content]
        assert len(told) == 1 and told[0].via == "bot" and f"<@{emu.user_id}>" in told[0].content
        assert [r.status for r in emu.requests_matching("POST", UPLOADS)] == [503, 200]
        assert job.status is JobStatus.FAILED
