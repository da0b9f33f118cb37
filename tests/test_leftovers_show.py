"""``/show`` is limited per member: each re-post is a whole upload, so a loop of them is refused in words, with the
moment the next one is possible; what posted nothing does not count."""

from __future__ import annotations

import time

from cogs.show import ShowCog
from services.policy.reposts import REPOST_WINDOW_S, REPOSTS_PER_WINDOW
from tests.harness import BotRig
from tests.mediafactory import make_mp4
from tests.test_extend_e2e import first_video
from tests.test_show_e2e import show


async def test_show_is_limited_per_member_and_says_when_to_try_again(rig: BotRig) -> None:
    rig.xai.output_video = make_mp4(3.0)
    emu = rig.discord
    now = [time.time()]
    async with rig.running() as bot:
        cog: ShowCog = bot.get_cog("ShowCog")  # type: ignore[assignment]  # the extension's own copy of the class
        cog.reposts.clock = cog.reposts.monotonic = lambda: now[0]
        posted, first = await first_video(rig, "a lighthouse at dusk")

        def reposts() -> int:
            return len([m for m in emu.messages.values() if m.id != posted.id and m.attachments])

        missing = await show(rig, 999_999, user_id=emu.other_user_id)  # refused: no upload, so not counted
        started, allowed = now[0], []
        for _ in range(REPOSTS_PER_WINDOW):
            allowed.append(await show(rig, first.id, user_id=emu.other_user_id))
            now[0] += 1
        refused = await show(rig, first.id, user_id=emu.other_user_id)
        after_refusal = reposts()
        maker = await show(rig, first.id)  # another member has an allowance of their own
        now[0] += REPOST_WINDOW_S
        later = await show(rig, first.id, user_id=emu.other_user_id)
        total = reposts()
    assert "There is no job #999999" in missing
    assert all(f"Posted job #{first.id} again below" in answer for answer in allowed)
    next_at = int(started + REPOST_WINDOW_S) + 1  # when the first re-post leaves the window (rounded up)
    assert refused == (
        f"⛔ You've posted {REPOSTS_PER_WINDOW} videos again with `/show` in the last 10 minutes, the most allowed "
        f"here (each is a whole upload), so I won't post job #{first.id} now. You can post another "
        f"<t:{next_at}:R> (at <t:{next_at}:f>)."
    )
    assert after_refusal == REPOSTS_PER_WINDOW
    assert f"Posted job #{first.id} again below" in maker and f"Posted job #{first.id} again below" in later
    assert total == REPOSTS_PER_WINDOW + 2


async def test_a_wall_clock_stepped_back_neither_locks_a_member_out_nor_names_a_wrong_moment(rig: BotRig) -> None:
    """The machine's clock is stepped back an hour (NTP correcting a clock that ran fast) right after a member used
    up their re-posts: the window still ends ten minutes after them, not an hour and ten, and the refusal names
    that moment in the corrected time."""
    rig.xai.output_video = make_mp4(3.0)
    emu = rig.discord
    wall, steady = [time.time()], [1000.0]
    async with rig.running() as bot:
        cog: ShowCog = bot.get_cog("ShowCog")  # type: ignore[assignment]  # the extension's own copy of the class
        cog.reposts.clock = lambda: wall[0]
        cog.reposts.monotonic = lambda: steady[0]
        _, first = await first_video(rig, "a lighthouse at dusk")
        for _ in range(REPOSTS_PER_WINDOW):
            await show(rig, first.id, user_id=emu.other_user_id)
        wall[0] -= 3600  # stepped back
        steady[0] += 60
        refused = await show(rig, first.id, user_id=emu.other_user_id)
        wall[0] += REPOST_WINDOW_S - 60
        steady[0] += REPOST_WINDOW_S - 60
        later = await show(rig, first.id, user_id=emu.other_user_id)
    next_at = int(wall[0]) + 1  # ten minutes after the first re-post, in the corrected time (rounded up)
    assert refused.endswith(f"You can post another <t:{next_at}:R> (at <t:{next_at}:f>).")
    assert f"Posted job #{first.id} again below" in later
