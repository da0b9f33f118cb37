"""``python bot.py backup FILE``: a consistent copy of the SQLite store, taken while the bot runs.

SQLite's online backup API copies the database as one read transaction, so the copy is the database at one
moment even while the bot writes (WAL: readers never block the writer, and the copy includes what is still
in the ``-wal`` file, which copying the files would not). It takes no part in the single-instance lock: it
opens the file as one more reader, never migrates it, and never writes to it. The copy is written beside its
destination, checked with ``PRAGMA integrity_check``, made self-contained (no WAL), then moved into place, so
a crash half-way never leaves a broken file under the name given.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import sqlite3
import sys
from dataclasses import dataclass
from pathlib import Path

BUSY_TIMEOUT_MS = 5000  # as the bot's own connection: a writer's checkpoint is waited for, not failed on


class BackupError(Exception):
    """The backup could not be made; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class Backup:
    source: Path
    target: Path
    size_bytes: int
    schema: int
    jobs: int

    def report(self) -> str:
        """What was written, and how to put it back."""
        database, copy = shlex.quote(str(self.source)), shlex.quote(str(self.target))
        size_mib = self.size_bytes / (1024 * 1024)
        return (
            f"Backed up {self.source} to {self.target} ({size_mib:.1f} MiB, schema {self.schema}, {self.jobs} jobs; "
            "integrity check ok).\n"
            "To restore it: stop the bot, then run\n"
            f"  cp {copy} {database} && rm -f {database}-wal {database}-shm\n"
            "and start the bot again (jobs that were in flight at the backup are resumed)."
        )


def back_up(source: Path, target: Path) -> Backup:
    """Copy the SQLite store at ``source`` to ``target`` (replacing it). Blocking: run it off any event loop."""
    source, target = Path(source).absolute(), Path(target).absolute()  # the report is read from elsewhere
    if not source.is_file():
        raise BackupError(f"there is no database at {source} to back up (check DATABASE_PATH)")
    if _belongs_to(target, source):
        raise BackupError(f"{target} is the database or one of its files: give the backup a file name of its own")
    if target.is_dir():
        raise BackupError(f"{target} is a folder: give the backup a file name, like {target / 'backup.sqlite3'}")
    part = target.with_name(target.name + ".part")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            part.unlink()
        os.close(os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))  # private from the first byte
        _copy(source, part)
        schema, jobs = _verify(part)
        os.replace(part, target)
    except sqlite3.DatabaseError as error:
        full = str(getattr(error, "sqlite_errorname", "")).startswith(("SQLITE_FULL", "SQLITE_IOERR"))  # ENOSPC, EFBIG
        advice = f" (is there room where {target} goes? Free some, or choose another FILE)" if full else ""
        raise BackupError(f"could not back up {source}: {error}{advice}") from None
    except OSError as error:  # a folder on the way that is a file, no permission, the disk full
        where = f"{error.filename}: " if error.filename else ""
        raise BackupError(f"cannot write {target} ({where}{error.strerror or error}): choose another FILE") from None
    finally:  # the copy's own journal too: a write that failed half-way (a full disk) leaves one behind
        for leftover in (part, *(part.with_name(part.name + suffix) for suffix in ("-journal", "-wal", "-shm"))):
            with contextlib.suppress(OSError):
                leftover.unlink()
    return Backup(source, target, target.stat().st_size, schema, jobs)


# Beside the database, what SQLite and the bot keep under its name: replacing the WAL drops the writes not yet
# checkpointed, replacing the lock lets a second bot in (services/process/instance_lock.py).
OWN_SUFFIXES = ("", "-wal", "-shm", "-journal", ".lock")


def _belongs_to(target: Path, database: Path) -> bool:
    """Whether writing ``target`` would replace the database or a file it depends on (symlinks, hard links too)."""
    for suffix in OWN_SUFFIXES:
        own = database.with_name(database.name + suffix)
        with contextlib.suppress(OSError):
            if target.resolve() == own.resolve() or target.samefile(own):
                return True
    return False


def _copy(source: Path, part: Path) -> None:
    # mode=rw: never create a database where there was none; the source is only read.
    reader = sqlite3.connect(f"{source.resolve().as_uri()}?mode=rw", uri=True, timeout=BUSY_TIMEOUT_MS / 1000)
    try:
        writer = sqlite3.connect(part)
        try:
            reader.backup(writer)  # all pages in one step: one read transaction, one moment
            writer.execute("PRAGMA journal_mode = DELETE")  # the copy is one file, whatever the source used
        finally:
            writer.close()
    finally:
        reader.close()


def _verify(copy: Path) -> tuple[int, int]:
    """The copy's schema version and number of jobs, once SQLite says every page of it is sound."""
    connection = sqlite3.connect(f"{copy.resolve().as_uri()}?mode=ro", uri=True)
    try:
        verdict = [row[0] for row in connection.execute("PRAGMA integrity_check")]
        if verdict != ["ok"]:
            raise BackupError(f"the copy failed SQLite's integrity check ({'; '.join(verdict[:3])}); nothing was kept")
        schema = int(connection.execute("PRAGMA user_version").fetchone()[0])
        has_jobs = connection.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'jobs'").fetchone()
        jobs = int(connection.execute("SELECT COUNT(*) FROM jobs").fetchone()[0]) if has_jobs else 0
        return schema, jobs
    finally:
        connection.close()


POSTGRES_ADVICE = (
    "The store is PostgreSQL (DATABASE_URL): back it up with pg_dump, e.g. "
    'pg_dump -Fc "$DATABASE_URL" > grok-video-bot.dump (restore with pg_restore --clean -d "$DATABASE_URL")'
)


def command(database: Path, target: Path, *, postgres: bool) -> int:
    """The ``backup`` command's whole run: prints the result (or the refusal) and returns the exit status."""
    if postgres:
        print(POSTGRES_ADVICE)
        return 1  # no copy was made: a script must not think there is one
    try:
        made = back_up(database, target)
    except BackupError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(made.report())
    return 0
