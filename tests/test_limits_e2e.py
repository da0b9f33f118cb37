"""Limits, server rules, /videoadmin, /quota and fair admission, end to end through both emulators."""

from __future__ import annotations

import asyncio

import discord

from services.jobs.models import JobStatus
from tests.emulators.discord_emulator import InteractionRecord, MessageRecord
from tests.emulators.discord_models import DEFAULT_MEMBER_PERMISSIONS
from tests.emulators.xai_emulator import Outcome
from tests.harness import BotRig

MANAGE_SERVER = DEFAULT_MEMBER_PERMISSIONS | discord.Permissions(manage_guild=True).value
HOUR, DAY = 3600, 86400


async def reply(rig: BotRig, inter: InteractionRecord) -> MessageRecord:
    """The message that answers an interaction, once it is more than "thinking…"."""
    emu = rig.discord

    def answered() -> bool:
        if inter.followup_message_ids:
            return True
        message = emu.messages.get(inter.original_message_id or 0)
        return message is not None and not message.loading

    await emu.wait_for(answered, timeout=20)
    return emu.messages[inter.followup_message_ids[0] if inter.followup_message_ids else inter.original_message_id or 0]


def text_of(message: MessageRecord) -> str:
    """Everything a person reads in a message: content, embed titles, descriptions and fields."""
    parts = [message.content]
    for embed in message.embeds:
        parts += [embed.get("title", ""), embed.get("description", "")]
        parts += [f"{field['name']}: {field['value']}" for field in embed.get("fields", [])]
    return "\n".join(parts)


def moment(timestamp: float) -> str:
    """How a refusal shows the time of the next possible video (rounded up to the next second)."""
    return f"<t:{int(timestamp) + 1}:R>"


async def make_video(rig: BotRig, prompt: str, user_id: int | None = None, **options: object) -> int:
    """Run /video until it is delivered (3 s unless told; ``duration=None`` leaves it to the server)."""
    chosen = {"prompt": prompt, "duration": 3, **options}
    inter = await rig.discord.slash("video", {k: v for k, v in chosen.items() if v is not None}, user_id=user_id)
    await rig.wait_for_answer(inter, "Done")
    assert rig.bot is not None
    jobs = await rig.bot.runtime.store.jobs.of_user(user_id or rig.discord.user_id, limit=1)
    return jobs[0].id


async def refused(rig: BotRig, prompt: str, user_id: int | None = None, **options: object) -> str:
    inter = await rig.discord.slash("video", {"prompt": prompt, **options}, user_id=user_id)
    return await rig.wait_for_answer(inter, "⛔")


async def stored_jobs(rig: BotRig) -> int:
    assert rig.bot is not None
    row = await rig.bot.runtime.store.database.fetch_one("SELECT COUNT(*) FROM jobs")
    return int(row[0]) if row else 0


# -- each limit, with the right time ------------------------------------------------------------


async def test_videos_per_member_refuses_with_the_moment_the_oldest_one_leaves_the_window(rig: BotRig) -> None:
    async with rig.running(LIMIT_USER_VIDEOS="2", LIMIT_USER_WINDOW_MINUTES="60"):
        first = await rig.job(await make_video(rig, "one"))
        await make_video(rig, "two")
        answer = await refused(rig, "three")
        assert await stored_jobs(rig) == 2
    assert "2 videos in the last hour" in answer and "limit here is 2" in answer
    assert moment(first.counts_from + HOUR) in answer  # from when it was sent to xAI
    assert len([r for r in rig.xai.requests if r.method == "POST"]) == 2


async def test_active_jobs_per_member(rig: BotRig) -> None:
    rig.xai.outcomes.append(Outcome(kind="never"))
    async with rig.running(LIMIT_USER_ACTIVE_JOBS="1"):
        first = await rig.discord.slash("video", {"prompt": "slow one"})
        await rig.wait_for_answer(first, "Generating")
        answer = await refused(rig, "another")
        other = await make_video(rig, "someone else's", user_id=rig.discord.other_user_id)
    assert "1 video in the making" in answer and "as soon as one of them finishes" in answer
    assert other  # the limit is per member: someone else still gets theirs


async def test_videos_per_server_per_day(rig: BotRig) -> None:
    emu = rig.discord
    third = emu.add_user("third")
    async with rig.running(LIMIT_SERVER_VIDEOS_PER_DAY="2"):
        first = await rig.job(await make_video(rig, "a"))
        await make_video(rig, "b", user_id=emu.other_user_id)
        answer = await refused(rig, "c", user_id=third)
    assert "This server has made 2 videos in the last 24 hours" in answer
    assert moment(first.counts_from + DAY) in answer


async def test_spend_per_server_per_day(rig: BotRig) -> None:
    """Spend counts xAI's figure; a new request is priced before it is accepted."""
    rig.xai.outcomes.append(Outcome(cost_usd_ticks=6_000_000_000))  # $0.60
    async with rig.running(
        LIMIT_SERVER_USD_PER_DAY="1", XAI_MODELS="grok-imagine-video", XAI_USD_PER_SECOND_480P="0.05"
    ):
        first = await rig.job(await make_video(rig, "costly", resolution="480p"))
        assert first.cost_usd_ticks == 6_000_000_000
        # 10 s at 480p is about $0.50: $0.60 + $0.50 is over the $1.00 budget.
        over = await refused(rig, "ten seconds", duration=10, resolution="480p")
        # 15 s at 720p is more than the whole budget: waiting would not help.
        never = await refused(rig, "fifteen", duration=15, resolution="720p")
    assert "spent $0.60 of its $1.00 daily budget" in over and moment(first.counts_from + DAY) in over
    assert "more than this server's daily budget" in never and "<t:" not in never


async def test_staff_are_exempt_or_get_their_own_limits(rig: BotRig) -> None:
    emu = rig.discord
    admin = emu.add_user("admin", permissions=MANAGE_SERVER)
    helpers = emu.add_role(emu.guild_id, "helpers")
    helper = emu.add_user("helper", roles=[helpers])
    async with rig.running(LIMIT_USER_VIDEOS="1"):
        for n in range(3):  # Manage Server: no limit by default
            await make_video(rig, f"admin {n}", user_id=admin)
        setup = await emu.slash(
            "videoadmin", {"role": ("role", helpers), "videos": 2}, subcommand="staff", user_id=admin
        )
        assert "Saved" in (await reply(rig, setup)).content
        await make_video(rig, "helper 1", user_id=helper)
        await make_video(rig, "helper 2", user_id=helper)
        answer = await refused(rig, "helper 3", user_id=helper)
    assert "limit here is 2" in answer


async def test_two_requests_racing_for_the_last_slot(rig: BotRig) -> None:
    """Both arrive together; the limit is decided inside the inserting transaction, so one wins."""
    async with rig.running(LIMIT_USER_VIDEOS="1"):
        first, second = await asyncio.gather(
            rig.discord.slash("video", {"prompt": "left"}), rig.discord.slash("video", {"prompt": "right"})
        )

        def settled() -> bool:
            answers = (rig.answer_to(first), rig.answer_to(second))
            return any("⛔" in a for a in answers) and any("Done" in a for a in answers)

        await rig.discord.wait_for(settled, timeout=20)
        assert await stored_jobs(rig) == 1


async def test_waiting_jobs_are_admitted_round_robin_across_members(rig: BotRig) -> None:
    """One member's burst waits behind another member's single request; positions shown stay true."""
    emu = rig.discord
    async with rig.running(XAI_MAX_CONCURRENT_JOBS="1"):
        rig.xai.outcomes.append(Outcome(generation_s=3.0))  # long enough for the burst to line up behind it
        burst = []
        for n in range(3):  # one after the other, each accepted before the next (their order is the test's)
            burst.append(await emu.slash("video", {"prompt": f"mine {n}"}))
            await rig.wait_for_answer(burst[-1], "job #")
        await rig.wait_for_answer(burst[2], "position 2")
        theirs = await emu.slash("video", {"prompt": "theirs"}, user_id=emu.other_user_id)
        await rig.wait_for_answer(theirs, "position 1")
        for inter in [*burst, theirs]:
            await rig.wait_for_answer(inter, "Done", timeout=30)
    submitted = [r.body["prompt"] for r in rig.xai.requests if r.method == "POST"]
    assert submitted == ["mine 0", "theirs", "mine 1", "mine 2"]


# -- /videoadmin ---------------------------------------------------------------------------------


async def test_members_without_manage_server_are_refused_in_code(rig: BotRig) -> None:
    """Even when a server opens the commands to everyone, the bot checks the permission itself."""
    emu = rig.discord
    emu.open_to_everyone.update({"videoadmin", "usage"})
    async with rig.running():
        ban = await emu.slash("videoadmin", {"member": ("user", emu.other_user_id)}, subcommand="ban")
        usage = await emu.slash("usage", {})
        await emu.wait_for(lambda: ban.acked and usage.acked)
        banned = await rig.bot.runtime.store.servers.banned_users(emu.guild_id) if rig.bot else None
    for inter in (ban, usage):
        assert "Manage Server" in rig.answer_to(inter) or "Manage Server" in str(inter.ack_payload)
    assert banned == []


async def test_admin_commands_show_and_set_everything(rig: BotRig) -> None:
    emu = rig.discord
    emu.set_user_permissions(emu.guild_id, emu.user_id, MANAGE_SERVER)
    elsewhere = emu.add_channel(emu.guild_id, "elsewhere")

    async def admin(subcommand: str, **options: object) -> str:
        inter = await emu.slash("videoadmin", options, subcommand=subcommand)
        return text_of(await reply(rig, inter))

    async with rig.running(LIMIT_USER_VIDEOS="5", LIMIT_USER_ACTIVE_JOBS="2"):
        shown = await admin("show")
        assert "videos: 5 per hour" in shown and "every channel" in shown and "nobody" in shown
        limits = await admin("limits", member_videos=3, window_minutes=120, member_active=0, server_dollars_per_day=2.5)
        assert "videos: 3 per 2 hours\nat once: no limit" in limits and "spend: $2.50" in limits
        bad = await admin("defaults", duration=12, max_duration=6)
        assert "Nothing was changed" in bad
        defaults = await admin("defaults", duration=4, max_duration=6, resolution="720p", edit=False)
        assert "longest: 6 s" in defaults and "default length: 4 s" in defaults and "editing" not in defaults

        # Defaults and caps apply to members' requests.
        job = await rig.job(await make_video(rig, "with defaults", user_id=emu.other_user_id, duration=None))
        assert (job.options.duration, job.options.resolution) == (4, "720p")
        too_long = await refused(rig, "long", user_id=emu.other_user_id, duration=9)
        assert "longest video allowed here is 6 s" in too_long

        ban = await admin("ban", member=("user", emu.other_user_id), reason="spam")
        assert "can no longer make videos" in ban
        assert "blocked you" in await refused(rig, "let me", user_id=emu.other_user_id)
        assert "can make videos again" in await admin("unban", member=("user", emu.other_user_id))

        restricted = await admin("channels", action="allow", channel=("channel", elsewhere))
        assert f"<#{elsewhere}>" in restricted
        assert f"<#{elsewhere}>" in await refused(rig, "here?", user_id=emu.other_user_id)
        inter = await emu.slash("video", {"prompt": "there", "duration": 3}, channel_id=elsewhere)
        await rig.wait_for_answer(inter, "Done")

        assert "every channel" in await admin("channels", action="everywhere")
        reset = await admin("reset")
        assert "videos: 5 per hour\nat once: 2" in reset and "longest: 15 s" in reset


async def test_settings_survive_a_restart(rig: BotRig) -> None:
    emu = rig.discord
    emu.set_user_permissions(emu.guild_id, emu.user_id, MANAGE_SERVER)
    async with rig.running():
        inter = await emu.slash("videoadmin", {"member_videos": 7}, subcommand="limits")
        await reply(rig, inter)
    async with rig.running():
        inter = await emu.slash("videoadmin", {}, subcommand="show")
        assert "videos: 7 per hour" in text_of(await reply(rig, inter))


# -- /quota ----------------------------------------------------------------------------------


async def test_quota_says_what_is_left_and_when_it_resets(rig: BotRig) -> None:
    async with rig.running(LIMIT_USER_VIDEOS="3", LIMIT_USER_ACTIVE_JOBS="2", LIMIT_SERVER_VIDEOS_PER_DAY="10"):
        fresh = text_of(await reply(rig, await rig.discord.slash("quota", {})))
        first = await rig.job(await make_video(rig, "one"))
        after = text_of(await reply(rig, await rig.discord.slash("quota", {})))
    assert "**3** of your 3 videos per hour left" in fresh and "<t:" not in fresh
    assert "**2** of your 3 videos per hour left" in after
    assert f"<t:{int(first.counts_from + HOUR) + 1}:R>" in after
    assert "1 of 10 videos in the last 24 hours" in after


async def test_a_refused_request_stores_nothing_and_sends_nothing(rig: BotRig) -> None:
    async with rig.running(LIMIT_USER_VIDEOS="1"):
        await make_video(rig, "one")
        await refused(rig, "two")
        jobs = await rig.bot.runtime.store.jobs.of_user(rig.discord.user_id) if rig.bot else []
    assert [job.status for job in jobs] == [JobStatus.DELIVERED]


async def test_again_counts_against_whoever_clicks(rig: BotRig) -> None:
    """The Again button makes a new job for the person who clicked, under their own limits."""
    emu = rig.discord
    async with rig.running(LIMIT_USER_VIDEOS="1"):
        job_id = await make_video(rig, "a kite")
        posted = await rig.delivered_video()
        mine = await emu.click(posted.id, f"gv:again:{job_id}")
        theirs = await emu.click(posted.id, f"gv:again:{job_id}", user_id=emu.other_user_id)
        refusal = await rig.wait_for_answer(mine, "⛔")
        await rig.wait_for_answer(theirs, "Done")
    assert "limit here is 1" in refusal
