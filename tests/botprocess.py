"""``python bot.py`` as a real child process against the in-test emulators: start, SIGKILL, SIGTERM, restart.

Crash tests need a process that can die for real (no ``finally`` runs, no goodbye to the gateway), so
they use this instead of ``BotRig.running()``. Logs go to files (a pipe nobody reads would stall the
bot) and are kept per run, so a failing test can show what the bot said.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.emulators.discord_emulator import DiscordEmulator
from tests.emulators.xai_emulator import XaiEmulator
from tests.harness import BotRig

ROOT = Path(__file__).resolve().parent.parent
# A developer's own .env beside bot.py must not leak into the tests: read none unless a test says so.
HERMETIC = {"ENV_FILE": "none"}


async def run_command(
    *args: str, env: dict[str, str], cwd: Path, timeout_s: float = 60, preexec: Callable[[], None] | None = None
) -> tuple[int, str, str]:
    """``python bot.py ARGS`` run to its end (PATH added to ``env``); returns (exit status, stdout, stderr)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "bot.py"),
        *args,
        cwd=cwd,
        env={"PATH": os.environ.get("PATH", ""), **HERMETIC, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        preexec_fn=preexec,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout_s)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


@dataclass
class BotProcess:
    discord: DiscordEmulator
    xai: XaiEmulator
    tmp_path: Path
    overrides: dict[str, str] = field(default_factory=dict)
    preexec: Callable[[], None] | None = None
    process: asyncio.subprocess.Process | None = None
    runs: int = 0

    @property
    def database_path(self) -> Path:
        return BotRig(self.discord, self.xai, self.tmp_path).database_path

    def environment(self) -> dict[str, str]:
        values = {
            "PATH": os.environ.get("PATH", ""),
            **BotRig(self.discord, self.xai, self.tmp_path).environment(),  # the same settings as in-process tests
            "XAI_REQUEST_TIMEOUT_SECONDS": "2",
            "LOG_LEVEL": "INFO",
            **HERMETIC,
        }
        values.update(self.overrides)
        return values

    def log_path(self, run: int | None = None) -> Path:
        return self.tmp_path / f"bot-run-{self.runs if run is None else run}.log"

    def log(self, run: int | None = None) -> str:
        path = self.log_path(run)
        return path.read_text(errors="replace") if path.exists() else ""

    def all_logs(self) -> str:
        return "\n".join(f"--- run {n} ---\n{self.log(n)}" for n in range(1, self.runs + 1))

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def spawn(self, *args: str) -> None:
        """Start ``python bot.py ARGS`` without waiting for anything (the log collects what it says)."""
        assert not self.alive, "the bot is already running"
        self.runs += 1
        with self.log_path().open("wb") as sink:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                str(ROOT / "bot.py"),
                *args,
                cwd=self.tmp_path,
                env=self.environment(),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=sink,
                stderr=sink,
                preexec_fn=self.preexec,
            )

    async def wait_for_log(self, text: str, timeout: float = 30.0, *, count: int = 1) -> str:
        """Wait until this run's log holds ``text`` (``count`` times); return the log."""
        deadline = asyncio.get_running_loop().time() + timeout
        while self.log().count(text) < count:
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"the bot never logged {text!r}; its log:\n{self.log()}")
            await asyncio.sleep(0.05)
        return self.log()

    async def start(self, *, ready_timeout: float = 60.0) -> None:
        """Start the bot and wait until it has identified on the gateway (it then handles interactions)."""
        identified = self._identifies()
        await self.spawn()
        try:
            await self.discord.wait_for(lambda: self._identifies() > identified or not self.alive, ready_timeout)
        except AssertionError:
            raise AssertionError(f"the bot never identified; its log:\n{self.log()}") from None
        assert self.alive, f"the bot exited during start-up; its log:\n{self.log()}"
        await self.discord.wait_for(lambda: bool(self.discord.gateway.connected_sessions()), ready_timeout)

    async def kill(self) -> None:
        """SIGKILL: the crash nobody can clean up after."""
        assert self.process is not None
        if self.alive:
            self.process.send_signal(signal.SIGKILL)
        await self.process.wait()

    async def terminate(self, timeout: float = 10.0) -> int:
        """SIGTERM, as a service manager stops the bot; returns the exit status (must come within ``timeout``)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.process.wait(), timeout)

    async def stop_quietly(self) -> None:
        if self.alive:
            await self.kill()

    def _identifies(self) -> int:
        return sum(1 for entry in self.discord.gateway_log if entry["event"] == "identify")


def read_jobs(database: Path) -> list[dict[str, object]]:
    """Every job row, read-only (safe while the bot runs: the store uses WAL)."""
    if not database.exists():
        return []
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5)
    try:
        connection.row_factory = sqlite3.Row
        return [dict(row) for row in connection.execute("SELECT * FROM jobs ORDER BY id")]
    except sqlite3.OperationalError:
        return []  # the schema is not there yet
    finally:
        connection.close()


async def jobs_now(database: Path) -> list[dict[str, object]]:
    """``read_jobs`` off the event loop, so the emulators keep answering meanwhile."""
    return await asyncio.to_thread(read_jobs, database)
