"""The Discord delivery adapter: the one ``JobListener`` the scheduler reports to, for Discord.

It composes three parts, each of which can be read alone: the status board (board.py) keeps each
requester's status message true, the posting chain (posting.py) puts the finished MP4 where it
belongs (the channel, the command's own reply, a DM), and notices (notices.py) say how a job ended
without a video. The cogs hand status messages to ``board``; after a restart everything goes
through the bot token.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import discord

from services.delivery.board import StatusBoard, StatusView
from services.delivery.notices import Notices
from services.delivery.posting import PostingChain, ResultView
from services.jobs.listener import DeliveryReceipt
from services.jobs.models import Job
from services.store.store import Store

PROGRESS_INTERVAL_S = 10.0  # the least time between two progress edits of one status message


class DiscordDelivery:
    """Implements ``JobListener`` for Discord."""

    def __init__(
        self,
        client: discord.Client,
        store: Store,
        *,
        result_view: ResultView,
        status_view: StatusView,
        progress_interval_s: float = PROGRESS_INTERVAL_S,
    ) -> None:
        self.board = StatusBoard(client, store, status_view=status_view, progress_interval_s=progress_interval_s)
        self.posting = PostingChain(client, self.board, result_view=result_view)
        self.notices = Notices(client, self.board)

    async def on_queue_changed(self, positions: Mapping[int, int]) -> None:
        await self.board.on_queue_changed(positions)

    async def on_status(self, job: Job) -> None:
        await self.board.on_status(job)

    async def deliver(self, job: Job, video: Path) -> DeliveryReceipt:
        return await self.posting.deliver(job, video)

    async def on_finished_without_video(self, job: Job) -> None:
        await self.notices.on_finished_without_video(job)
