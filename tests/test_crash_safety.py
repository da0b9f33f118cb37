"""Kill ``python bot.py`` (SIGKILL) at each step of a job's life, start it again, and see the job end properly.

Each test stops the real process at one chosen moment (the chaos test does it at random ones): while
sending to xAI, while downloading, in the middle of the upload to Discord, after a failed upload. Then a
new process starts from the same SQLite file and the emulators' records show what people and xAI saw.
SIGTERM, by contrast, must stop the bot within 10 s without ending any job.
"""

from __future__ import annotations

import asyncio
import resource

import pytest

from services.jobs.models import ErrorCode
from tests.botprocess import BotProcess, jobs_now
from tests.emulators.discord_emulator import DiscordEmulator, MessageRecord
from tests.emulators.xai_emulator import Outcome, XaiEmulator
from tests.mediafactory import make_mp4

UPLOADS = r"/channels/\d+/messages$"


async def _job_row(bot: BotProcess, predicate: str = "", timeout: float = 30) -> dict[str, object]:
    """The (only) job's row once its status is ``predicate`` (any status when empty)."""
    rows: list[dict[str, object]] = []

    async def check() -> bool:
        nonlocal rows
        rows = await jobs_now(bot.database_path)
        return bool(rows) and (not predicate or rows[-1]["status"] == predicate)

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"no job reached {predicate!r}: {rows}\n{bot.all_logs()}")
        await asyncio.sleep(0.05)
    return rows[-1]


async def _settled(bot: BotProcess, timeout: float = 30) -> dict[str, object]:
    """The job once it is delivered, or ended and its requester told."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        rows = await jobs_now(bot.database_path)
        row = rows[-1] if rows else None
        if row is not None and (row["status"] == "delivered" or row["notified_at"]):
            return row
        if loop.time() > deadline:
            raise AssertionError(f"the job never settled: {row}\n{bot.all_logs()}")
        await asyncio.sleep(0.05)


async def _statuses(bot: BotProcess, wanted: list[str], timeout: float = 30) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while (seen := [row["status"] for row in await jobs_now(bot.database_path)]) != wanted:
        if loop.time() > deadline:
            raise AssertionError(f"statuses {seen}, expected {wanted}\n{bot.all_logs()}")
        await asyncio.sleep(0.05)


def _videos(emu: DiscordEmulator, job_id: object) -> list[MessageRecord]:
    name = f"grok-video-{job_id}.mp4"
    return [m for m in emu.world.messages.values() if any(a.filename == name for a in m.attachments)]


def _submits(xai: XaiEmulator) -> int:
    return sum(1 for r in xai.requests if r.method == "POST" and r.path.startswith("/v1/videos/"))


async def test_killed_mid_upload_posts_once_even_after_discords_nonce_window(
    bot: BotProcess, discord_emu: DiscordEmulator
) -> None:
    """Discord takes the upload just as the bot dies; the restarted bot finds that post instead of posting again."""
    emu = discord_emu
    emu.nonce_window_s = 0.0  # the restart comes "minutes" later: Discord no longer dedupes the nonce
    emu.delay_next("POST", UPLOADS, 1.5)
    await bot.start()
    await emu.slash("video", {"prompt": "a kite over the dunes"})
    await emu.wait_for(lambda: any(r.files for r in emu.requests_matching("POST", UPLOADS)), 30)
    await bot.kill()
    await emu.wait_for(lambda: len(_videos(emu, 1)) == 1, 10)  # Discord finished the upload without the bot
    await bot.start()
    row = await _settled(bot)
    assert row["status"] == "delivered"
    videos = _videos(emu, row["id"])
    assert [m.id for m in videos] == [row["delivered_message_id"]]
    assert len([r for r in emu.requests_matching("POST", UPLOADS) if r.files]) == 1


async def test_killed_while_downloading_fetches_a_fresh_address(
    bot: BotProcess, discord_emu: DiscordEmulator, xai: XaiEmulator
) -> None:
    """xAI's video URLs are temporary: after the restart the bot asks xAI again, then downloads and posts once."""
    xai.fail_requests("GET", r"^/xai-vidgen-bucket/", hang_s=5)
    await bot.start()
    await discord_emu.slash("video", {"prompt": "a heron taking off"})
    row = await _job_row(bot, "downloading")
    await discord_emu.wait_for(lambda: xai.pending_faults() == 0, 10)  # the download is hanging
    await bot.kill()
    polls_before = sum(1 for r in xai.requests if r.method == "GET" and r.path == f"/v1/videos/{row['request_id']}")
    await bot.start()
    row = await _settled(bot)
    assert row["status"] == "delivered"
    polls = sum(1 for r in xai.requests if r.method == "GET" and r.path == f"/v1/videos/{row['request_id']}")
    assert polls > polls_before
    assert len(_videos(discord_emu, row["id"])) == 1 and _submits(xai) == 1


async def test_killed_after_a_failed_upload_posts_the_file_on_disk(
    bot: BotProcess, discord_emu: DiscordEmulator, xai: XaiEmulator
) -> None:
    """Killed while waiting to retry an upload: the next start posts the downloaded file, without asking xAI."""
    emu = discord_emu
    emu.fail_next("POST", UPLOADS, 503)
    await bot.start()
    await emu.slash("video", {"prompt": "a lantern festival"})
    await emu.wait_for(lambda: any(r.status == 503 for r in emu.requests_matching("POST", UPLOADS)), 30)
    row = await _job_row(bot, "delivering")
    await bot.kill()
    requests_before = len(xai.requests)
    await bot.start()
    row = await _settled(bot)
    assert row["status"] == "delivered"
    assert [m.id for m in _videos(emu, row["id"])] == [row["delivered_message_id"]]
    assert len(xai.requests) == requests_before  # the file on disk was enough
    assert _submits(xai) == 1


async def test_killed_while_submitting_is_failed_once_with_a_message(
    bot: BotProcess, discord_emu: DiscordEmulator, xai: XaiEmulator
) -> None:
    """Nobody knows whether xAI got it: not resent (double charge), and the requester is told exactly once."""
    bot.overrides["XAI_REQUEST_TIMEOUT_SECONDS"] = "30"  # still on the wire when the bot dies
    xai.fail_requests("POST", r"^/v1/videos/generations$", hang_s=5)
    await bot.start()
    await discord_emu.slash("video", {"prompt": "a train in the snow"})
    await _job_row(bot, "submitting")
    await discord_emu.wait_for(lambda: _submits(xai) == 1, 10)
    await bot.kill()
    await bot.start()
    row = await _settled(bot)
    assert (row["status"], row["error_code"]) == ("failed", ErrorCode.SUBMIT_UNCERTAIN.value)
    told = [m for m in discord_emu.world.messages.values() if "not sent again to avoid a double charge" in m.content]
    assert len(told) == 1 and f"<@{discord_emu.user_id}>" in told[0].content
    assert _submits(xai) == 1


async def test_after_a_restart_with_the_status_message_gone_the_video_still_lands_in_the_channel(
    bot: BotProcess, discord_emu: DiscordEmulator, xai: XaiEmulator
) -> None:
    """No interaction token survives a restart and the status message was deleted: the bot token alone posts
    the video in the channel by id, mentioning the requester, as a plain message (no reply to a missing one)."""
    emu = discord_emu
    xai.outcomes.append(Outcome(generation_s=3.0))
    await bot.start()
    await emu.slash("video", {"prompt": "a snail racing a leaf"})
    row = await _job_row(bot, "running")
    await bot.kill()
    emu.messages[int(str(row["status_message_id"]))].deleted = True
    before = len(emu.requests)
    await bot.start()
    row = await _settled(bot)
    assert row["status"] == "delivered" and row["delivery_method"] == "channel"
    [posted] = _videos(emu, row["id"])
    assert posted.channel_id == emu.channel_id and posted.via == "bot"
    assert posted.mentions == [emu.user_id] and not posted.message_reference
    assert not [r for r in emu.requests[before:] if "/webhooks/" in r.path]  # the token died with the process


async def test_sigterm_stops_within_10_s_and_every_job_resumes(
    bot: BotProcess, discord_emu: DiscordEmulator, xai: XaiEmulator
) -> None:
    """One job generating, one waiting, one stuck behind a long Discord rate limit: SIGTERM exits 0 in time,
    ends none of them, and the next start finishes all three, each posted once and submitted once."""
    emu = discord_emu
    bot.overrides["XAI_MAX_CONCURRENT_JOBS"] = "1"
    xai.prompt_outcomes["slow"] = Outcome(generation_s=4.0)
    emu.fail_next("POST", UPLOADS, 429, retry_after=40.0)  # discord.py waits it out inside the upload
    await bot.start()
    await emu.slash("video", {"prompt": "first: rate limited on upload"})
    await emu.wait_for(lambda: any(r.status == 429 for r in emu.requests_matching("POST", UPLOADS)), 30)
    await emu.slash("video", {"prompt": "second: slow"})
    await _statuses(bot, ["delivering", "running"])  # taken first: two commands at once may go either way
    await emu.slash("video", {"prompt": "third: waits in line"})
    await _statuses(bot, ["delivering", "running", "queued"])
    assert await bot.terminate(timeout=10) == 0
    rows = await jobs_now(bot.database_path)
    assert [r["status"] for r in rows] == ["delivering", "running", "queued"]
    assert "Traceback" not in bot.log()
    await bot.start()
    await _statuses(bot, ["delivered"] * 3, timeout=60)
    assert _submits(xai) == 3
    await asyncio.sleep(0.5)
    assert all(len(_videos(emu, n)) == 1 for n in (1, 2, 3))


def _limit_file_size() -> None:
    """Runs in the child before exec: no file may grow past 1.5 MB (as on a nearly full disk)."""
    resource.setrlimit(resource.RLIMIT_FSIZE, (1_500_000, 1_500_000))


@pytest.mark.sqlite_only  # fills the SQLite file's disk
async def test_a_full_disk_fails_that_job_with_a_message_and_the_bot_carries_on(
    bot: BotProcess, discord_emu: DiscordEmulator, xai: XaiEmulator
) -> None:
    """A video that cannot be written ends with words about the disk (no server path); the next job works."""
    big = make_mp4(5.0, width=160, height=120, noise=True)
    assert len(big) > 1_600_000
    xai.prompt_outcomes["huge"] = Outcome(video=big)
    bot.preexec = _limit_file_size
    await bot.start()
    await discord_emu.slash("video", {"prompt": "a huge video"})
    row = await _settled(bot)
    assert (row["status"], row["error_code"]) == ("failed", ErrorCode.DOWNLOAD_FAILED.value)
    told = [m for m in discord_emu.world.messages.values() if f"(job #{row['id']})" in m.content]
    assert len(told) == 1 and "disk is full" in told[0].content
    assert str(bot.tmp_path) not in told[0].content
    assert not list((bot.database_path.parent / "videos").glob("*.part"))
    await discord_emu.slash("video", {"prompt": "a small one"})
    await discord_emu.wait_for(lambda: len(_videos(discord_emu, 2)) == 1, 30)
    assert (await _settled(bot))["status"] == "delivered"
