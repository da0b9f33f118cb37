"""The real bot against both emulators: what the end-to-end tests drive.

``BotRig.running()`` builds the bot exactly as ``python bot.py`` does (settings from environment
values, the store, the runtime, the cogs) and connects it to the Discord emulator; the xAI emulator
stands in for api.x.ai. Restarting is leaving one ``running()`` block and entering another.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

from bot import GrokVideoBot
from services.config import Settings, load_settings
from services.jobs.models import Job, JobStatus
from services.runtime import open_sessions
from services.store.store import Store
from tests.emulators.discord_emulator import DiscordEmulator, InteractionRecord, MessageRecord, run_client
from tests.emulators.xai_emulator import XaiEmulator


@dataclass
class BotRig:
    discord: DiscordEmulator
    xai: XaiEmulator
    tmp_path: Path
    bot: GrokVideoBot | None = None
    database_url: str | None = None  # PostgreSQL's (TEST_ENGINE=postgresql), else the SQLite file below

    async def open_store(self) -> Store:
        """The rig's store, opened beside the bot (or without it), on whichever engine the rig runs."""
        return await Store.open(self.database_path, url=self.database_url)

    @property
    def database_path(self) -> Path:
        return self.tmp_path / "data" / "bot.sqlite3"

    def environment(self, **overrides: str) -> dict[str, str]:
        values = {
            "XAI_API_KEY": self.xai.api_key,
            "XAI_BASE_URL": self.xai.base_url,
            "XAI_FIRST_POLL_SECONDS": "0.1",
            "XAI_MAX_POLL_INTERVAL_SECONDS": "0.5",
            "XAI_MAX_REQUESTS_PER_MINUTE": "6000",
            "DISCORD_TOKEN": self.discord.bot_token,
            "DISCORD_API_BASE_URL": self.discord.api_base_url,
            "DISCORD_GATEWAY_URL": self.discord.gateway_url,
            "DEV_GUILD_ID": str(self.discord.guild_id),
            "DATABASE_PATH": str(self.database_path),
            **({"DATABASE_URL": self.database_url} if self.database_url else {}),
            # Most tests make many videos as one person; the limits' own tests set these.
            "LIMIT_USER_VIDEOS": "0",
            "LIMIT_USER_ACTIVE_JOBS": "0",
            "LIMIT_SERVER_VIDEOS_PER_DAY": "0",
            "LIMIT_SERVER_USD_PER_DAY": "0",
            "CONFIRM_ABOVE_USD": "0",  # the Confirm step's own tests (test_confirm_e2e.py) set it
        }
        values.update(overrides)
        return values

    @contextlib.asynccontextmanager
    async def running(
        self,
        *,
        progress_interval_s: float = 0.2,
        adjust: Callable[[Settings], Settings] | None = None,
        **overrides: str,
    ) -> AsyncIterator[GrokVideoBot]:
        """The bot from these environment values; ``adjust`` changes settings no variable reaches (tiny delays)."""
        settings = load_settings(self.environment(**overrides))
        if adjust is not None:
            settings = adjust(settings)
        url = settings.database_url.reveal() if settings.database_url is not None else None
        store = await Store.open(settings.database_path, url=url)
        try:
            async with open_sessions(settings.xai) as sessions:
                bot = GrokVideoBot(
                    settings=settings, store=store, sessions=sessions, progress_interval_s=progress_interval_s
                )
                async with run_client(bot, self.discord):
                    # On PostgreSQL the scheduler runs once this process is elected (alone, it soon is): the
                    # tests start from a bot that schedules, as a bot on SQLite does from the start.
                    await self.discord.wait_for(lambda: bot.runtime.seat.seated, 30)
                    self.bot = bot
                    try:
                        yield bot
                    finally:
                        self.bot = None
        finally:
            await store.close()

    async def job(self, job_id: int) -> Job:
        assert self.bot is not None
        job = await self.bot.runtime.store.jobs.get(job_id)
        assert job is not None
        return job

    async def latest_job(self) -> Job:
        assert self.bot is not None
        jobs = await self.bot.runtime.store.jobs.of_user(self.discord.user_id, limit=1)
        assert jobs, "no job was recorded"
        return jobs[0]

    async def wait_for_job(
        self, predicate: Callable[[Job], bool], job_id: int | None = None, timeout: float = 20
    ) -> Job:
        """Wait until the job (the latest one by default) satisfies ``predicate``."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            assert self.bot is not None
            jobs = (
                [await self.bot.runtime.store.jobs.get(job_id)]
                if job_id
                else await self.bot.runtime.store.jobs.of_user(self.discord.user_id, limit=1)
            )
            job = jobs[0] if jobs else None
            if job is not None and predicate(job):
                return job
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"job never got there; last seen: {job}")
            await asyncio.sleep(0.02)

    async def wait_until_terminal(self, job_id: int | None = None, timeout: float = 20) -> Job:
        return await self.wait_for_job(lambda job: job.status.is_terminal, job_id, timeout)

    def answer_to(self, interaction: InteractionRecord) -> str:
        """What the person currently sees as the bot's answer to an interaction ("" before there is one)."""
        message = self.discord.messages.get(interaction.original_message_id or 0)
        return message.content if message is not None else ""

    async def wait_for_answer(self, interaction: InteractionRecord, text: str, timeout: float = 20) -> str:
        """Wait until the answer to ``interaction`` contains ``text``; return the whole answer."""
        await self.discord.wait_for(lambda: text in self.answer_to(interaction), timeout)
        return self.answer_to(interaction)

    async def delivered_video(self, timeout: float = 20) -> MessageRecord:
        """The channel message that carries an MP4."""
        return await self.discord.wait_for_message(
            lambda m: any(a.filename.endswith(".mp4") for a in m.attachments) and not m.deleted, timeout
        )


def is_status(status: JobStatus) -> Callable[[Job], bool]:
    return lambda job: job.status is status
