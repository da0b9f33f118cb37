"""``/usage`` over a long history: the CSV is zipped when it is over the upload limit, and when even the zip
is too big the answer says so and how to ask for less; the sums are worked out off the event loop.

The history is written in bulk with plain sqlite3 (as bench/limits.py does), before the bot starts. Rather
than a 17 MB CSV against Discord's 10 MiB, the end-to-end tests give the interaction a smaller upload
limit (``attachment_size_limit``, which Discord sends with every interaction); the thread and the
10 MiB case are measured on the service itself, with 100,000 jobs.
"""

from __future__ import annotations

import asyncio
import csv
import io
import random
import sqlite3
import time
import zipfile

import discord

from services.jobs.models import Job, JobStatus, Mode, Origin, VideoOptions
from services.policy.guild_policy import LimitDefaults, default_policy
from services.policy.usage import Period
from services.policy.usage_export import export_usage
from services.store.postgres import PostgresDatabase
from tests.emulators.discord_models import DEFAULT_MEMBER_PERMISSIONS
from tests.harness import BotRig
from tests.test_limits_e2e import reply, text_of

MANAGE_SERVER = DEFAULT_MEMBER_PERMISSIONS | discord.Permissions(manage_guild=True).value
MIB = 1024 * 1024
PROMPT = "a red fox running through the snow at dawn, mountains behind it"


async def _history(rig: BotRig, count: int) -> None:
    """``count`` finished jobs of this server over the past year, by a few hundred members."""
    rng = random.Random(7)
    now = time.time()
    rows = []
    for n in range(count):
        created = now - rng.uniform(0, 365 * 86400)
        status = rng.choice(("delivered",) * 8 + ("failed", "moderated"))
        rows.append(
            (
                created,
                created + 60,
                rig.discord.guild_id,
                rig.discord.channel_id,
                1000 + n % 300,
                "text",
                f"{PROMPT} #{n}",
                8,
                "480p",
                status,
                None if status == "failed" else 4_000_000_000,
                status != "failed",
                created + 60,  # told how it ended, long ago
            )
        )
    insert = """
        INSERT INTO jobs (created_at, updated_at, guild_id, channel_id, user_id, mode, prompt, duration,
                          resolution, status, cost_usd_ticks, charged, notified_at)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
        """
    async with await rig.open_store() as store:  # the schema, and on PostgreSQL the rows (TEST_ENGINE)
        if isinstance(store.database, PostgresDatabase):
            await store.database.execute_many(insert, rows)
    if rig.database_url is None:
        with sqlite3.connect(rig.database_path) as db:
            db.executemany(insert, rows)
    rig.discord.set_user_permissions(rig.discord.guild_id, rig.discord.user_id, MANAGE_SERVER)


async def test_a_csv_over_the_upload_limit_is_attached_zipped(rig: BotRig) -> None:
    """20,000 jobs make a CSV of about 3 MB; with 1 MiB allowed it comes zipped, whole, and the answer says so."""
    await _history(rig, 20_000)
    async with rig.running():
        answer = await reply(rig, await rig.discord.slash("usage", {"period": "all"}, attachment_size_limit=MIB))
    names = [a.filename for a in answer.attachments]
    assert "usage-all.zip" in names and "usage-all.csv" not in names and "usage-all.png" in names
    packed = answer.attachment("usage-all.zip").data
    assert len(packed) <= MIB
    with zipfile.ZipFile(io.BytesIO(packed)) as archive:
        assert archive.namelist() == ["usage-all.csv"]
        table = archive.read("usage-all.csv")
    assert len(table) > MIB
    rows = list(csv.DictReader(io.StringIO(table.decode())))
    assert len(rows) == 20_000 and rows[0]["prompt"].startswith(PROMPT)
    assert "attached zipped" in answer.content and "**20000** jobs" in text_of(answer)


async def test_a_csv_too_big_even_zipped_is_left_out_and_the_answer_says_how_to_get_one(rig: BotRig) -> None:
    """With only 64 KiB allowed, even the zip is too big: no CSV, the totals, and a shorter period or one member."""
    await _history(rig, 20_000)
    async with rig.running():
        answer = await reply(rig, await rig.discord.slash("usage", {"period": "all"}, attachment_size_limit=64 * 1024))
    names = [a.filename for a in answer.attachments]
    assert not [name for name in names if name.endswith((".csv", ".zip"))], names
    assert "too large to attach, even zipped" in answer.content
    assert "shorter period" in answer.content and "`user`" in answer.content
    assert "**20000** jobs" in text_of(answer)


def _jobs(count: int) -> list[Job]:
    now = time.time()
    rng = random.Random(3)
    jobs = []
    for n in range(count):
        created = now - rng.uniform(0, 365 * 86400)
        jobs.append(
            Job(
                id=n + 1,
                mode=Mode.TEXT,
                prompt=f"{PROMPT} #{n}",
                options=VideoOptions(duration=8, resolution="480p"),
                origin=Origin(guild_id=1, channel_id=10, user_id=1 + n % 1000),
                status=JobStatus.DELIVERED,
                created_at=created,
                updated_at=created + 60,
                cost_usd_ticks=4_000_000_000,
                video_duration_s=8.0,
                charged=True,
            )
        )
    return jobs


async def test_the_report_and_csv_of_100k_jobs_leave_the_loop_free_and_fit_ten_mib_zipped() -> None:
    """100,000 jobs: the loop keeps turning while the export is worked out; the 10+ MB CSV fits 10 MiB zipped."""
    jobs = _jobs(100_000)
    policy = default_policy(LimitDefaults())
    exporting = asyncio.create_task(
        export_usage(jobs, policy, Period.ALL, now=time.time(), stem="usage-all", upload_limit=10 * MIB)
    )
    turns_meanwhile = 0

    async def other_work() -> None:
        # Work done on the loop itself would run to its end in one step, before this ever sees it unfinished.
        nonlocal turns_meanwhile
        while not exporting.done():
            turns_meanwhile += 1
            await asyncio.sleep(0)

    await other_work()
    export = await exporting
    assert turns_meanwhile > 10, "the export held the event loop"
    assert export.report.jobs == 100_000
    assert export.zipped and export.table is not None and export.table.filename == "usage-all.zip"
    assert export.csv_bytes > 10 * MIB >= len(export.table.data)
