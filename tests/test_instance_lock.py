"""The instance lock itself: one holder per database file, a folder refused, a free lock free again."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from services.process.instance_lock import InstanceLock, LockUnavailable, StoreInUse, holder, lock_path_for


def test_one_process_cannot_take_its_own_lock_twice(tmp_path: Path) -> None:
    """The lock belongs to one open file: a second acquire (even in the same process) is refused with our pid."""
    database = tmp_path / "data" / "bot.sqlite3"  # the data folder does not exist yet
    with InstanceLock.acquire(database):
        with pytest.raises(StoreInUse) as refused:
            InstanceLock.acquire(database, patience_s=0.1)
        assert refused.value.pid == os.getpid()
        found = holder(database)
        assert found is not None and found.pid == os.getpid()
    assert holder(database) is None
    InstanceLock.acquire(database).release()  # free again once released


def test_in_memory_needs_no_lock_file() -> None:
    """A store no other process can open has nothing to lock."""
    assert lock_path_for(Path(":memory:")) is None
    with InstanceLock.acquire(Path(":memory:")) as lock:
        assert lock.path is None


def test_a_folder_as_database_path_is_named(tmp_path: Path) -> None:
    """DATABASE_PATH naming a folder gets a line saying to name the file, not a lock beside the folder."""
    with pytest.raises(LockUnavailable, match="is a folder"):
        InstanceLock.acquire(tmp_path)
    assert not (tmp_path.parent / (tmp_path.name + ".lock")).exists()


def test_the_holder_says_what_it_is(tmp_path: Path) -> None:
    """A `generate` holding the store is named as such, so the refusal says what to wait for."""
    database = tmp_path / "bot.sqlite3"
    with InstanceLock.acquire(database, command="generate"):
        with pytest.raises(StoreInUse) as refused:
            InstanceLock.acquire(database, patience_s=0)
        assert str(refused.value) == f"a `python bot.py generate` (pid {os.getpid()}) is using {database}"
    with InstanceLock.acquire(database):
        found = holder(database)
        assert found is not None and found.describe(database) == f"a bot is running on {database} (pid {os.getpid()})"


def test_a_symlink_to_the_database_meets_the_same_lock(tmp_path: Path) -> None:
    """Two paths that reach one SQLite file through a symlink share one lock, so the second bot is refused."""
    real = tmp_path / "srv" / "bot.sqlite3"
    real.parent.mkdir()
    real.write_bytes(b"")
    link = tmp_path / "app" / "data" / "bot.sqlite3"
    link.parent.mkdir(parents=True)
    link.symlink_to(real)
    with InstanceLock.acquire(real, patience_s=0.1):
        with pytest.raises(StoreInUse) as refused:
            InstanceLock.acquire(link, patience_s=0.1)
        assert refused.value.pid == os.getpid()
        found = holder(link)
        assert found is not None and found.pid == os.getpid()
    with InstanceLock.acquire(link) as lock:
        assert lock.path == real.with_name("bot.sqlite3.lock")  # beside the real file, not beside the link


def test_a_link_to_a_database_not_made_yet_meets_the_same_lock(tmp_path: Path) -> None:
    """A link made before the first start (it points at nothing yet) already leads to the real file's lock."""
    real = tmp_path / "srv" / "bot.sqlite3"
    real.parent.mkdir()
    link = tmp_path / "bot.sqlite3"
    link.symlink_to(real)
    with InstanceLock.acquire(link, patience_s=0.1), pytest.raises(StoreInUse):
        InstanceLock.acquire(real, patience_s=0.1)


def test_a_symlink_loop_gives_a_lock_path_without_raising(tmp_path: Path) -> None:
    """A looping link is left for the store to refuse in words; working out the lock's place never raises."""
    loop = tmp_path / "bot.sqlite3"
    loop.symlink_to(loop)
    assert lock_path_for(loop) == tmp_path / "bot.sqlite3.lock"
