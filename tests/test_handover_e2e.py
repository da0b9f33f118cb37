"""A status message outlives its interaction token: the hand-over note stays true and keeps Cancel.

Discord's interaction token dies 15 minutes after the command; the bot lets go of it 90 seconds early
and leaves a note. A job still waiting or running keeps its Cancel button (a click is a new
interaction with a token of its own), the note says where the video will really go, and once the job
ends the status message says how, edited with the bot token. Each test sends its command "13 min 28 s
ago" (``created_at``), so the hand-over comes about two seconds after the job is accepted.
"""

from __future__ import annotations

import time

from services.delivery.board import TOKEN_SAFETY_MARGIN_S
from services.jobs.models import JobStatus
from tests.emulators.discord_emulator import InteractionRecord, MessageRecord
from tests.emulators.discord_models import READ_MESSAGE_HISTORY, VIEW_CHANNEL
from tests.emulators.xai_emulator import Outcome
from tests.harness import BotRig

NOTE = "Still working on it"
TOKEN_LIFETIME_S = 15 * 60


def _handover_in(seconds: float) -> float:
    """The ``created_at`` of a command whose hand-over is due ``seconds`` from now."""
    return time.time() - (TOKEN_LIFETIME_S - TOKEN_SAFETY_MARGIN_S - seconds)


def _status(rig: BotRig, interaction: InteractionRecord) -> MessageRecord:
    return rig.discord.messages[interaction.original_message_id or 0]


def _submits(rig: BotRig) -> int:
    return len([r for r in rig.xai.requests if r.method == "POST"])


async def test_a_job_waiting_in_line_after_the_hand_over_keeps_cancel_and_a_click_costs_nothing(rig: BotRig) -> None:
    """Past the hand-over a queued job still shows Cancel; the click (its own token) takes it out of line unsent."""
    emu = rig.discord
    rig.xai.prompt_outcomes["slow"] = Outcome(kind="never")
    async with rig.running(XAI_MAX_CONCURRENT_JOBS="1"):
        ahead = await emu.slash("video", {"prompt": "slow ahead", "duration": 3})
        await rig.wait_for_answer(ahead, "Generating")
        waiting = await emu.slash("video", {"prompt": "slow waiting", "duration": 3}, created_at=_handover_in(2))
        await rig.wait_for_answer(waiting, "position")
        note = await rig.wait_for_answer(waiting, NOTE, timeout=15)
        job = await rig.latest_job()
        buttons = _status(rig, waiting).custom_ids
        await emu.click(_status(rig, waiting).id, f"gv:cancel:{job.id}")
        cancelled = await rig.wait_for_answer(waiting, "Cancelled")
        final = await rig.job(job.id)
    assert job.status is JobStatus.QUEUED and buttons == [f"gv:cancel:{job.id}"], (note, buttons)
    assert "I'll post the video in this channel" in note
    assert "costs nothing" in cancelled and final.status is JobStatus.CANCELLED
    assert _submits(rig) == 1, "only the job ahead reached xAI"


async def test_a_job_finishing_after_the_hand_over_says_done_on_its_status_message(rig: BotRig) -> None:
    """The note (with Cancel, while it runs) gives way to "Done!" without buttons once the video is posted."""
    emu = rig.discord
    rig.xai.outcomes.append(Outcome(generation_s=5.0))
    async with rig.running():
        inter = await emu.slash("video", {"prompt": "a slow sunrise", "duration": 3}, created_at=_handover_in(2))
        await rig.wait_for_answer(inter, NOTE, timeout=15)
        running = await rig.latest_job()
        buttons_while_running = _status(rig, inter).custom_ids
        posted = await rig.delivered_video()
        done = await rig.wait_for_answer(inter, "Done")
        job = await rig.wait_until_terminal()
    assert running.status is JobStatus.RUNNING and buttons_while_running == [f"gv:cancel:{job.id}"]
    assert job.status is JobStatus.DELIVERED and job.delivery_method == "channel"
    assert posted.channel_id == emu.channel_id
    assert "Your video is below" in done and not _status(rig, inter).custom_ids


async def test_the_note_says_dm_when_the_bot_can_no_longer_post_here_and_the_ending_agrees(rig: BotRig) -> None:
    """The bot lost Send and Attach in the channel: the note promises a DM (and says to open DMs), and it is one."""
    emu = rig.discord
    rig.xai.outcomes.append(Outcome(generation_s=5.0))
    closing = emu.add_channel(emu.guild_id, "closing")
    async with rig.running():
        inter = await emu.slash(
            "video", {"prompt": "a quiet harbour", "duration": 3}, channel_id=closing, created_at=_handover_in(2)
        )
        await rig.wait_for_answer(inter, "Generating")
        emu.set_bot_permissions(closing, VIEW_CHANNEL | READ_MESSAGE_HISTORY)
        note = await rig.wait_for_answer(inter, NOTE, timeout=15)
        done = await rig.wait_for_answer(inter, "Done")
        job = await rig.wait_until_terminal()
    assert "in a DM" in note and "open them" in note and "in this channel when" not in note
    assert job.delivery_method == "dm"
    assert "sent the video to you in a DM" in done and not _status(rig, inter).custom_ids


async def test_a_failure_after_the_hand_over_is_told_once_and_the_status_message_points_to_it(rig: BotRig) -> None:
    """xAI's reason reaches the requester by a mention, once; the status message stops saying "still working"."""
    emu = rig.discord
    rig.xai.outcomes.append(Outcome(kind="failed", error_message="GPU on fire", generation_s=5.0))
    async with rig.running():
        inter = await emu.slash("video", {"prompt": "a hot graphics card"}, created_at=_handover_in(2))
        await rig.wait_for_answer(inter, NOTE, timeout=15)
        told = await emu.wait_for_message(lambda m: m.via == "bot" and "GPU on fire" in m.content, timeout=20)
        ending = await rig.wait_for_answer(inter, "ended without a video")
        job = await rig.wait_until_terminal()
    assert job.status is JobStatus.FAILED and told.mentions == [emu.user_id]
    assert "my message below says why" in ending and not _status(rig, inter).custom_ids
    assert [m.id for m in emu.messages_in(emu.channel_id) if "GPU on fire" in m.content] == [told.id]


async def test_a_failure_told_by_dm_says_so_on_the_status_message(rig: BotRig) -> None:
    """The bot can no longer post in the channel: the reason goes by DM, and the status message says where."""
    emu = rig.discord
    rig.xai.outcomes.append(Outcome(kind="failed", error_message="GPU on fire", generation_s=5.0))
    closing = emu.add_channel(emu.guild_id, "closing")
    async with rig.running():
        inter = await emu.slash(
            "video", {"prompt": "a hot graphics card"}, channel_id=closing, created_at=_handover_in(2)
        )
        await rig.wait_for_answer(inter, "Generating")
        emu.set_bot_permissions(closing, VIEW_CHANNEL | READ_MESSAGE_HISTORY)
        await rig.wait_for_answer(inter, NOTE, timeout=15)
        ending = await rig.wait_for_answer(inter, "ended without a video")
        dm = [m for m in emu.messages_in(emu.dm_channel(emu.user_id)) if "GPU on fire" in m.content]
    assert "I sent you why in a DM" in ending and len(dm) == 1


async def test_after_a_restart_the_status_message_shows_the_ending_not_the_last_progress(rig: BotRig) -> None:
    """A restart loses the interaction; the video still lands, and the status message says "Done!", without Cancel."""
    emu = rig.discord
    rig.xai.outcomes.append(Outcome(generation_s=3.0))
    async with rig.running():
        inter = await emu.slash("video", {"prompt": "a long exposure", "duration": 3})
        await rig.wait_for_answer(inter, "Generating")
    left = _status(rig, inter).content
    async with rig.running():
        await rig.delivered_video()
        done = await rig.wait_for_answer(inter, "Done")
        job = await rig.wait_until_terminal()
    assert "Generating" in left and job.status is JobStatus.DELIVERED
    assert "Your video is below" in done and not _status(rig, inter).custom_ids


async def test_a_cancel_button_left_on_an_ended_job_is_tidied_by_its_click(rig: BotRig) -> None:
    """The bot could not even see the channel at the end, so the note stayed; a Cancel click there shows the ending."""
    emu = rig.discord
    rig.xai.outcomes.append(Outcome(generation_s=5.0))
    hidden = emu.add_channel(emu.guild_id, "hidden")
    async with rig.running():
        inter = await emu.slash(
            "video", {"prompt": "a lantern in fog", "duration": 3}, channel_id=hidden, created_at=_handover_in(2)
        )
        await rig.wait_for_answer(inter, "Generating")
        emu.set_bot_permissions(hidden, 0)
        await rig.wait_for_answer(inter, NOTE, timeout=15)
        job = await rig.wait_until_terminal()
        left_showing = _status(rig, inter).content
        click = await emu.click(_status(rig, inter).id, f"gv:cancel:{job.id}")
        tidied = await rig.wait_for_answer(inter, "Done")
        note = await emu.wait_for_message(lambda m: m.interaction_id == click.id and m.ephemeral, timeout=5)
    assert job.delivery_method == "dm" and NOTE in left_showing
    assert "sent the video to you in a DM" in tidied and not _status(rig, inter).custom_ids
    assert note.content == "This job has already finished."
