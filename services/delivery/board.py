"""The status board: each job's status message, kept true from acceptance to its ending.

A job's status message is reached through its interaction (a command's answer) or is the bot's own
message (the reply trigger). Progress edits are throttled to one every ``progress_interval_s``,
keeping only the latest text; the state changes that matter go out at once. An interaction token
dies after 15 minutes, so shortly before that the board leaves a last note (where the video will go,
and the Cancel button while a Cancel can still help) and lets go; an ending after that is written
with the bot token (``settle``). Tokens stay in memory only: they are secrets.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any

import discord

from services.delivery.places import can_post_in
from services.delivery.status_texts import CANCELLABLE, StatusTexts, done_text, handover_text
from services.jobs.listener import DeliveryReceipt
from services.jobs.models import Job, JobStatus
from services.jobs.wording import status_line
from services.store.store import Store

log = logging.getLogger(__name__)

TOKEN_SAFETY_MARGIN_S = 90.0  # stop using an interaction token this long before it dies (uploads take time)
REFRESH_REREADS = 3  # how often a first line is checked against the store once it landed (see _keep_newest)

StatusView = Callable[[int], discord.ui.View]  # the buttons on a status message while its job is alive


@dataclass(slots=True)
class _Tracked:
    """How to reach a job's status message: through its interaction, or as the bot's own message."""

    interaction: discord.Interaction | None = None
    message: discord.Message | discord.PartialMessage | None = None  # the bot's own message (never expires)
    # Not accepted by this run (another process of a cluster accepted it, or an earlier run): only its progress is
    # shown here, with the bot token; its ending and whether it was posted are judged as for a resumed job.
    adopted: bool = False
    last_text: str = ""
    last_edit_at: float = 0.0
    pending_text: str | None = None
    pending_active: bool = True
    flusher: asyncio.Task[None] | None = None
    handover: asyncio.TimerHandle | None = None
    tasks: set[asyncio.Task[None]] = field(default_factory=set)


class StatusBoard:
    """The status messages of the jobs this run accepted, and the endings left on any status message."""

    def __init__(
        self, client: discord.Client, store: Store, *, status_view: StatusView, progress_interval_s: float
    ) -> None:
        self.client = client
        self.store = store
        self.status_view = status_view
        self.progress_interval_s = progress_interval_s
        # The status lines; once the runtime exists (bot.py), with each job's estimate and expected start.
        self.texts: StatusTexts | None = None
        self._tracked: dict[int, _Tracked] = {}
        self._handed_over: set[int] = set()  # jobs whose last note before the token died must stay until the end

    # -- the cogs hand over a status message once the job is accepted --------------------------

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
        job = await self.store.jobs.get(job_id)
        if job is not None and not job.status.is_terminal:
            text = self._line(job, position=position)
            self._update_status(job_id, text, urgent=True, active=True)
            tracked = self._tracked.get(job_id)
            if tracked is not None and tracked.flusher is not None and tracked.pending_text == text:
                self._spawn(tracked, self._keep_newest(job_id, tracked, job, text))

    async def _keep_newest(self, job_id: int, tracked: _Tracked, shown: Job, text: str) -> None:
        """In a cluster the leader may take a job up at once and edit its status message with the bot token
        before this process's first edit lands, which would then show an older state until the leader's next
        progress edit (up to ``progress_interval_s``). So once this edit landed, the job is read again, and a state
        that moved on without anyone here reporting it (the scheduler runs elsewhere) is shown at once."""
        for _ in range(REFRESH_REREADS):
            if tracked.flusher is not None:
                await asyncio.wait({tracked.flusher})
            reported = tracked.last_text != text or tracked.pending_text is not None  # by this process's scheduler
            if reported or self._tracked.get(job_id) is not tracked:
                return  # (or the edit did not land, or the job left the board)
            job = await self.store.jobs.get(job_id)
            if job is None or job.status.is_terminal or (job.status, job.progress) == (shown.status, shown.progress):
                return
            shown, text = job, self._line(job, elapsed_s=time.time() - job.created_at)
            self._update_status(job_id, text, urgent=True, active=job.status in CANCELLABLE)

    def forget(self, job_id: int) -> None:
        """Stop showing progress for a job (it was cancelled from its status message, or it ended)."""
        tracked = self._tracked.pop(job_id, None)
        if tracked is None:
            return
        if tracked.handover is not None:
            tracked.handover.cancel()
        if tracked.flusher is not None and tracked.flusher is not asyncio.current_task():
            tracked.flusher.cancel()

    # -- what the others ask of the board --------------------------------------------------------

    def tracks(self, job_id: int) -> bool:
        """Whether this run accepted the job and holds its status message (a resumed job's it does not)."""
        tracked = self._tracked.get(job_id)
        return tracked is not None and not tracked.adopted

    def is_live(self, job_id: int) -> bool:
        """Whether the job's status message can still be edited the quick way (its token has time left)."""
        tracked = self._usable(job_id)
        return tracked is not None and not tracked.adopted

    def interaction(self, job_id: int) -> discord.Interaction | None:
        """The job's interaction while its token has comfortable time left, for a followup."""
        tracked = self._usable(job_id)
        return tracked.interaction if tracked is not None else None

    async def finish(self, job_id: int, text: str) -> bool:
        """Take the job off the board, leaving ``text`` (without buttons) on its status message while it
        can still be edited the quick way; False when it could not be (a dead token, a failed edit)."""
        tracked = self._usable(job_id)
        self.forget(job_id)
        self._handed_over.discard(job_id)
        if tracked is None or tracked.adopted:
            return False
        return await self._edit(tracked, text, job_id=job_id, active=False)

    async def show_done(self, job: Job, receipt: DeliveryReceipt) -> None:
        """The status message says where the video went, through the interaction while it lasts."""
        done = done_text(job.id, receipt.method)
        if not await self.finish(job.id, done):
            await self.settle(job, done)

    async def settle(self, job: Job, text: str) -> None:
        """Leave a job's ending on a status message its interaction can no longer edit (a restart, a dead
        token): the bot token may edit the bot's own messages, a command's public answer included.
        The buttons go: there is nothing left to cancel. Only ever a courtesy: the requester was told
        already (the video, or the failure notice), so no error here may undo that."""
        self._handed_over.discard(job.id)
        message = self._status_message(job)
        if message is None:
            return
        try:
            await message.edit(content=text, view=None)
        except discord.HTTPException as error:
            log.info("Job %d: status message not updated with its ending (%s %s)", job.id, error.status, error.code)
        except Exception as error:  # a dropped connection, a timeout: the same courtesy, skipped
            log.info("Job %d: status message not updated with its ending (%s)", job.id, type(error).__name__)

    # -- the listener's progress reports ---------------------------------------------------------

    async def on_queue_changed(self, positions: Mapping[int, int]) -> None:
        for job_id, position in positions.items():
            if self._usable(job_id) is None and job_id in self._tracked:
                continue  # its token is about to die: the hand-over note is on its way
            job = await self.store.jobs.get(job_id)
            if job is not None and job.status is JobStatus.QUEUED and self._reachable(job):
                self._update_status(job_id, self._line(job, position=position), active=True)

    async def on_status(self, job: Job) -> None:
        if self._usable(job.id) is None and (job.id in self._tracked or not self._reachable(job)):
            return
        elapsed = time.time() - job.created_at
        self._update_status(
            job.id,
            self._line(job, elapsed_s=elapsed),
            urgent=job.status is not JobStatus.RUNNING,
            active=job.status in CANCELLABLE,
        )

    # -- inside ----------------------------------------------------------------------------------

    def _line(self, job: Job, *, position: int | None = None, elapsed_s: float | None = None) -> str:
        if self.texts is None:
            return status_line(job, position=position, elapsed_s=elapsed_s)
        return self.texts.line(job, position=position, elapsed_s=elapsed_s)

    def _reachable(self, job: Job) -> bool:
        """Whether the board shows this job's progress: one it tracks, or one it takes up now (accepted by
        another process or an earlier run: reached with the bot token), unless a hand-over note must stay."""
        if job.id in self._tracked:
            return True
        message = self._status_message(job)
        if message is None or job.status.is_terminal or job.id in self._handed_over:
            return False
        self._tracked[job.id] = _Tracked(message=message, adopted=True)
        return True

    def _status_message(self, job: Job) -> discord.PartialMessage | None:
        """The job's status message as the bot token reaches it (it may edit the bot's own messages, a
        command's public answer included)."""
        if job.status_message_id is None or job.origin.channel_id is None:
            return None
        channel = self.client.get_partial_messageable(job.origin.channel_id, guild_id=job.origin.guild_id)
        return channel.get_partial_message(job.status_message_id)

    def _usable(self, job_id: int) -> _Tracked | None:
        """The job's status message, unless it is reached through a token with little time left."""
        tracked = self._tracked.get(job_id)
        if tracked is None or tracked.interaction is None:
            return tracked
        remaining = (tracked.interaction.expires_at - discord.utils.utcnow()).total_seconds()
        return tracked if remaining > TOKEN_SAFETY_MARGIN_S else None

    async def _hand_over(self, job_id: int) -> None:
        """The token is about to die: leave a last word on the status message, then let go of it.

        The note says where the video will go, and a job that can still be stopped keeps its Cancel
        button: a click is an interaction of its own, with a fresh token. The ending is written later
        with the bot token (``settle``)."""
        tracked = self._tracked.get(job_id)
        if tracked is None:
            return
        job = await self.store.jobs.get(job_id)
        if job is not None and not job.status.is_terminal:
            note = handover_text(job_id, posts_here=can_post_in(self.client, job))
            await self._edit(tracked, note, job_id=job_id, active=job.status in CANCELLABLE)
            self._handed_over.add(job_id)
        self.forget(job_id)

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
        view = self.status_view(job_id) if active else None
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

    def _spawn(self, tracked: _Tracked, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        tracked.tasks.add(task)
        task.add_done_callback(tracked.tasks.discard)
