"""Shared fixtures: the two emulators on loopback, and the real bot wired to them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.emulators.discord_emulator import DiscordEmulator
from tests.emulators.xai_emulator import XaiEmulator
from tests.harness import BotRig


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
def rig(discord_emu: DiscordEmulator, xai: XaiEmulator, tmp_path: Path) -> BotRig:
    return BotRig(discord_emu, xai, tmp_path)
