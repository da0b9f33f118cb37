"""``/usage`` against a known set of jobs: totals, top users, rejections, the CSV and the chart."""

from __future__ import annotations

import csv
import io
import struct
import time
from dataclasses import dataclass

import discord

from services.jobs.models import JobRequest, Mode, Origin, VideoOptions
from tests.emulators.discord_emulator import DiscordEmulator
from tests.emulators.discord_models import DEFAULT_MEMBER_PERMISSIONS
from tests.harness import BotRig
from tests.test_limits_e2e import reply, text_of

MANAGE_SERVER = DEFAULT_MEMBER_PERMISSIONS | discord.Permissions(manage_guild=True).value
TICKS_PER_CENT = 100_000_000
HOUR, DAY = 3600.0, 86400.0


@dataclass
class Past:
    user: int
    mode: Mode
    duration: int
    status: str
    age_s: float
    cents: int | None = None
    seconds: float | None = None
    prompt: str = "a calm sea"
    error_code: str | None = None
    guild: int | None = None
    charged: bool | None = None  # its submit may have reached xAI (None: as a real run would have left it)

    @property
    def was_charged(self) -> bool:
        return self.charged if self.charged is not None else self.status in ("delivered", "moderated")


async def seed(rig: BotRig, jobs: list[Past]) -> None:
    """Write finished jobs straight into the store, as earlier runs of the bot would have left them."""
    now = time.time()
    async with await rig.open_store() as store:
        for past in jobs:
            request = JobRequest(
                mode=past.mode,
                prompt=past.prompt,
                options=VideoOptions(duration=past.duration, resolution="480p"),
                origin=Origin(
                    guild_id=past.guild or rig.discord.guild_id, channel_id=rig.discord.channel_id, user_id=past.user
                ),
            )
            job = await store.jobs.create(request)
            created = now - past.age_s
            await store.database.execute(
                """
                UPDATE jobs SET status = ?, created_at = ?, cost_usd_ticks = ?, video_duration_s = ?, error_code = ?,
                                notified_at = ?, charged = ?
                WHERE id = ?
                """,
                (
                    past.status,
                    created,
                    None if past.cents is None else past.cents * TICKS_PER_CENT,
                    past.seconds,
                    past.error_code,
                    created,
                    past.was_charged,
                    job.id,
                ),
            )


def known_jobs(me: int, them: int) -> list[Past]:
    return [
        Past(me, Mode.TEXT, 8, "delivered", HOUR, cents=40, seconds=8.0),
        Past(me, Mode.IMAGE, 5, "delivered", 2 * HOUR, cents=35, seconds=5.0),
        Past(them, Mode.TEXT, 6, "delivered", 3 * DAY, cents=30, seconds=6.0),
        Past(them, Mode.TEXT, 6, "moderated", HOUR, cents=10, prompt='=HYPERLINK("http://x")'),
        Past(them, Mode.TEXT, 6, "cancelled", 2 * DAY),
        Past(me, Mode.TEXT, 6, "failed", 40 * DAY, error_code="xai_failed"),
        Past(me, Mode.TEXT, 6, "delivered", HOUR, cents=99, seconds=6.0, guild=424242),  # another server
    ]


async def moderator_with_history(rig: BotRig) -> DiscordEmulator:
    """The test user may manage the server, which has the known jobs behind it."""
    emu = rig.discord
    emu.set_user_permissions(emu.guild_id, emu.user_id, MANAGE_SERVER)
    await seed(rig, known_jobs(emu.user_id, emu.other_user_id))
    return emu


async def test_usage_totals_top_users_and_rejections(rig: BotRig) -> None:
    emu = await moderator_with_history(rig)
    async with rig.running():
        week = await reply(rig, await emu.slash("usage", {"period": "7d"}))
        ever = await reply(rig, await emu.slash("usage", {"period": "all"}))
        one = await reply(rig, await emu.slash("usage", {"period": "all", "user": ("user", emu.other_user_id)}))
    shown = text_of(week)
    assert "**5** jobs · **19 s** of video · **$1.15** spent" in shown
    assert "cancelled: 1" in shown and "delivered: 3" in shown and "moderated: 1" in shown
    assert f"<@{emu.user_id}>: 2 jobs · 13 s · $0.75" in shown
    assert f"<@{emu.other_user_id}>: 3 jobs · 6 s · $0.40" in shown
    assert "Blocked by moderation (1)" in shown and "HYPERLINK" in shown
    assert week.ephemeral

    everything = text_of(ever)
    assert "**6** jobs" in everything and "failed: 1" in everything and "xai_failed: 1" in everything
    assert "$0.99" not in everything  # the other server's job is not this server's business

    theirs = text_of(one)
    assert f"**3** jobs by <@{emu.other_user_id}>" in theirs and "$0.40" in theirs and "Top users" not in theirs


async def test_usage_attaches_a_csv_and_a_png_chart(rig: BotRig) -> None:
    emu = await moderator_with_history(rig)
    async with rig.running():
        answer = await reply(rig, await emu.slash("usage", {"period": "30d"}))
    rows = list(csv.DictReader(io.StringIO(answer.attachment("usage-30d.csv").data.decode())))
    assert len(rows) == 5
    assert round(sum(float(row["cost_usd"]) for row in rows), 4) == 1.15
    moderated = next(row for row in rows if row["status"] == "moderated")
    assert moderated["prompt"].startswith("'=HYPERLINK")  # a spreadsheet will not run it
    assert {row["user_id"] for row in rows} == {str(emu.user_id), str(emu.other_user_id)}

    png = answer.attachment("usage-30d.png").data
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and png[12:16] == b"IHDR" and png.endswith(b"IEND\xaeB`\x82")
    width, height = struct.unpack(">II", png[16:24])
    assert (width, height) == (800, 360)
    assert "/usage-30d.png" in answer.embeds[0]["image"]["url"]  # the embed shows the attached chart


async def test_usage_with_nothing_to_show(rig: BotRig) -> None:
    emu = rig.discord
    emu.set_user_permissions(emu.guild_id, emu.user_id, MANAGE_SERVER)
    async with rig.running():
        answer = await reply(rig, await emu.slash("usage", {"period": "today"}))
    assert "No videos were requested" in text_of(answer) and not answer.attachments
