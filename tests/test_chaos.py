"""Chaos: 50 jobs through a real ``python bot.py`` that is SIGKILLed again and again while both emulators misbehave.

What it proves, from the emulators' own records: every accepted job ends either with exactly one message
carrying its MP4 (channel, followup or DM) or with exactly one message telling the requester why not, never
both, never two; and xAI received at most one submit per job. Each kill strikes when the bot has done a few
more of one kind of work (submits, polls, uploads, requests accepted as jobs), and faults come with chosen requests,
all drawn from one seed, so a run's kill moments and faults replay from its printed seed:
``CHAOS_SEED=<seed> pytest -s tests/test_chaos.py`` (the exact interleaving of the two processes still varies).
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
from pathlib import Path

from services.jobs.models import Job, JobStatus
from services.jobs.wording import failure_text
from services.store.store import Store
from tests.botprocess import BotProcess, jobs_now
from tests.emulators.discord_emulator import DiscordEmulator, InteractionRecord, MessageRecord
from tests.emulators.xai_emulator import Outcome, XaiEmulator
from tests.mediafactory import make_image, make_mp4

JOBS = 50
KILLS = 6
KILL_CUES = ("submit", "poll", "upload", "accept")
MAX_STEPS = 5  # a kill strikes after 1 to MAX_STEPS more of its cue
LEAD = 6  # requests sent past a kill's cue work before the injector waits for the kill (see _held_back)
ACTIVE = ("queued", "submitting", "running", "downloading", "delivering")
SUBMIT_PATHS = ("/v1/videos/generations", "/v1/videos/edits")
FAILURE_ENDINGS = (JobStatus.FAILED, JobStatus.MODERATED, JobStatus.EXPIRED)


def _tag(n: int) -> str:
    return f"chaos-{n:02d}-"


def _outcome(rng: random.Random) -> Outcome:
    roll = rng.random()
    generation = rng.uniform(0.2, 1.5)
    if roll < 0.08:
        return Outcome(kind="failed", generation_s=generation, error_message="the engine broke")
    if roll < 0.14:
        return Outcome(kind=rng.choice(["moderated", "moderated_400"]), generation_s=generation)
    if roll < 0.18:
        return Outcome(generation_s=generation, video=b"\x00\x00\x00\x18ftypmp42 this is not a video")
    return Outcome(generation_s=generation)


def _xai_fault(rng: random.Random, xai: XaiEmulator) -> str:
    poll = r"^/v1/videos/[0-9a-f-]{36}$"
    submit = r"^/v1/videos/(generations|edits)$"
    download = r"^/xai-vidgen-bucket/"
    kinds = ["poll-5xx-burst", "poll-hang", "poll-reset", "poll-broken-json", "submit-5xx", "submit-hang", "download"]
    kind = rng.choice(kinds)
    if kind == "poll-5xx-burst":
        xai.fail_requests("GET", poll, status=rng.choice([500, 502, 503]), times=rng.randint(2, 6))
    elif kind == "poll-hang":
        xai.fail_requests("GET", poll, hang_s=3.0, times=1)
    elif kind == "poll-reset":
        xai.fail_requests("GET", poll, reset=True, times=rng.randint(1, 3))
    elif kind == "poll-broken-json":
        xai.fail_requests("GET", poll, status=200, body='{"status": "done", "video": {"url": ', times=2)
    elif kind == "download":
        xai.fail_requests("GET", download, status=503, reset=rng.random() < 0.5, hang_s=rng.choice([None, 1.0]))
    elif kind == "submit-5xx":
        xai.fail_requests("POST", submit, status=503)
    else:
        xai.fail_requests("POST", submit, hang_s=3.0)
    return f"xai:{kind}"


def _discord_fault(rng: random.Random, emu: DiscordEmulator) -> str:
    posts = r"/channels/\d+/messages$"
    kind = rng.choice(["post-5xx", "post-429", "post-413", "post-lost", "post-lost-reset", "edit-5xx"])
    if kind == "post-5xx":
        emu.fail_next("POST", posts, rng.choice([500, 502, 503]), times=rng.randint(1, 2))
    elif kind == "post-429":
        emu.fail_next("POST", posts, 429, retry_after=rng.uniform(0.5, 3.0))
    elif kind == "post-413":
        emu.fail_next("POST", posts, 413, code=40005, message="Request entity too large")
    elif kind == "post-lost":
        emu.lose_next_answer("POST", posts)
    elif kind == "post-lost-reset":
        emu.lose_next_answer("POST", posts, reset=True)
    else:
        emu.fail_next("PATCH", r"/webhooks/\d+/[^/]+/messages/@original$", 500, times=2)
    return f"discord:{kind}"


def _kill_plan(rng: random.Random) -> list[tuple[int, str, int]]:
    """When each kill strikes, as moments of the bot's work, never as spans of wall-clock time: once request
    ``n`` has been sent, after the bot has done ``steps`` more of one thing (all three chosen by the seed)."""
    armed_at = sorted(rng.sample(range(JOBS - MAX_STEPS - LEAD), KILLS))  # each with requests left to cue it
    return [(n, rng.choice(KILL_CUES), rng.randint(1, MAX_STEPS)) for n in armed_at]


def _held_back(n: int, plan: list[tuple[int, str, int]], struck: int) -> bool:
    """Whether request ``n`` must wait for the next kill: no more than ``steps + LEAD`` requests go out past the
    one a kill is armed at before it strikes, so its cue has work to come from however fast either side runs
    (a fast injector no longer sends everything before a slow restart is done and leaves the cue nothing)."""
    if struck >= len(plan):
        return False
    armed_at, _, steps = plan[struck]
    return n > armed_at + steps + LEAD


def _work_done(cue: str, emu: DiscordEmulator, xai: XaiEmulator, injected: dict[int, InteractionRecord]) -> int:
    """How much of one kind of work the bot has done so far, as the emulators recorded it."""
    if cue == "submit":
        return sum(1 for r in xai.requests if r.method == "POST" and r.path in SUBMIT_PATHS)
    if cue == "poll":
        return sum(1 for r in xai.requests if r.method == "GET" and r.path.startswith("/v1/videos/"))
    if cue == "upload":
        return len(emu.requests_matching("POST", r"/channels/\d+/messages$"))
    return sum(1 for interaction in injected.values() if "(job #" in _answer(emu, interaction))  # "accept"


async def test_fifty_jobs_survive_kills_and_faults(tmp_path: Path) -> None:
    seed = int(os.environ.get("CHAOS_SEED") or random.SystemRandom().randrange(2**32))
    print(f"chaos seed: {seed} (rerun with CHAOS_SEED={seed})")
    rng = random.Random(seed)
    plan = _kill_plan(rng)
    image = make_image("PNG", width=64, height=48)
    async with DiscordEmulator() as emu, XaiEmulator(generation_s=0.5, output_video=make_mp4(1.0, noise=True)) as xai:
        channels = [emu.channel_id, emu.add_channel(emu.guild_id, "videos"), emu.add_channel(emu.guild_id, "more")]
        requests = []
        for n in range(JOBS):
            xai.prompt_outcomes[_tag(n)] = _outcome(rng)
            options: dict[str, object] = {"prompt": f"{_tag(n)} a paper boat on a rainy street"}
            if rng.random() < 0.2:
                options["image"] = emu.add_attachment(image, f"still-{n}.png")
            else:
                options["duration"] = rng.randint(1, 5)
            fault = rng.random() < 0.6
            requests.append((options, rng.choice(channels), fault, rng.random()))
        # Discord dedupes a nonce for "a few minutes": longer than discord.py's own retries of one request (a
        # lost answer, then a 429: seconds here). In this compressed run, ten seconds: past that, only the bot's
        # own look at the channel keeps an upload resumed after a kill from posting twice
        # (tests/test_crash_safety.py kills past the window on purpose).
        emu.nonce_window_s = 10.0
        bot = BotProcess(emu, xai, tmp_path, overrides={"XAI_JOB_TIMEOUT_SECONDS": "120"})
        events: list[str] = []
        injected: dict[int, InteractionRecord] = {}
        kills: list[tuple[int, int]] = []  # (exit status of the killed process, jobs it had in flight)
        all_injected = asyncio.Event()
        waiting = asyncio.Event()  # the injector is holding back until the next kill has struck
        try:
            await bot.start()

            async def inject() -> None:
                """One /video after another, each once the previous was answered, with faults on cue."""
                for n, (options, channel, fault, which) in enumerate(requests):
                    waiting.clear()
                    while _held_back(n, plan, len(kills)):
                        waiting.set()  # the kill may strike on an idle bot now: nothing more comes until it has
                        await asyncio.sleep(0.05)
                    waiting.clear()
                    await emu.wait_for(lambda: bot.alive and bool(emu.gateway.connected_sessions()), 60)
                    if fault:
                        events.append(_xai_fault(rng, xai) if which < 0.5 else _discord_fault(rng, emu))
                    run = bot.runs
                    injected[n] = interaction = await emu.slash("video", options, channel_id=channel)

                    def answered(i: InteractionRecord = interaction, run: int = run) -> bool:
                        return "(job #" in _answer(emu, i) or bot.runs != run or not bot.alive  # or lost to a kill

                    await emu.wait_for(answered, 60)
                all_injected.set()

            async def idle() -> bool:
                """Nothing more will be sent before this kill and nothing is left in flight: the cue may never
                come, so strike now."""
                if not (all_injected.is_set() or waiting.is_set()):
                    return False
                return not any(row["status"] in ACTIVE for row in await jobs_now(bot.database_path))

            async def kill_on_cue() -> None:
                for k, (armed_at, cue, steps) in enumerate(plan):
                    while len(injected) <= armed_at and not all_injected.is_set():
                        await asyncio.sleep(0.05)
                    target = _work_done(cue, emu, xai, injected) + steps
                    while _work_done(cue, emu, xai, injected) < target and not await idle():
                        await asyncio.sleep(0.05)
                    await bot.kill()
                    assert bot.process is not None and bot.process.returncode is not None
                    # Read after the kill: the dead process's database holds exactly what it had in flight.
                    in_flight = sum(1 for row in await jobs_now(bot.database_path) if row["status"] in ACTIVE)
                    kills.append((bot.process.returncode, in_flight))
                    events.append(f"kill {k + 1} after request {armed_at}, {steps} more {cue}: {in_flight} in flight")
                    await bot.start()

            await asyncio.wait_for(asyncio.gather(inject(), kill_on_cue()), 240)
            await _wait_until_settled(bot, timeout=120)
            status = await bot.terminate(timeout=10)
            assert status == 0, f"SIGTERM exit status {status}; log:\n{bot.log()}"
        except BaseException:
            await bot.stop_quietly()
            print("\n".join(events))
            print(bot.all_logs()[-20000:])
            raise

        async with await Store.open(bot.database_path) as store:
            jobs = await store.jobs.with_status(JobStatus)
        try:
            report = _check(emu, xai, jobs, injected)
        except AssertionError:
            print("\n".join(events))
            print(bot.all_logs()[-60000:])
            raise
        report["kills"] = sum(1 for status, _ in kills if status == -signal.SIGKILL)
        report["kills_with_jobs_in_flight"] = sum(1 for _, in_flight in kills if in_flight)
        print(f"seed {seed}: {report}; events: {len(events)}")
        print("\n".join(events))
        assert report["kills"] == KILLS, kills  # each kill struck a running bot, which died of it
        assert report["kills_with_jobs_in_flight"] >= KILLS // 2, kills  # and most struck it mid-work


async def _wait_until_settled(bot: BotProcess, *, timeout: float) -> None:
    """Every job terminal, and every job that ended without a video has been told about (notified)."""

    async def settled() -> bool:
        rows = await jobs_now(bot.database_path)
        return bool(rows) and all(
            row["status"] in ("delivered", "cancelled") or (row["status"] in FAILURE_ENDINGS and row["notified_at"])
            for row in rows
        )

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await settled():
        if loop.time() > deadline:
            rows = await jobs_now(bot.database_path)
            stuck = [(r["id"], r["status"], r["notified_at"]) for r in rows if r["status"] not in ("delivered",)]
            raise AssertionError(f"jobs never settled: {stuck}")
        assert bot.alive, f"the bot died on its own; log:\n{bot.log()}"
        await asyncio.sleep(0.25)


def _check(
    emu: DiscordEmulator, xai: XaiEmulator, jobs: list[Job], injected: dict[int, InteractionRecord]
) -> dict[str, int]:
    """Each job against what Discord and xAI recorded; returns counts for the log line."""
    bot_messages = [m for m in emu.world.messages.values() if m.author_id == emu.bot_user_id]
    by_status_message = {job.status_message_id: job for job in jobs}
    unaccepted = [i for i in injected.values() if i.original_message_id not in by_status_message]
    problems: list[str] = []
    counts = {"jobs": len(jobs), "delivered": 0, "failed_told": 0, "unaccepted": len(unaccepted)}
    for job in jobs:
        tag = _tag(int(job.prompt.split("-")[1]))
        videos = [m for m in bot_messages if any(a.filename == f"grok-video-{job.id}.mp4" for a in m.attachments)]
        submits = [r for r in xai.requests if r.method == "POST" and r.path in SUBMIT_PATHS and tag in str(r.body)]
        taken = [r for r in submits if r.status != 429]  # a 429 is xAI turning it away before any work
        if len(taken) > 1:
            answers = ", ".join(f"HTTP {r.status} at {r.time:.3f}" for r in submits)
            problems.append(f"job {job.id}: xAI took {len(taken)} submits ({answers})")
        if job.status is JobStatus.DELIVERED:
            counts["delivered"] += 1
            if len(videos) != 1:
                problems.append(
                    f"job {job.id}: delivered, but {len(videos)} messages carry its video: {_where(videos)}"
                )
            elif videos[0].id != job.delivered_message_id:
                problems.append(f"job {job.id}: recorded message {job.delivered_message_id}, posted {videos[0].id}")
        elif job.status in FAILURE_ENDINGS:
            counts["failed_told"] += 1
            counts[str(job.error_code)] = counts.get(str(job.error_code), 0) + 1
            text = failure_text(job)
            told = [m for m in bot_messages if text in m.content]
            if videos:
                problems.append(f"job {job.id}: {job.status} ({job.error_code}) but posted a video: {_where(videos)}")
            if len(told) != 1:
                problems.append(f"job {job.id}: {job.status} told {len(told)} times: {_where(told)} {text!r}")
        else:
            problems.append(f"job {job.id}: ended {job.status}")
    assert not problems, "\n".join(problems)
    assert counts["jobs"] >= JOBS // 2, counts  # most jobs must have been accepted despite the kills
    return counts


def _answer(emu: DiscordEmulator, interaction: InteractionRecord) -> str:
    message = emu.messages.get(interaction.original_message_id or 0)
    return message.content if message is not None else ""


def _where(messages: list[MessageRecord]) -> list[str]:
    return [
        f"message {m.id} via {m.via} in {m.channel_id} (nonce {m.nonce}, {len(m.versions)} versions)" for m in messages
    ]
