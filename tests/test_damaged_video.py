"""A damaged video is never posted: a cut-off copy (its Content-Length matching the short body) is caught,
fetched again while xAI keeps the video, and the job fails with words only when no whole copy can be had.

The scheduler's own tests (real client, store and emulator over HTTP); what was delivered is probed with
PyAV, and the emulator records every copy its video host sent.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.jobs.models import ErrorCode, JobStatus
from services.media import probing
from tests.emulators.discord_emulator import DiscordEmulator
from tests.emulators.xai_emulator import Outcome, XaiEmulator
from tests.harness import BotRig
from tests.mediafactory import make_mp4
from tests.scheduler_rig import Rig, open_rig, text_request


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    async with open_rig(tmp_path) as rig:
        rig.xai.output_video = make_mp4(3.0)
        yield rig


async def _playable(rig: Rig, data: bytes) -> probing.VideoInfo:
    path = rig.tmp_path / "delivered.mp4"
    path.write_bytes(data)
    return await probing.check_result_video(path)


async def test_a_damaged_first_copy_is_fetched_again_and_the_whole_one_delivered(rig: Rig) -> None:
    """The host cuts the first copy at 2/3 with a matching Content-Length; the second, whole copy is posted."""
    rig.xai.outcomes.append(Outcome(damaged_downloads=1))
    job = await rig.run_job(text_request())
    assert job.status is JobStatus.DELIVERED
    assert [d.damaged for d in rig.xai.downloads] == [True, False]
    assert rig.listener.delivered[job.id] == rig.xai.output_video
    info = await _playable(rig, rig.listener.delivered[job.id])
    assert info.duration_s == pytest.approx(3.0, abs=0.1) and info.audio_codec == "aac"
    assert job.output_bytes == len(rig.xai.output_video)


async def test_a_host_that_only_sends_damaged_copies_ends_the_job_with_a_clear_message(rig: Rig) -> None:
    """Every copy is cut: nothing is posted, and the requester hears why (and that xAI may still charge)."""
    rig.xai.outcomes.append(Outcome(damaged_downloads=1000))
    scheduler = rig.scheduler(download_retry_delays_s=(0.01, 0.01, 0.01))
    job = await rig.run_job(text_request(), scheduler)
    assert (job.status, job.error_code) == (JobStatus.FAILED, ErrorCode.DOWNLOAD_FAILED)
    message = job.error_message or ""
    assert "damaged or cut off" in message and "nothing was posted" in message and "may still charge" in message
    assert job.id not in rig.listener.delivered
    assert len(rig.xai.downloads) == 4 and all(d.damaged for d in rig.xai.downloads)  # the first and 3 more
    assert job.charged
    assert not list((rig.tmp_path / "videos").glob("job-*"))  # no damaged file left behind


async def test_a_refused_stale_address_is_replaced_by_a_fresh_one_from_xai(rig: Rig) -> None:
    """The first copy is cut, and by the retry the host refuses the old address: one poll, a fresh one, whole."""
    rig.xai.outcomes.append(Outcome(damaged_downloads=1))
    rig.xai.url_lifetime_s = 0.15
    scheduler = rig.scheduler(download_retry_delays_s=(0.3, 0.3))
    job = await rig.run_job(text_request(), scheduler)
    assert job.status is JobStatus.DELIVERED
    assert [(d.status, d.damaged) for d in rig.xai.downloads] == [(200, True), (403, False), (200, False)]
    assert rig.listener.delivered[job.id] == rig.xai.output_video


async def test_an_address_past_its_lifetime_is_renewed_before_fetching(rig: Rig) -> None:
    """An address older than xAI keeps it is not tried: xAI is asked for a fresh one first."""
    rig.xai.outcomes.append(Outcome(damaged_downloads=1))
    rig.xai.url_lifetime_s = 0.15
    scheduler = rig.scheduler(download_retry_delays_s=(0.3,), video_url_lifetime_s=0.15)
    job = await rig.run_job(text_request(), scheduler)
    assert job.status is JobStatus.DELIVERED
    assert [(d.status, d.damaged) for d in rig.xai.downloads] == [(200, True), (200, False)]


async def test_a_host_that_keeps_refusing_fails_with_its_reason(rig: Rig) -> None:
    """A refusal that a fresh address does not cure ends the job, saying what the host answered."""
    rig.xai.fail_requests("GET", r"^/xai-vidgen-bucket/", status=404, times=10)
    job = await rig.run_job(text_request())
    assert (job.status, job.error_code) == (JobStatus.FAILED, ErrorCode.DOWNLOAD_FAILED)
    assert "could not download it" in (job.error_message or "") and "404" in (job.error_message or "")
    assert len(rig.xai.downloads) == 2  # the first address, then one fresh one


async def test_the_bot_posts_the_whole_copy_and_only_that(
    discord_emu: DiscordEmulator, xai: XaiEmulator, tmp_path: Path
) -> None:
    """End to end: the cut first copy never reaches the channel; the one MP4 posted is whole and plays."""
    bot = BotRig(discord_emu, xai, tmp_path)
    xai.output_video = make_mp4(3.0)
    xai.outcomes.append(Outcome(damaged_downloads=1))
    async with bot.running():
        await discord_emu.slash("video", {"prompt": "a kite over the dunes"})
        posted = await bot.delivered_video()
        job = await bot.wait_until_terminal()
    assert job.status is JobStatus.DELIVERED and [d.damaged for d in xai.downloads] == [True, False]
    videos = [m for m in discord_emu.messages.values() if any(a.filename.endswith(".mp4") for a in m.attachments)]
    assert [m.id for m in videos] == [posted.id]
    path = tmp_path / "posted.mp4"
    path.write_bytes(posted.attachments[0].data)
    assert (await probing.check_result_video(path)).duration_s == pytest.approx(3.0, abs=0.1)
