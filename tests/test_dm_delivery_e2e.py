"""Every way a video leaves the bot takes only what it is known to take, and shrunk copies do not pile up.

A boosted server takes up to 100 MiB in its channels, but a DM takes 10 MiB, and an interaction's
followup takes what the interaction said (``attachment_size_limit``). A video too big for the way it
goes is re-encoded to fit; the re-encoded copy is deleted once the post that carried it is settled.
"""

from __future__ import annotations

import io
from pathlib import Path

import av

from services.jobs.models import JobStatus
from tests.emulators.discord_emulator import MessageRecord
from tests.emulators.discord_models import (
    ATTACH_FILES,
    DEFAULT_BOT_PERMISSIONS,
    EMBED_LINKS,
    MIB,
    READ_MESSAGE_HISTORY,
    SEND_MESSAGES,
    VIEW_CHANNEL,
)
from tests.emulators.xai_emulator import Outcome
from tests.harness import BotRig
from tests.mediafactory import make_mp4

DM_LIMIT = 10 * MIB


def _big_result(rig: BotRig) -> bytes:
    """A 12+ MiB result (incompressible frames), queued as xAI's next video."""
    big = make_mp4(1.5, width=640, height=360, fps=24, noise=True)
    assert 12 * MIB < len(big) <= 50 * MIB
    rig.xai.outcomes.append(Outcome(video=big))
    return big


def _frames(data: bytes) -> int:
    with av.open(io.BytesIO(data), "r") as container:
        return sum(1 for _ in container.decode(video=0))


def _videos_dir(rig: BotRig) -> Path:
    return rig.database_path.parent / "videos"


def _with_file(messages: list[MessageRecord]) -> list[MessageRecord]:
    return [m for m in messages if any(a.filename.endswith(".mp4") for a in m.attachments)]


async def test_a_dm_from_a_boosted_server_carries_a_video_fitted_to_ten_mib_that_plays(rig: BotRig) -> None:
    """Boosted server (50 MiB), channel closed to files, 12+ MiB result: the DM's file is <= 10 MiB and decodes."""
    emu = rig.discord
    emu.set_premium_tier(emu.guild_id, 2)
    emu.set_bot_permissions(emu.channel_id, VIEW_CHANNEL | SEND_MESSAGES | EMBED_LINKS | READ_MESSAGE_HISTORY)
    _big_result(rig)
    async with rig.running():
        inter = await emu.slash("video", {"prompt": "static"}, app_permissions=DEFAULT_BOT_PERMISSIONS)
        job = await rig.wait_until_terminal(timeout=60)
        answer = await rig.wait_for_answer(inter, "DM")
    assert job.status is JobStatus.DELIVERED and job.delivery_method == "dm", job.error_message
    dms = _with_file(emu.messages_in(emu.dm_channel(emu.user_id)))
    assert len(dms) == 1 and "sent the video to you in a DM" in answer
    data = dms[0].attachments[0].data
    assert len(data) <= DM_LIMIT and _frames(data) >= 30
    assert not list(_videos_dir(rig).glob("job-*-fit-*.mp4")) and (_videos_dir(rig) / f"job-{job.id}.mp4").is_file()


async def test_a_followup_takes_no_more_than_the_interaction_allows(rig: BotRig) -> None:
    """Channel closed to posts, followup open: the followup's file fits the interaction's attachment_size_limit."""
    emu = rig.discord
    emu.set_premium_tier(emu.guild_id, 2)
    emu.set_bot_permissions(emu.channel_id, VIEW_CHANNEL | ATTACH_FILES | EMBED_LINKS | READ_MESSAGE_HISTORY)
    _big_result(rig)
    async with rig.running():
        inter = await emu.slash(
            "video", {"prompt": "static"}, app_permissions=DEFAULT_BOT_PERMISSIONS, attachment_size_limit=DM_LIMIT
        )
        job = await rig.wait_until_terminal(timeout=60)
    assert job.status is JobStatus.DELIVERED and job.delivery_method == "followup", job.error_message
    posted = emu.messages[job.delivered_message_id or 0]
    assert posted.interaction_id == inter.id and len(posted.attachments[0].data) <= DM_LIMIT
    assert _frames(posted.attachments[0].data) >= 30


async def test_a_shrunk_copy_is_deleted_once_posted_and_the_original_is_kept(rig: BotRig) -> None:
    """The 10 MiB copy made for an unboosted server is gone after the post; the original download stays."""
    emu = rig.discord
    big = _big_result(rig)
    async with rig.running():
        await emu.slash("video", {"prompt": "static"})
        posted = await rig.delivered_video(timeout=60)
        job = await rig.wait_until_terminal()
    assert job.status is JobStatus.DELIVERED and len(posted.attachments[0].data) <= DM_LIMIT
    assert not list(_videos_dir(rig).glob("job-*-fit-*.mp4"))
    original = _videos_dir(rig) / f"job-{job.id}.mp4"
    assert original.is_file() and original.stat().st_size == len(big)
