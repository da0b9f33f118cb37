"""Shared fixtures: the two emulators on loopback, and the real bot wired to them; how many test workers run."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests import pgtest
from tests.botprocess import BotProcess
from tests.emulators.discord_emulator import DiscordEmulator
from tests.emulators.xai_emulator import XaiEmulator
from tests.harness import BotRig
from tests.pgtest import ENGINES
from tests.pgtest import store_url as _store_url

# Most of an end-to-end test is waiting (timers, loopback answers, a bot process starting), so the suite runs
# in more workers than there are cores: measured on 2 cores, 8 workers beat 4 and 12.
WORKERS_PER_CORE = 4


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """The worker count for ``-n auto`` (pyproject's addopts): several per core for the suite or much of it,
    none for a file or two, where starting workers would cost more than they save."""
    files = sum(_test_files(Path(arg.split("::")[0])) for arg in config.args)
    return 0 if files <= 2 else min(files, WORKERS_PER_CORE * (os.cpu_count() or 1))


def _test_files(path: Path) -> int:
    if path.is_dir():
        return sum(1 for _ in path.rglob("test_*.py"))
    return 1 if path.is_file() else 0


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "sqlite_only: about SQLite itself; skipped when TEST_ENGINE=postgresql")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The PostgreSQL pass (TEST_ENGINE=postgresql) skips what is SQLite's own and what ran on both engines."""
    if pgtest.engine() != "postgresql":
        return
    own = pytest.mark.skip(reason="about SQLite itself: run in the SQLite pass")
    both = pytest.mark.skip(reason="runs on both engines in the SQLite pass already")
    for item in items:
        if "sqlite_only" in item.keywords:
            item.add_marker(own)
        elif "engine" in getattr(item, "fixturenames", ()):
            item.add_marker(both)


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    """Each test that takes it runs once per store engine (PostgreSQL: see tests/pgtest.py)."""
    return str(request.param)


@pytest.fixture
async def store_url(engine: str) -> AsyncIterator[str | None]:
    """``Store.open(path, url=store_url)``: the SQLite file at ``path``, or a fresh PostgreSQL schema."""
    async with _store_url(engine) as url:
        yield url


@pytest.fixture
async def xai() -> AsyncIterator[XaiEmulator]:
    async with XaiEmulator(generation_s=0.3) as emulator:
        yield emulator


@pytest.fixture
async def discord_emu() -> AsyncIterator[DiscordEmulator]:
    async with DiscordEmulator() as emulator:
        yield emulator
        assert not emulator.problems, emulator.problems


@pytest.fixture
async def rig(discord_emu: DiscordEmulator, xai: XaiEmulator, tmp_path: Path) -> AsyncIterator[BotRig]:
    """The bot in this process, on TEST_ENGINE's store (SQLite unless it says postgresql)."""
    async with pgtest.store_url() as url:
        yield BotRig(discord_emu, xai, tmp_path, database_url=url)


@pytest.fixture
async def bot(discord_emu: DiscordEmulator, xai: XaiEmulator, tmp_path: Path) -> AsyncIterator[BotProcess]:
    """A real ``python bot.py`` wired to the emulators, not yet started; stopped (quietly) after the test."""
    async with pgtest.store_url() as url:
        process = BotProcess(discord_emu, xai, tmp_path, database_url=url)
        try:
            yield process
        finally:
            await process.stop_quietly()
