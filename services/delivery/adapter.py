"""The Discord delivery adapter: the only service that both knows a job and talks to Discord.

It keeps each requester informed on their status message (edited on changes, at most every
``progress_interval_s``), posts the finished MP4 as a reply in the channel it came from, and falls
back to the interaction followup and then a DM when the channel is closed to the bot. Interaction
tokens stay in memory only (they are secrets, and they die after 15 minutes anyway); everything
after a restart goes through the bot token.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import discord

from services.delivery.status_texts import CANCELLABLE, done_text, ended_text, handover_text
from services.jobs.listener import DeliveryError, DeliveryReceipt
from services.jobs.models import Job, JobStatus
from services.jobs.wording import failure_text, result_caption, safe_echo, status_line
from services.media.fitting import discard_shrunk_copies, fit, fit_either
from services.store.jobstore import JobStore

log = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_UPLOAD_LIMIT = 10 * 1024 * 1024  # what every destination accepts
CLOCK_SKEW_S = 120.0  # our clock against Discord's, when searching history for what an earlier run posted
SEARCH_LIMIT = 300  # messages read per place when looking for an earlier post
TOKEN_SAFETY_MARGIN_S = 90.0  # stop using an interaction token this long before it dies (uploads take time)

ViewFactory = Callable[[Job], discord.ui.View | None]
StatusViewFactory = Callable[[int], discord.ui.View]


@dataclass(slots=True)
class _Tracked:
    """How to reach a job's status message: through its interaction, or as the bot's own message."""

    interaction: discord.Interaction | None = None
    message: discord.Message | None = None  # a status message the bot posted itself (never expires)
    last_text: str = ""
    last_edit_at: float = 0.0
    pending_text: str | None = None
    pending_active: bool = True
    flusher: asyncio.Task[None] | None = None
    handover: asyncio.TimerHandle | None = None
    tasks: set[asyncio.Task[None]] = field(default_factory=set)


class DiscordDelivery:
    """Implements ``JobListener`` for Discord."""

    def __init__(
        self,
        client: discord.Client,
        store: JobStore,
        *,
        progress_interval_s: float = 10.0,
        view_factory: ViewFactory | None = None,
        status_view_factory: StatusViewFactory | None = None,
    ) -> None:
        self.client = client
        self.store = store
        self.progress_interval_s = progress_interval_s
        self.view_factory = view_factory  # buttons under a delivered video
        self.status_view_factory = status_view_factory  # buttons on a status message while the job is alive
        self._tracked: dict[int, _Tracked] = {}
        self._attempted: set[int] = set()  # jobs whose upload was tried in this run and not confirmed

    # -- the cog hands us the interaction once the job is accepted -----------------------------

    def track(self, job_id: int, interaction: discord.Interaction) -> None:
        tracked = _Tracked(interaction=interaction)
        self._tracked[job_id] = tracked
        hand_over_in = (interaction.expires_at - discord.utils.utcnow()).total_seconds() - TOKEN_SAFETY_MARGIN_S
        if hand_over_in > 0:
            loop = asyncio.get_running_loop()
            tracked.handover = loop.call_later(hand_over_in, lambda: self._spawn(tracked, self._hand_over(job_id)))

    def track_message(self, job_id: int, message: discord.Message) -> None:
        """Keep a job's status on a message the bot posted itself (reply trigger): editable at any time."""
        self._tracked[job_id] = _Tracked(message=message)

    async def refresh(self, job_id: int, *, position: int | None = None) -> None:
        """Show the job's current state now (used right after accepting it)."""
        job = await self.store.get(job_id)
        if job is not None and not job.status.is_terminal:
            self._update_status(job_id, status_line(job, position=position), urgent=True, active=True)

    def _usable(self, job_id: int) -> _Tracked | None:
        """The job's interaction, if its token still has comfortable time left."""
        tracked = self._tracked.get(job_id)
        if tracked is None or tracked.interaction is None:
            return tracked
        remaining = (tracked.interaction.expires_at - discord.utils.utcnow()).total_seconds()
        return tracked if remaining > TOKEN_SAFETY_MARGIN_S else None

    async def _hand_over(self, job_id: int) -> None:
        """The token is about to die: leave a last word on the status message, then let go of it.

        The note says where the video will go, and a job that can still be stopped keeps its Cancel
        button: a click is an interaction of its own, with a fresh token. The ending is written later
        with the bot token (``_settle_status``)."""
        tracked = self._usable(job_id) or self._tracked.get(job_id)
        if tracked is None:
            return
        job = await self.store.get(job_id)
        if job is not None and not job.status.is_terminal:
            note = handover_text(job_id, posts_here=self._can_post_in(job))
            await self._edit(tracked, note, job_id=job_id, active=job.status in CANCELLABLE)
        self._forget(job_id)

    def forget(self, job_id: int) -> None:
        """Stop showing progress for a job (it was cancelled from its status message)."""
        self._forget(job_id)

    def _forget(self, job_id: int) -> None:
        tracked = self._tracked.pop(job_id, None)
        if tracked is None:
            return
        if tracked.handover is not None:
            tracked.handover.cancel()
        if tracked.flusher is not None and tracked.flusher is not asyncio.current_task():
            tracked.flusher.cancel()

    # -- JobListener ---------------------------------------------------------------------------

    async def on_queue_changed(self, positions: Mapping[int, int]) -> None:
        for job_id, position in positions.items():
            if self._usable(job_id) is None:
                continue
            job = await self.store.get(job_id)
            if job is not None and job.status is JobStatus.QUEUED:
                self._update_status(job_id, status_line(job, position=position), active=True)

    async def on_status(self, job: Job) -> None:
        if self._usable(job.id) is None:
            return
        elapsed = time.time() - job.created_at
        self._update_status(
            job.id,
            status_line(job, elapsed_s=elapsed),
            urgent=job.status is not JobStatus.RUNNING,
            active=job.status in CANCELLABLE,
        )

    async def on_finished_without_video(self, job: Job) -> None:
        text = failure_text(job)
        tracked = self._usable(job.id)
        self._forget(job.id)
        if tracked is not None and await self._edit(tracked, text, job_id=job.id, active=False):
            return
        # The token is gone (restart or a long job): tell the requester with the bot's own messages,
        # unless an earlier run already did and crashed before recording it; then the status message.
        where = await self._where_told(job, text) if tracked is None else None
        if where is not None:
            log.info("Job %d: the requester was already told how it ended (%s)", job.id, where)
        else:
            where = await self._tell_failure(job, text)
        if where != "status":
            await self._settle_status(job, ended_text(job, where))

    async def _tell_failure(self, job: Job, text: str) -> str | None:
        """A failure in the channel, mentioning the requester, else by DM; where it went (None: nowhere)."""
        content = f"<@{job.origin.user_id}> {text}"
        mention = discord.AllowedMentions(users=[discord.Object(job.origin.user_id or 0)])
        try:
            await self._channel(job).send(
                content, reference=self._reference(job), allowed_mentions=mention, nonce=_nonce(job, "f")
            )
            return "channel"
        except discord.DiscordServerError:
            raise  # Discord is having trouble: the scheduler tries again shortly, and at the next start
        except discord.HTTPException as error:
            if (where := await self._where_told(job, text)) is not None:
                return where  # an earlier try landed though its answer was lost; a DM would say it twice
            log.info("Job %d: could not post the failure in the channel (%s); trying a DM", job.id, error.status)
            try:
                await self._send_dm(job, text, file=None)
            except DeliveryError as problem:
                if not problem.permanent:
                    raise
                log.warning("Job %d: nobody could be told how it ended (channel and DM closed)", job.id)
                return None
            return "dm"

    async def deliver(self, job: Job, video: Path) -> DeliveryReceipt:
        try:
            return await self._deliver(job, video)
        finally:
            # A shrunk copy has served once the post that carried it is settled (a retry shrinks again);
            # the original stays, for the buttons and for retention to decide.
            await discard_shrunk_copies(job, video)

    async def _deliver(self, job: Job, video: Path) -> DeliveryReceipt:
        if job.id in self._attempted or job.id not in self._tracked:
            # A retry, or a job resumed after a restart: an earlier attempt may have reached Discord even
            # though nobody heard the answer. Discord's nonce only dedupes for a few minutes; look first.
            found = await self._find_posted_video(job)
            if found is not None:
                log.info("Job %d: the video was already posted (%s); not posting again", job.id, found.method)
                await self._show_done(job, found)
                return found
        self._attempted.add(job.id)
        limit = self._upload_limit(job)
        upload = await fit(job, video, limit)
        took = (job.finished_at or time.time()) - job.created_at
        content = f"<@{job.origin.user_id}> {result_caption(job, took_s=took)}"
        embed = self._embed(job)
        mention = discord.AllowedMentions(users=[discord.Object(job.origin.user_id or 0)])
        view = self.view_factory(job) if self.view_factory else None
        try:
            try:
                message = await self._send_to_channel(job, content, embed, upload, mention, view, limit)
                receipt = DeliveryReceipt("channel", message.channel.id, message.id)
            except discord.Forbidden:
                log.info("Job %d: no permission to post in channel %s; falling back", job.id, job.origin.channel_id)
                receipt = await self._deliver_elsewhere(job, content, embed, video, upload, mention, view)
        except Exception:
            # An earlier try may have landed although its answer was lost (a reset, a 5xx after the fact):
            # a video that is in the channel must never be reported as failed, nor posted again.
            found = await self._find_posted_video(job)
            if found is None:
                raise
            log.info("Job %d: the answer was lost, but the video is there (%s)", job.id, found.method)
            receipt = found
        self._attempted.discard(job.id)
        await self._show_done(job, receipt)
        return receipt

    async def _show_done(self, job: Job, receipt: DeliveryReceipt) -> None:
        """The status message says where the video went, through the interaction while it lasts."""
        tracked = self._usable(job.id)
        self._forget(job.id)
        done = done_text(job.id, receipt.method)
        if tracked is None or not await self._edit(tracked, done, job_id=job.id, active=False):
            await self._settle_status(job, done)

    # -- delivery paths ------------------------------------------------------------------------

    async def _send_to_channel(
        self,
        job: Job,
        content: str,
        embed: discord.Embed,
        upload: Path,
        mention: discord.AllowedMentions,
        view: discord.ui.View | None,
        limit: int,
    ) -> discord.Message:
        channel = self._channel(job)
        for attempt in range(2):
            try:
                return await channel.send(
                    content,
                    embed=embed,
                    file=discord.File(upload, filename=_video_filename(job)),
                    reference=self._reference(job),
                    allowed_mentions=mention,
                    nonce=_nonce(job, "v"),
                    view=_or_missing(view),
                )
            except discord.HTTPException as error:
                if error.status != 413 or attempt:
                    raise
                # Discord's limit turned out smaller than we thought: squeeze once more.
                log.warning("Job %d: upload refused as too large; re-encoding smaller", job.id)
                upload = await fit(job, upload, int(min(limit, upload.stat().st_size) * 0.7))
        raise AssertionError("unreachable")

    async def _deliver_elsewhere(
        self,
        job: Job,
        content: str,
        embed: discord.Embed,
        video: Path,
        upload: Path,
        mention: discord.AllowedMentions,
        view: discord.ui.View | None,
    ) -> DeliveryReceipt:
        """The channel is closed to the bot: the command's own reply while it lasts, else a DM.

        Each way takes only what it is known to take: a followup what the interaction says
        (``attachment_size_limit``), a DM 10 MiB. A copy fitted for the channel is reused when it is
        small enough; otherwise the original is fitted again (shrink or explain, as for a channel).
        """
        tracked = self._usable(job.id)
        if tracked is not None and tracked.interaction is not None:
            limit = min(tracked.interaction.filesize_limit, self._upload_limit(job))
            followup_file = await fit_either(job, video, upload, limit, where="post here")
            try:
                message = await tracked.interaction.followup.send(
                    content,
                    embed=embed,
                    file=discord.File(followup_file, filename=_video_filename(job)),
                    allowed_mentions=mention,
                    wait=True,
                    view=_or_missing(view),
                )
                return DeliveryReceipt("followup", message.channel.id, message.id)
            except discord.HTTPException as error:
                log.info("Job %d: followup failed (%s); trying a DM", job.id, error.status)
        dm_file = await fit_either(job, video, upload, DEFAULT_UPLOAD_LIMIT, where="send by DM")
        return await self._send_dm(job, content, file=dm_file, embed=embed)

    async def _send_dm(
        self, job: Job, content: str, *, file: Path | None, embed: discord.Embed | None = None
    ) -> DeliveryReceipt:
        if job.origin.user_id is None:
            raise DeliveryError("Nobody to deliver this video to.", permanent=True)
        try:
            user = self.client.get_user(job.origin.user_id) or await self.client.fetch_user(job.origin.user_id)
            attachment = discord.File(file, filename=_video_filename(job)) if file is not None else None
            message = await user.send(
                content, embed=_or_missing(embed), file=_or_missing(attachment), nonce=_nonce(job, "d" if file else "e")
            )
        except discord.HTTPException as error:
            raise DeliveryError(
                "The video was made, but I could not post it in the channel or send it to you in a DM. "
                "Ask a moderator to let the bot post and attach files there.",
                permanent=error.status in (403, 404),
            ) from None
        return DeliveryReceipt("dm", message.channel.id, message.id)

    # -- finding what an earlier run already posted ---------------------------------------------

    async def _find_posted_video(self, job: Job) -> DeliveryReceipt | None:
        """The bot's own message carrying this job's MP4, in the channel (or followup) or the DM, if any."""
        name = _video_filename(job)
        since = (job.downloaded_at or job.created_at) - CLOCK_SKEW_S
        for method, channel in await self._places(job):
            message = await self._search(channel, since, lambda m: any(a.filename == name for a in m.attachments))
            if message is not None:
                if method == "channel" and message.webhook_id is not None:
                    method = "followup"
                return DeliveryReceipt(method, message.channel.id, message.id)
        return None

    async def _where_told(self, job: Job, text: str) -> str | None:
        """Where ``text`` was already told: "status" (the status message shows it), "channel" or "dm"."""
        channel = self._channel(job)
        if job.status_message_id is not None:
            try:
                status = await channel.fetch_message(job.status_message_id)
            except discord.HTTPException:
                pass
            else:
                if text in status.content:
                    return "status"
        since = job.updated_at - CLOCK_SKEW_S
        for method, place in await self._places(job):
            if await self._search(place, since, lambda m: text in m.content) is not None:
                return method
        return None

    async def _places(self, job: Job) -> list[tuple[str, discord.abc.Messageable]]:
        """Where this job's result or failure may have gone: its channel, then the requester's DM."""
        places: list[tuple[str, discord.abc.Messageable]] = [("channel", self._channel(job))]
        if job.origin.user_id is not None:
            try:
                user = self.client.get_user(job.origin.user_id) or await self.client.fetch_user(job.origin.user_id)
                places.append(("dm", await user.create_dm()))
            except discord.HTTPException:
                pass
        return places

    async def _search(
        self, channel: discord.abc.Messageable, since: float, matches: Callable[[discord.Message], bool]
    ) -> discord.Message | None:
        """The bot's first message after ``since`` (unix time) that ``matches``, among the next few hundred."""
        me = self.client.user
        after = datetime.datetime.fromtimestamp(since, tz=datetime.UTC)
        try:
            async for message in channel.history(limit=SEARCH_LIMIT, after=after, oldest_first=True):
                if me is not None and message.author.id == me.id and matches(message):
                    return message
        except discord.HTTPException as error:
            log.info("Could not read a channel's history (%s %s)", error.status, error.code)
        return None

    # -- helpers -------------------------------------------------------------------------------

    def _channel(self, job: Job) -> discord.abc.Messageable:
        channel_id = job.origin.channel_id or 0
        channel = self.client.get_channel(channel_id)
        if isinstance(channel, discord.abc.Messageable):
            return channel
        # Not cached (e.g. resumed before the gateway is ready): REST works with a partial channel.
        return self.client.get_partial_messageable(channel_id, guild_id=job.origin.guild_id)

    def _reference(self, job: Job) -> discord.MessageReference:
        """Reply to the request (the person's message, or else the status message); MISSING for none."""
        target = job.origin.source_message_id or job.status_message_id
        if target is None or job.origin.channel_id is None:
            return _or_missing(None)
        return discord.MessageReference(
            message_id=target,
            channel_id=job.origin.channel_id,
            guild_id=job.origin.guild_id,
            fail_if_not_exists=False,
        )

    def _can_post_in(self, job: Job) -> bool:
        """Whether the bot may post a video in the job's channel now, as far as the cache knows (else yes)."""
        channel = self.client.get_channel(job.origin.channel_id or 0)
        if not isinstance(channel, discord.abc.GuildChannel | discord.Thread):
            return True
        granted = channel.permissions_for(channel.guild.me)
        send = granted.send_messages_in_threads if isinstance(channel, discord.Thread) else granted.send_messages
        return granted.view_channel and send and granted.attach_files

    async def _settle_status(self, job: Job, text: str) -> None:
        """Leave a job's ending on a status message its interaction can no longer edit (a restart, a dead
        token): the bot token may edit the bot's own messages, a command's public answer included.
        The buttons go: there is nothing left to cancel. Only ever a courtesy: the requester was told
        already (the video, or the failure notice), so no error here may undo that."""
        if job.status_message_id is None or job.origin.channel_id is None:
            return
        channel = self.client.get_partial_messageable(job.origin.channel_id, guild_id=job.origin.guild_id)
        try:
            await channel.get_partial_message(job.status_message_id).edit(content=text, view=None)
        except discord.HTTPException as error:
            log.info("Job %d: status message not updated with its ending (%s %s)", job.id, error.status, error.code)
        except Exception as error:  # a dropped connection, a timeout: the same courtesy, skipped
            log.info("Job %d: status message not updated with its ending (%s)", job.id, type(error).__name__)

    def _upload_limit(self, job: Job) -> int:
        guild = self.client.get_guild(job.origin.guild_id) if job.origin.guild_id else None
        return guild.filesize_limit if guild is not None else DEFAULT_UPLOAD_LIMIT

    @staticmethod
    def _embed(job: Job) -> discord.Embed:
        prompt = safe_echo(job.prompt) if job.prompt else "*(no prompt)*"
        if job.forgotten_at is not None:  # forgotten while it was being made: the prompt is not echoed any more
            prompt = "*(prompt forgotten at a moderator's request)*"
        return discord.Embed(description=prompt, colour=discord.Colour.blurple())

    def _update_status(self, job_id: int, text: str, *, urgent: bool = False, active: bool = True) -> None:
        """Edit the status message now, or once the throttle allows, keeping only the latest text."""
        tracked = self._tracked.get(job_id)
        if tracked is None or text in (tracked.last_text, tracked.pending_text):
            return
        tracked.pending_text = text
        tracked.pending_active = active
        if tracked.flusher is None or tracked.flusher.done():
            wait = 0.0 if urgent else max(0.0, tracked.last_edit_at + self.progress_interval_s - time.monotonic())
            tracked.flusher = asyncio.create_task(self._flush(job_id, tracked, wait))

    async def _flush(self, job_id: int, tracked: _Tracked, wait: float) -> None:
        if wait > 0:
            await asyncio.sleep(wait)
        text, tracked.pending_text = tracked.pending_text, None
        if text is not None and self._tracked.get(job_id) is tracked and self._usable(job_id) is not None:
            await self._edit(tracked, text, job_id=job_id, active=tracked.pending_active)

    async def _edit(self, tracked: _Tracked, text: str, *, job_id: int, active: bool) -> bool:
        """Edit the status message; ``active`` jobs get the status buttons (Cancel), finished ones lose them."""
        view: discord.ui.View | None = discord.utils.MISSING  # leave components alone
        if self.status_view_factory is not None:
            view = self.status_view_factory(job_id) if active else None
        try:
            if tracked.message is not None:
                await tracked.message.edit(content=text, view=view)
            elif tracked.interaction is not None:
                await tracked.interaction.edit_original_response(content=text, view=view)
        except discord.HTTPException as error:
            log.info("Could not edit a status message (%s %s)", error.status, error.code)
            return False
        tracked.last_text = text
        tracked.last_edit_at = time.monotonic()
        return True

    def _spawn(self, tracked: _Tracked, coro: object) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coro)  # type: ignore[arg-type]
        tracked.tasks.add(task)
        task.add_done_callback(tracked.tasks.discard)


def _or_missing(value: T | None) -> T:
    """discord.py's way of saying "not given" (None would mean "clear it" in some calls)."""
    return discord.utils.MISSING if value is None else value


def _video_filename(job: Job) -> str:
    """Each job's upload has its own name, which is how an earlier post of it is recognised."""
    return f"grok-video-{job.id}.mp4"


def _nonce(job: Job, kind: str) -> str:
    """Discord drops a second message with the same nonce, so a retried delivery never posts twice."""
    return f"gv{kind}{job.id}"[:25]
