"""Notices: telling the requester that a job ended without a video, once, where they will see it.

While the status message can be edited the quick way, the reason goes there. Otherwise (a restart,
a dead token) it goes to the channel with a mention, else by DM, unless an earlier run already said
it and stopped before recording that; then the status message gets a short ending that points there.
"""

from __future__ import annotations

import logging

import discord

from services.delivery import history
from services.delivery.board import StatusBoard
from services.delivery.places import channel_of, mention_of, nonce, reply_reference, send_dm
from services.delivery.status_texts import ended_text
from services.jobs.listener import DeliveryError
from services.jobs.models import Job
from services.jobs.wording import failure_text

log = logging.getLogger(__name__)


class Notices:
    def __init__(self, client: discord.Client, board: StatusBoard) -> None:
        self.client = client
        self.board = board

    async def on_finished_without_video(self, job: Job) -> None:
        text = failure_text(job)
        live = self.board.is_live(job.id)
        if await self.board.finish(job.id, text):
            return
        # The token is gone (restart or a long job): tell the requester with the bot's own messages,
        # unless an earlier run already did and crashed before recording it; then the status message.
        where = await self._where_told(job, text) if not live else None
        if where is not None:
            log.info("Job %d: the requester was already told how it ended (%s)", job.id, where)
        else:
            where = await self._tell_failure(job, text)
        if where != "status":
            await self.board.settle(job, ended_text(job, where))

    async def _tell_failure(self, job: Job, text: str) -> str | None:
        """A failure in the channel, mentioning the requester, else by DM; where it went (None: nowhere)."""
        content = f"<@{job.origin.user_id}> {text}"
        try:
            await channel_of(self.client, job).send(
                content, reference=reply_reference(job), allowed_mentions=mention_of(job), nonce=nonce(job, "f")
            )
            return "channel"
        except discord.DiscordServerError:
            raise  # Discord is having trouble: the scheduler tries again shortly, and at the next start
        except discord.HTTPException as error:
            if (where := await self._where_told(job, text)) is not None:
                return where  # an earlier try landed though its answer was lost; a DM would say it twice
            log.info("Job %d: could not post the failure in the channel (%s); trying a DM", job.id, error.status)
            try:
                await send_dm(self.client, job, text, file=None)
            except DeliveryError as problem:
                if not problem.permanent:
                    raise
                log.warning("Job %d: nobody could be told how it ended (channel and DM closed)", job.id)
                return None
            return "dm"

    async def _where_told(self, job: Job, text: str) -> str | None:
        """Where ``text`` was already told: "status" (the status message shows it), "channel" or "dm"."""
        channel = channel_of(self.client, job)
        if job.status_message_id is not None:
            try:
                status = await channel.fetch_message(job.status_message_id)
            except discord.HTTPException:
                pass
            else:
                if text in status.content:
                    return "status"
        since = job.updated_at - history.CLOCK_SKEW_S
        for method, place in await history.places(self.client, job):
            if await history.search(self.client, place, since, lambda m: text in m.content) is not None:
                return method
        return None
