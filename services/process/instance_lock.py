"""One bot per SQLite file: an OS lock on a file beside the database, held for the life of the process.

Two bots on one file would resume the same jobs, deliver them twice and spend two request budgets on
one xAI account. The lock is ``flock`` on ``<DATABASE_PATH>.lock``, beside the file the path leads to
(symlinks followed, so a link to the same file meets the same lock): the kernel drops it the moment its
process ends, however it ends (even SIGKILL), so a lock file left behind by a dead bot never blocks the
next start. The holder writes its pid and command into it, so the refusal (and ``check``) can name it.

POSIX only (Linux, macOS, the BSDs). Where ``fcntl`` is missing (Windows) nothing is locked and
``acquire`` says so in the log; do not start two bots on one file there. ``flock`` over NFS may not
be shared between machines: keep the database on a local disk.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

LOCK_SUFFIX = ".lock"
# ``check`` probes the lock with a shared lock for a moment; a bot starting in that instant tries again
# for this long before it calls the store taken.
ACQUIRE_PATIENCE_S = 1.0
_RETRY_S = 0.05


@dataclass(frozen=True, slots=True)
class Holder:
    """A live process holding a database's lock: its pid and command, as it wrote them (None if it did not)."""

    pid: int | None
    command: str | None = None

    def describe(self, database: Path, *, another: bool = False) -> str:
        """``a bot is running on data/x.sqlite3 (pid 42)``, or the same for ``generate``."""
        who = f"pid {self.pid}" if self.pid is not None else "pid unknown"
        if self.command == "generate":
            return f"a `python bot.py generate` ({who}) is using {database}"
        return f"{'another bot is already' if another else 'a bot is'} running on {database} ({who})"


class StoreInUse(Exception):
    """Another live process holds the database's lock."""

    def __init__(self, database: Path, holder: Holder) -> None:
        super().__init__(database, holder)
        self.database = database
        self.holder = holder

    @property
    def pid(self) -> int | None:
        return self.holder.pid

    def __str__(self) -> str:
        return self.holder.describe(self.database, another=True)


class LockUnavailable(Exception):
    """The lock file cannot be created or opened (a read-only disk, no permission). ``str`` is the one line."""


def lock_path_for(database: Path) -> Path | None:
    """The lock file beside the file ``database`` leads to, or None for a store no other process can open (in memory).

    Symlinks are followed (of the file and of its folders), as SQLite follows them: two DATABASE_PATHs that
    reach one file through a link must meet at one lock, or both bots would run on it.
    """
    text = str(database)
    if text in ("", ":memory:") or text.startswith("file::memory:"):
        return None
    try:
        real = database.resolve()
    except (OSError, RuntimeError):  # a symlink loop: the store cannot open either, and says so in its own words
        real = database.absolute()
    return real.with_name(real.name + LOCK_SUFFIX)


class InstanceLock:
    """Held from ``acquire`` until ``release`` (or the end of the process)."""

    def __init__(self, path: Path | None, fd: int | None) -> None:
        self.path = path
        self._fd = fd

    @classmethod
    def acquire(cls, database: Path, *, command: str = "run", patience_s: float = ACQUIRE_PATIENCE_S) -> Self:
        """Take the lock, or raise StoreInUse / LockUnavailable. Waits at most ``patience_s`` (call it off the loop)."""
        path = lock_path_for(database)
        if path is None:
            return cls(None, None)
        if database.is_dir():
            raise LockUnavailable(
                f"DATABASE_PATH={database} is a folder; it should name the database file, "
                f"like {database / 'grok-video-bot.sqlite3'}"
            )
        if fcntl is None:  # pragma: no cover - Windows
            log.warning("This system cannot lock %s; do not start a second bot on the same database", database)
            return cls(path, None)
        fd = _open(path, os.O_RDWR | os.O_CREAT)
        deadline = time.monotonic() + patience_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    found = _read_holder(fd)
                    os.close(fd)
                    raise StoreInUse(database, found) from None
                time.sleep(_RETRY_S)
            except OSError as error:  # e.g. a file system without locks
                os.close(fd)
                raise LockUnavailable(f"cannot lock {path} ({error.strerror or error})") from None
        data = f"{os.getpid()}\n{command}\n".encode()
        # Overwrite in place, then cut: a reader never sees an empty file while the pid changes.
        os.pwrite(fd, data, 0)
        os.ftruncate(fd, len(data))
        return cls(path, fd)

    def release(self) -> None:
        """Let go (the file stays: removing it could race a process that has just opened it)."""
        if self._fd is not None:
            os.close(self._fd)  # closing the only descriptor drops the flock
            self._fd = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


def holder(database: Path) -> Holder | None:
    """Who holds ``database``'s lock right now, or None when nobody does.

    Only looks: the lock file is never created, and a free lock is held (shared) for an instant only.
    """
    path = lock_path_for(database)
    if path is None or fcntl is None or not path.is_file():
        return None
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_holder(fd)
        except OSError:
            return None
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _open(path: Path, flags: int) -> int:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return os.open(path, flags | getattr(os, "O_CLOEXEC", 0), 0o644)
    except OSError as error:
        raise LockUnavailable(
            f"cannot open or create {path} ({error.strerror or error}); "
            "DATABASE_PATH must be in a folder the bot may write"
        ) from None


def _read_holder(fd: int) -> Holder:
    """What the holder wrote: its pid on the first line, its command on the second."""
    try:
        lines = os.pread(fd, 128, 0).decode("ascii", "replace").splitlines()
    except OSError:
        return Holder(None)
    pid: int | None = None
    with contextlib.suppress(ValueError, IndexError):
        pid = int(lines[0].strip())
    command = lines[1].strip() if len(lines) > 1 and lines[1].strip().isidentifier() else None
    return Holder(pid if pid is not None and pid > 0 else None, command)
