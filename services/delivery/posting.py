"""The posting chain: a finished video goes to the channel it was asked in, else the command's own
reply while its token lasts, else a DM, each fitted to what that destination accepts.

Posting again must never show a video twice, so a retry (or a job resumed after a restart) first
looks for an earlier post of it, and an error after which the post turns out to be there counts as
delivered.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import discord

from services.delivery import history
from services.delivery.board import StatusBoard
from services.delivery.places import (
    DEFAULT_UPLOAD_LIMIT,
    channel_of,
    mention_of,
    nonce,
    or_missing,
    reply_reference,
    send_dm,
    upload_limit,
    video_filename,
)
from services.jobs.listener import DeliveryReceipt
from services.jobs.models import Job
from services.jobs.wording import result_caption, safe_echo
from services.media.fitting import discard_shrunk_copies, fit, fit_either

log = logging.getLogger(__name__)

ResultView = Callable[[Job], discord.ui.View | None]  # the buttons under a delivered video


@dataclass(frozen=True, slots=True)
class _Post:
    """What every destination is sent for one video: the caption, the prompt, the buttons."""

    content: str
    embed: discord.Embed
    view: discord.ui.View | None


class PostingChain:
    """Delivers each finished video once, to the first destination that takes it."""

    def __init__(self, client: discord.Client, board: StatusBoard, *, result_view: ResultView) -> None:
        self.client = client
        self.board = board
        self.result_view = result_view
        self._attempted: set[int] = set()  # jobs whose upload was tried in this run and not confirmed

    async def deliver(self, job: Job, video: Path) -> DeliveryReceipt:
        try:
            return await self._deliver(job, video)
        finally:
            # A shrunk copy has served once the post that carried it is settled (a retry shrinks again);
            # the original stays, for the buttons and for retention to decide.
            await discard_shrunk_copies(job, video)

    async def _deliver(self, job: Job, video: Path) -> DeliveryReceipt:
        if job.id in self._attempted or not self.board.tracks(job.id):
            # A retry, or a job resumed after a restart: an earlier attempt may have reached Discord even
            # though nobody heard the answer. Discord's nonce only dedupes for a few minutes; look first.
            found = await self._find_posted_video(job)
            if found is not None:
                log.info("Job %d: the video was already posted (%s); not posting again", job.id, found.method)
                await self.board.show_done(job, found)
                return found
        self._attempted.add(job.id)
        limit = upload_limit(self.client, job)
        upload = await fit(job, video, limit)
        took = (job.finished_at or time.time()) - job.created_at
        post = _Post(
            content=f"<@{job.origin.user_id}> {result_caption(job, took_s=took)}",
            embed=video_embed(job),
            view=self.result_view(job),
        )
        try:
            try:
                message = await self._send_to_channel(job, post, upload, limit)
                receipt = DeliveryReceipt("channel", message.channel.id, message.id)
            except discord.Forbidden:
                log.info("Job %d: no permission to post in channel %s; falling back", job.id, job.origin.channel_id)
                receipt = await self._deliver_elsewhere(job, post, video, upload)
        except Exception:
            # An earlier try may have landed although its answer was lost (a reset, a 5xx after the fact):
            # a video that is in the channel must never be reported as failed, nor posted again.
            found = await self._find_posted_video(job)
            if found is None:
                raise
            log.info("Job %d: the answer was lost, but the video is there (%s)", job.id, found.method)
            receipt = found
        self._attempted.discard(job.id)
        await self.board.show_done(job, receipt)
        return receipt

    async def _send_to_channel(self, job: Job, post: _Post, upload: Path, limit: int) -> discord.Message:
        channel = channel_of(self.client, job)
        for attempt in range(2):
            try:
                return await channel.send(
                    post.content,
                    embed=post.embed,
                    file=discord.File(upload, filename=video_filename(job)),
                    reference=reply_reference(job),
                    allowed_mentions=mention_of(job),
                    nonce=nonce(job, "v"),
                    view=or_missing(post.view),
                )
            except discord.HTTPException as error:
                if error.status != 413 or attempt:
                    raise
                # Discord's limit turned out smaller than we thought: squeeze once more.
                log.warning("Job %d: upload refused as too large; re-encoding smaller", job.id)
                upload = await fit(job, upload, int(min(limit, upload.stat().st_size) * 0.7))
        raise AssertionError("unreachable")

    async def _deliver_elsewhere(self, job: Job, post: _Post, video: Path, upload: Path) -> DeliveryReceipt:
        """The channel is closed to the bot: the command's own reply while it lasts, else a DM.

        Each way takes only what it is known to take: a followup what the interaction says
        (``attachment_size_limit``), a DM 10 MiB. A copy fitted for the channel is reused when it is
        small enough; otherwise the original is fitted again (shrink or explain, as for a channel).
        """
        interaction = self.board.interaction(job.id)
        if interaction is not None:
            limit = min(interaction.filesize_limit, upload_limit(self.client, job))
            followup_file = await fit_either(job, video, upload, limit, where="post here")
            try:
                message = await interaction.followup.send(
                    post.content,
                    embed=post.embed,
                    file=discord.File(followup_file, filename=video_filename(job)),
                    allowed_mentions=mention_of(job),
                    wait=True,
                    view=or_missing(post.view),
                )
                return DeliveryReceipt("followup", message.channel.id, message.id)
            except discord.HTTPException as error:
                log.info("Job %d: followup failed (%s); trying a DM", job.id, error.status)
        dm_file = await fit_either(job, video, upload, DEFAULT_UPLOAD_LIMIT, where="send by DM")
        return await send_dm(self.client, job, post.content, file=dm_file, embed=post.embed)

    async def _find_posted_video(self, job: Job) -> DeliveryReceipt | None:
        """The bot's own message carrying this job's MP4, in the channel (or followup) or the DM, if any."""
        name = video_filename(job)
        since = (job.downloaded_at or job.created_at) - history.CLOCK_SKEW_S
        for method, channel in await history.places(self.client, job):
            found = await history.search(
                self.client, channel, since, lambda m: any(a.filename == name for a in m.attachments)
            )
            if found is not None:
                if method == "channel" and found.webhook_id is not None:
                    method = "followup"
                return DeliveryReceipt(method, found.channel.id, found.id)
        return None


def video_embed(job: Job) -> discord.Embed:
    prompt = safe_echo(job.prompt) if job.prompt else "*(no prompt)*"
    if job.forgotten_at is not None:  # forgotten while it was being made: the prompt is not echoed any more
        prompt = "*(prompt forgotten at a moderator's request)*"
    return discord.Embed(description=prompt, colour=discord.Colour.blurple())
