"""Money spent is money counted, end to end: /video then Cancel (a button) through both emulators.

A job cancelled while xAI generates it was sent and may be billed, so it keeps counting against the member's
window and the server's dollar cap; /quota and /usage show the very numbers the limits use.
"""

from __future__ import annotations

import discord

from services.jobs.models import CancelResult, JobStatus
from tests.emulators.discord_models import DEFAULT_MEMBER_PERMISSIONS
from tests.emulators.xai_emulator import Outcome
from tests.harness import BotRig
from tests.test_limits_e2e import refused, reply, text_of

MANAGE_SERVER = DEFAULT_MEMBER_PERMISSIONS | discord.Permissions(manage_guild=True).value


async def cancelled_while_generating(rig: BotRig, prompt: str, user_id: int | None = None) -> int:
    """/video, wait until xAI is generating it, press Cancel on its status message; the job's id."""
    emu = rig.discord
    inter = await emu.slash("video", {"prompt": prompt, "duration": 3, "resolution": "480p"}, user_id=user_id)
    await rig.wait_for_answer(inter, "Generating")
    assert rig.bot is not None and inter.original_message_id is not None
    jobs = await rig.bot.runtime.store.jobs.of_user(user_id or emu.user_id, limit=1)
    job_id = jobs[0].id
    await emu.click(inter.original_message_id, f"gv:cancel:{job_id}", user_id=user_id)
    job = await rig.wait_for_job(lambda j: j.status is JobStatus.CANCELLED, job_id)
    assert job.request_id in rig.xai.jobs  # it reached xAI, which may bill it
    return job_id


async def test_video_and_cancel_in_a_loop_hits_the_member_limit(rig: BotRig) -> None:
    """Two videos cancelled while generating use up a limit of two: the third request is refused."""
    rig.xai.prompt_outcomes["slow"] = Outcome(kind="never")
    async with rig.running(LIMIT_USER_VIDEOS="2"):
        for n in range(2):
            await cancelled_while_generating(rig, f"slow {n}")
        answer = await refused(rig, "slow 2")
    assert "2 videos in the last hour" in answer and "limit here is 2" in answer
    assert len(rig.xai.submits()) == 2


async def test_video_and_cancel_in_a_loop_hits_the_servers_dollar_cap(rig: BotRig) -> None:
    """Three cancelled 3 s videos at $0.05 a second are $0.45 of a $0.50 budget: a fourth does not fit."""
    emu = rig.discord
    rig.xai.prompt_outcomes["slow"] = Outcome(kind="never")
    users = [emu.user_id, emu.other_user_id, emu.add_user("third"), emu.add_user("fourth")]
    async with rig.running(
        LIMIT_SERVER_USD_PER_DAY="0.5", XAI_MODELS="grok-imagine-video", XAI_USD_PER_SECOND_480P="0.05"
    ):
        for n, user in enumerate(users[:3]):
            await cancelled_while_generating(rig, f"slow {n}", user_id=user)
        answer = await refused(rig, "slow 3", user_id=users[3], duration=3, resolution="480p")
    assert "spent $0.45 of its $0.50 daily budget" in answer
    assert len(rig.xai.submits()) == 3


async def test_quota_and_usage_show_the_numbers_the_limits_use(rig: BotRig) -> None:
    """Two jobs cancelled while generating count, one cancelled while waiting does not: everywhere the same."""
    emu = rig.discord
    emu.set_user_permissions(emu.guild_id, emu.other_user_id, MANAGE_SERVER)  # the moderator asks /usage
    rig.xai.prompt_outcomes["slow"] = Outcome(kind="never")
    rig.xai.prompt_outcomes["quick"] = Outcome(generation_s=1.0)
    async with rig.running(
        XAI_MAX_CONCURRENT_JOBS="1",
        XAI_MODELS="grok-imagine-video",
        XAI_USD_PER_SECOND_480P="0.05",
        LIMIT_USER_VIDEOS="3",
        LIMIT_SERVER_VIDEOS_PER_DAY="10",
        LIMIT_SERVER_USD_PER_DAY="5",
    ):
        first = await cancelled_while_generating(rig, "quick 0", user_id=emu.other_user_id)
        # xAI goes on with it, holding the account's one slot, until it is done: then the next one may start.
        await rig.wait_for_job(lambda job: job.ended_at is not None, first)
        # One generates, one waits behind it; the waiting one is cancelled before anything is sent.
        ahead = await emu.slash("video", {"prompt": "slow 1", "duration": 3, "resolution": "480p"})
        await rig.wait_for_answer(ahead, "Generating")
        behind = await emu.slash("video", {"prompt": "slow 2", "duration": 3, "resolution": "480p"})
        await rig.wait_for_answer(behind, "position")
        assert rig.bot is not None and behind.original_message_id is not None
        waiting = (await rig.bot.runtime.store.jobs.of_user(emu.user_id, limit=1))[0]
        assert await rig.bot.runtime.jobs.cancel(waiting.id) is CancelResult.BEFORE_SENDING
        generating = (await rig.bot.runtime.store.jobs.of_user(emu.user_id, limit=2))[1]
        assert await rig.bot.runtime.jobs.cancel(generating.id) is CancelResult.AFTER_SENDING
        quota = text_of(await reply(rig, await emu.slash("quota", {})))
        usage = text_of(await reply(rig, await emu.slash("usage", {"period": "today"}, user_id=emu.other_user_id)))
        store = rig.bot.runtime.store
        counted = await store.usage.counted_count(emu.guild_id, None, 0)
        policy = await rig.bot.runtime.jobs.rules.policy(emu.guild_id)
        spend = await store.usage.spend_total(emu.guild_id, 0, policy)
    assert first and counted == 2 and spend == 3_000_000_000  # $0.30, in ticks
    assert "**2** of your 3 videos per hour left" in quota  # mine: the one generating counts, the waiting one not
    assert "2 of 10 videos in the last 24 hours" in quota and "$0.30 of its $5.00 daily budget" in quota
    assert "**$0.30** spent" in usage and "cancelled: 3" in usage
    assert len(rig.xai.submits()) == 2
