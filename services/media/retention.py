"""The janitor: finished videos and stored inputs are kept ``MEDIA_RETENTION_DAYS`` after their job ended.

Nothing else grows without bound, so this is what keeps a busy server's disk from filling. Job rows, with
their costs and counts, stay forever (the limits and ``/usage`` read them); only the media goes, and the row
records when (``media_purged_at``), so the buttons can say why a file is gone. The Delete button and a
moderator's ``/videoadmin forget`` remove a job's media at once, through the same path. Strays in the videos
folder (``.part`` files and shrunk copies a crash left behind, files of jobs the store does not know) go once
they are a few hours old. A job in flight, or one whose requester is still owed its ending, is never touched.

The folder is listed and files are deleted in a thread; the store works in aiosqlite's. A sweep that fails
(a disk error, a database locked by another program) is logged and tried again at the next one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import sqlite3
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from services.config import RetentionSettings
from services.jobs.models import JobStatus
from services.store.patience import patiently
from services.store.store import Store

log = logging.getLogger(__name__)
T = TypeVar("T")

DAY_S = 86400.0
# Every name the bot gives a file in the videos folder: job-N.mp4, its shrunk copies job-N-fit-LIMIT.mp4, and
# the .part / .part.mp4 files they are written through. Anything else in the folder is never touched.
MEDIA_NAME = re.compile(r"job-(?P<job>\d{1,20})(?P<copy>-fit-\d{1,20})?\.mp4(?P<part>\.part(?:\.mp4)?)?")


@dataclass(frozen=True, slots=True)
class Freed:
    """What removing some jobs' media gave back."""

    jobs: int = 0
    files: int = 0
    file_bytes: int = 0
    input_bytes: int = 0  # inside the database: pages SQLite reuses for new inputs

    def __add__(self, other: Freed) -> Freed:
        return Freed(
            self.jobs + other.jobs,
            self.files + other.files,
            self.file_bytes + other.file_bytes,
            self.input_bytes + other.input_bytes,
        )


@dataclass(frozen=True, slots=True)
class SweepReport:
    media: Freed
    strays: int = 0
    stray_bytes: int = 0


@dataclass(frozen=True, slots=True)
class Forgotten:
    """What ``/videoadmin forget`` did for one member in one server."""

    jobs: int  # the member's jobs there, all of them now marked forgotten
    newly: int  # of which this call forgot (the rest already were)
    waiting: int  # still in flight, or owed their ending: erased by the first sweep after they are over
    freed: Freed


@dataclass(frozen=True, slots=True)
class _File:
    path: Path
    job_id: int
    original: bool  # job-N.mp4 itself (not a shrunk copy, not a half-written file)
    size: int


def kept_for(days: float) -> str:
    """How long media is kept, in words: "7 days", "1 day", "12 hours", "90 minutes"."""
    minutes = max(1, round(days * 1440))
    if minutes % 1440 == 0:
        count, unit = minutes // 1440, "day"
    elif minutes % 60 == 0:
        count, unit = minutes // 60, "hour"
    else:
        count, unit = minutes, "minute"
    return f"{count} {unit}" + ("" if count == 1 else "s")


class Janitor:
    """Removes media that is no longer kept: on a timer (``start``/``stop``), and when asked (``purge``, ``forget``)."""

    batch = 100  # jobs per transaction: the store's write lock is never held for long

    def __init__(
        self,
        store: Store,
        media_dir: Path,
        settings: RetentionSettings | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.media_dir = media_dir
        self.settings = settings or RetentionSettings()
        self.clock = clock  # wall-clock time: job endings and file times are stored in it
        self.sweeps = 0  # sweeps completed since start (a failed one does not count)
        self._task: asyncio.Task[None] | None = None

    # -- the timer -----------------------------------------------------------------------------

    def start(self) -> None:
        """The first sweep comes ``first_sweep_s`` after this, then one every ``sweep_interval_s``."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="media-janitor")

    async def stop(self) -> None:
        """Stop the timer (a sweep cut short is rolled back, and the next start's sweep does it again)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.wait({task})  # never swallows a cancel of stop() itself, as suppressing around await would

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def _run(self) -> None:
        await asyncio.sleep(self.settings.first_sweep_s)
        while True:
            await self.sweep_safely()
            await asyncio.sleep(self.settings.sweep_interval_s)

    async def sweep_safely(self) -> SweepReport | None:
        """One sweep whose failure is logged, never raised: the bot carries on and the next sweep tries again."""
        retry = f"the next sweep, in {kept_for(self.settings.sweep_interval_s / DAY_S)}, tries again"
        try:
            return await self.sweep()
        except (OSError, sqlite3.Error) as error:
            why = getattr(error, "strerror", None) or str(error) or type(error).__name__
            log.warning("Media sweep failed (%s); %s", why, retry)
        except Exception:
            log.exception("Media sweep failed; %s", retry)
        return None

    # -- the work ------------------------------------------------------------------------------

    async def sweep(self) -> SweepReport:
        """Remove the media of jobs that ended longer ago than kept (and of deleted or forgotten ones), then strays."""
        now = self.clock()
        days = self.settings.keep_days
        cutoff = None if days is None else now - days * DAY_S
        freed = Freed()
        while ids := await self.store.media.to_purge(cutoff, limit=self.batch):
            batch = await self.purge(ids, now=now)
            freed += batch
            if batch.jobs < len(ids):
                break  # something changed under us; the next sweep picks up the rest
        strays, stray_bytes = await self._remove_strays(now)
        self.sweeps += 1
        kept = "forever" if days is None else f"{kept_for(days)} after a job ends"
        log.info(
            "Media sweep: removed the media of %d job(s): %d file(s), %s, and %s of stored inputs (space the "
            "database reuses); %d stray file(s), %s. Media is kept %s",
            freed.jobs,
            freed.files,
            _mib(freed.file_bytes),
            _mib(freed.input_bytes),
            strays,
            _mib(stray_bytes),
            kept,
        )
        return SweepReport(freed, strays, stray_bytes)

    async def purge(self, job_ids: Sequence[int], *, now: float | None = None, patient: bool = False) -> Freed:
        """Remove the files and stored inputs of these jobs, if they are over (in-flight ones are left alone).

        The store is marked first, then the files go: a file that cannot be deleted now belongs to a purged
        job, which the next sweep's stray pass removes. ``patient`` waits out a locked database (someone clicked).
        """
        when = self.clock() if now is None else now
        rows, input_bytes = await self._write(lambda: self.store.media.purge(job_ids, when), patient, "media purge")
        if not rows:
            return Freed()
        files, file_bytes = await asyncio.to_thread(self._delete_files_of, dict(rows))
        for job_id, _ in rows:
            log.debug("Job %d: media removed", job_id)
        return Freed(len(rows), files, file_bytes, input_bytes)

    async def forget(self, guild_id: int, user_id: int) -> Forgotten:
        """Erase a member's prompts, files and inputs in one server; the rows, counts and costs stay."""
        now = self.clock()
        total, newly, waiting = await self._write(
            lambda: self.store.media.forget_member(guild_id, user_id, now), True, "forget"
        )
        freed = Freed()
        while ids := await self.store.media.to_purge(None, guild_id=guild_id, user_id=user_id, limit=self.batch):
            batch = await self.purge(ids, now=now, patient=True)
            freed += batch
            if batch.jobs < len(ids):
                break
        log.info(
            "Forgot user %s in guild %s: %d job(s), %d newly, %d still in flight; %d file(s), %s",
            user_id,
            guild_id,
            total,
            newly,
            waiting,
            freed.files,
            _mib(freed.file_bytes + freed.input_bytes),
        )
        return Forgotten(total, newly, waiting, freed)

    async def _write(self, call: Callable[[], Awaitable[T]], patient: bool, what: str) -> T:
        return await patiently(call, what=what) if patient else await call()

    # -- files (these run in a thread) ---------------------------------------------------------

    def _media_files(self) -> list[_File]:
        try:
            entries = list(os.scandir(self.media_dir))
        except FileNotFoundError:
            return []  # no video was ever downloaded here
        found = []
        for entry in entries:
            match = MEDIA_NAME.fullmatch(entry.name)
            if match is None or not entry.is_file(follow_symlinks=False):
                continue
            original = match["copy"] is None and match["part"] is None
            with contextlib.suppress(FileNotFoundError):
                stat = entry.stat(follow_symlinks=False)
                found.append(_File(Path(entry.path), int(match["job"]), original, stat.st_size))
        return found

    def _delete_files_of(self, outputs: dict[int, str | None]) -> tuple[int, int]:
        doomed = [f for f in self._media_files() if f.job_id in outputs]
        seen = {f.path for f in doomed}
        for job_id, output in outputs.items():
            # A store moved to another folder keeps its old paths: follow them, but only to this job's own file.
            path = Path(output) if output else None
            if path is not None and path.name == f"job-{job_id}.mp4" and path not in seen:
                with contextlib.suppress(FileNotFoundError):
                    doomed.append(_File(path, job_id, True, path.stat().st_size))
        return _unlink(doomed)

    def _old_files(self, now: float) -> list[_File]:
        """The bot's files in the folder that were last written more than ``orphan_age_s`` ago."""
        old = []
        for file in self._media_files():
            with contextlib.suppress(FileNotFoundError):
                if now - file.path.stat().st_mtime > self.settings.orphan_age_s:
                    old.append(file)
        return old

    async def _remove_strays(self, now: float) -> tuple[int, int]:
        candidates = await asyncio.to_thread(self._old_files, now)
        if not candidates:
            return 0, 0
        states = await self.store.media.states(f.job_id for f in candidates)
        strays = [f for f in candidates if _is_stray(f, states.get(f.job_id))]
        return await asyncio.to_thread(_unlink, strays)


def _is_stray(file: _File, state: tuple[JobStatus, bool] | None) -> bool:
    if state is None:
        return True  # the store does not know its job (a restored backup, a deleted database)
    status, purged = state
    if not status.is_terminal:
        return False  # in flight: its download or delivery is using it
    # A job that is over needs no copies or half-written files; its original stays until its time is up.
    return purged or not file.original


def _unlink(files: list[_File]) -> tuple[int, int]:
    count = size = 0
    for file in files:
        try:
            file.path.unlink()
        except FileNotFoundError:
            continue  # someone else (a Delete and a sweep together) got there first
        except OSError as error:
            log.warning("Could not delete %s (%s); the next sweep tries again", file.path.name, error.strerror)
            continue
        count, size = count + 1, size + file.size
    return count, size


def _mib(n: int) -> str:
    return f"{n / 1024 / 1024:.1f} MiB"
