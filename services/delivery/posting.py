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
from services.jobs.listener import DeliveryError, DeliveryReceipt
from services.jobs.models import Job
from services.jobs.wording import result_caption, safe_echo
from services.media.fitting import discard_shrunk_copies, fit, fit_either
from services.store.store import Store

log = logging.getLogger(__name__)

ResultView = Callable[[Job], discord.ui.View | None]  # the buttons under a delivered video
LINK_MARGIN_S = 300.0  # xAI's link is posted only while it has at least this long to live
MAX_CONTENT_CHARS = 2000  # Discord's limit for a message's text


@dataclass(frozen=True, slots=True)
class _Post:
    """What every destination is sent for one video: the caption, the prompt, the buttons."""

    content: str
    embed: discord.Embed
    view: discord.ui.View | None


async def with_link(store: Store, job: Job, content: str, too_big: DeliveryError) -> str | None:
    """``content`` and why the video is not attached, with xAI's temporary address of it and its expiry (for a
    delivery, and for /show); None when there is no address, it is about to stop working, or the whole would not
    fit one message."""
    link = await store.jobs.result_link(job.id)
    if link is None or link.expires_at < time.time() + LINK_MARGIN_S:
        return None
    text = (
        f"{content}\n⚠️ {too_big} Watch or download it from xAI instead: {link.url} "
        f"(the link stops working <t:{int(link.expires_at)}:R>)."
    )
    return text if len(text) <= MAX_CONTENT_CHARS else None


class PostingChain:
    """Delivers each finished video once, to the first destination that takes it."""

    def __init__(self, client: discord.Client, board: StatusBoard, *, result_view: ResultView) -> None:
        self.client = client
        self.board = board
        self.result_view = result_view
        self._attempted: set[int] = set()  # jobs whose upload was tried in this run and not confirmed
        self.retries = 0  # deliveries tried again in this run, and tries that failed: read by /metrics
        self.failures = 0

    async def deliver(self, job: Job, video: Path) -> DeliveryReceipt:
        self.retries += job.id in self._attempted
        try:
            return await self._deliver(job, video)
        except Exception:
            self.failures += 1
            raise
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
        took = (job.finished_at or time.time()) - job.created_at
        post = _Post(
            content=f"<@{job.origin.user_id}> {result_caption(job, took_s=took)}{await self._lineage(job)}",
            embed=video_embed(job),
            view=self.result_view(job),
        )
        try:
            upload = await fit(job, video, limit)
        except DeliveryError as too_big:  # it cannot be shrunk enough: xAI's own link, while it lasts
            receipt = await self._post_link(job, post, too_big)
            self._attempted.discard(job.id)
            await self.board.show_done(job, receipt)
            return receipt
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

    async def _lineage(self, job: Job) -> str:
        """The "from #N" line under a follow-up (Again, Edit, Extend, a context menu on a result), linking to the
        video it came from when that was posted; a link never pings."""
        if job.parent_job_id is None:
            return ""
        parent = await self.board.store.jobs.get(job.parent_job_id)
        url = jump_url(parent) if parent is not None else None
        return f"\n↪️ from [#{job.parent_job_id}](<{url}>)" if url else f"\n↪️ from #{job.parent_job_id}"

    async def _post_link(self, job: Job, post: _Post, too_big: DeliveryError) -> DeliveryReceipt:
        """The video is too big to upload anywhere here: post xAI's temporary address of it with its expiry,
        beside the explanation. No address (or one about to stop working): the job fails with the explanation."""
        content = await with_link(self.board.store, job, post.content, too_big)
        if content is None:
            raise too_big
        try:
            message = await channel_of(self.client, job).send(
                content,
                embed=post.embed,
                reference=reply_reference(job),
                allowed_mentions=mention_of(job),
                nonce=nonce(job, "l"),
                view=or_missing(post.view),
            )
        except discord.Forbidden:
            log.info("Job %d: no permission to post the link in channel %s; a DM", job.id, job.origin.channel_id)
            return await send_dm(self.client, job, content, file=None, embed=post.embed)
        log.info("Job %d: too big to upload; posted xAI's link to it instead", job.id)
        return DeliveryReceipt("channel", message.channel.id, message.id)

    async def _find_posted_video(self, job: Job) -> DeliveryReceipt | None:
        """The bot's own message carrying this job's MP4 (or xAI's link to it), in the channel (or followup) or
        the DM, if any."""
        name = video_filename(job)
        link = await self.board.store.jobs.result_link(job.id)
        since = (job.downloaded_at or job.created_at) - history.CLOCK_SKEW_S

        def carries(message: discord.Message) -> bool:
            return any(a.filename == name for a in message.attachments) or (
                link is not None and link.url in message.content
            )

        for method, channel in await history.places(self.client, job):
            found = await history.search(self.client, channel, since, carries)
            if found is not None:
                if method == "channel" and found.webhook_id is not None:
                    method = "followup"
                return DeliveryReceipt(method, found.channel.id, found.id)
        return None


def jump_url(job: Job) -> str | None:
    """The address of the message that carries a job's video (None when it was never posted, or was deleted)."""
    if not job.delivered_message_id or not job.delivered_channel_id or job.deleted_at is not None:
        return None
    place = "@me" if job.delivery_method == "dm" or job.origin.guild_id is None else job.origin.guild_id
    return f"https://discord.com/channels/{place}/{job.delivered_channel_id}/{job.delivered_message_id}"


def video_embed(job: Job) -> discord.Embed:
    prompt = safe_echo(job.prompt) if job.prompt else "*(no prompt)*"
    if job.forgotten_at is not None:  # forgotten while it was being made: the prompt is not echoed any more
        prompt = "*(prompt forgotten at a moderator's request)*"
    return discord.Embed(description=prompt, colour=discord.Colour.blurple())
