"""The one narrow interface through which the services report back to whoever shows results.

The Discord delivery adapter implements it once; the terminal command implements it to print
progress and save the file; tests implement it to watch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from services.jobs.models import Job


@dataclass(frozen=True, slots=True)
class DeliveryReceipt:
    """Where a finished video went, recorded with the job."""

    method: str  # "interaction", "channel", "dm", "file"...
    channel_id: int | None = None
    message_id: int | None = None


class DeliveryError(Exception):
    """Delivering failed. ``permanent`` means trying again cannot help; ``str()`` says why in plain words."""

    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


class JobListener(Protocol):
    async def on_queue_changed(self, positions: Mapping[int, int]) -> None:
        """Waiting jobs and their 1-based places in line (called when the line moves)."""

    async def on_status(self, job: Job) -> None:
        """A job was submitted, made progress, or is being downloaded."""

    async def deliver(self, job: Job, video: Path) -> DeliveryReceipt:
        """Hand the finished video to the person; raise DeliveryError when that fails."""

    async def on_finished_without_video(self, job: Job) -> None:
        """The job ended failed, moderated, expired, timed out or cancelled; ``job.error_message`` says why."""


class NullListener:
    """Reports nowhere; delivery just leaves the file where it is. For benchmarks."""

    async def on_queue_changed(self, positions: Mapping[int, int]) -> None:
        return None

    async def on_status(self, job: Job) -> None:
        return None

    async def deliver(self, job: Job, video: Path) -> DeliveryReceipt:
        return DeliveryReceipt(method="file")

    async def on_finished_without_video(self, job: Job) -> None:
        return None
