"""``python bot.py`` as a real child process against the in-test emulators: start, SIGKILL, SIGTERM, restart.

Crash tests need a process that can die for real (no ``finally`` runs, no goodbye to the gateway), so
they use this instead of ``BotRig.running()``. Logs go to files (a pipe nobody reads would stall the
bot) and are kept per run, so a failing test can show what the bot said. Each process is forked from a
helper that has the bot's libraries imported already (tests/warmstart.py), unless a fork cannot stand in.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import itertools
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Protocol

import asyncpg

from tests.emulators.discord_emulator import DiscordEmulator
from tests.emulators.xai_emulator import XaiEmulator
from tests.harness import BotRig

ROOT = Path(__file__).resolve().parent.parent
# A developer's own .env beside bot.py must not leak into the tests: read none unless a test says so.
HERMETIC = {"ENV_FILE": "none"}


class BotChild(Protocol):
    """What the tests use of a running ``python bot.py``, started for real or forked warm."""

    @property
    def pid(self) -> int: ...

    @property
    def returncode(self) -> int | None: ...

    def send_signal(self, sig: int) -> None: ...

    async def wait(self) -> int: ...


class _WarmStarter:
    """The helper of tests/warmstart.py for this test process: started on first use, shared by every test.

    A thread reads its answers, so any test's event loop can wait for a pid or an exit status by polling."""

    def __init__(self) -> None:
        helper_env = {"PATH": os.environ.get("PATH", ""), "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
        self._helper = subprocess.Popen(  # noqa: S603 - our own interpreter and script
            [sys.executable, str(ROOT / "tests" / "warmstart.py")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=helper_env,
        )
        assert self._helper.stdin is not None and self._helper.stdout is not None
        self._to_helper: IO[bytes] = self._helper.stdin
        self._from_helper: IO[bytes] = self._helper.stdout
        self.ready = json.loads(self._from_helper.readline() or b'{"ready": false}').get("ready") is True
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self.pids: dict[int, int] = {}
        self.statuses: dict[int, int] = {}
        threading.Thread(target=self._read, name="warmstart-reader", daemon=True).start()
        atexit.register(self.close)

    def close(self) -> None:
        """At the test process's end: the helper sees its input close, and goes."""
        self._to_helper.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._helper.wait(5)

    def _read(self) -> None:
        for line in self._from_helper:
            message = json.loads(line)
            with self._lock:
                if "status" in message:
                    self.statuses[message["pid"]] = message["status"]
                else:
                    self.pids[message["id"]] = message["pid"]

    async def start(self, argv: list[str], env: dict[str, str], cwd: Path, stdout: Path, stderr: Path) -> WarmChild:
        number = next(self._ids)
        request = {
            "id": number,
            "argv": argv,
            "env": env,
            "cwd": str(cwd),
            "stdout": str(stdout),
            "stderr": str(stderr),
        }
        with self._lock:
            self._to_helper.write((json.dumps(request) + "\n").encode())
            self._to_helper.flush()
        while number not in self.pids:
            await asyncio.sleep(0.005)
        return WarmChild(self, self.pids[number])


_starter: _WarmStarter | None = None


def _warm_starter(env: dict[str, str], preexec: Callable[[], None] | None) -> _WarmStarter | None:
    """The shared helper, or None where only a real exec will do (a preexec, interpreter variables)."""
    global _starter
    if preexec is not None or any(name.startswith("PYTHON") for name in env):
        return None
    if _starter is None:
        _starter = _WarmStarter()
    return _starter if _starter.ready else None


class WarmChild:
    """A bot process forked by the helper: signalled directly, its exit status reported by the helper."""

    def __init__(self, starter: _WarmStarter, pid: int) -> None:
        self._starter = starter
        self.pid = pid

    @property
    def returncode(self) -> int | None:
        return self._starter.statuses.get(self.pid)

    def send_signal(self, sig: int) -> None:
        if self.returncode is None:
            os.kill(self.pid, sig)

    async def wait(self) -> int:
        while (status := self.returncode) is None:
            await asyncio.sleep(0.01)
        return status


async def start_bot(
    args: tuple[str, ...],
    *,
    env: dict[str, str],
    cwd: Path,
    stdout: Path,
    stderr: Path,
    preexec: Callable[[], None] | None = None,
) -> BotChild:
    """``python bot.py ARGS`` with its output appended to ``stdout``/``stderr`` (files that exist)."""
    argv = [str(ROOT / "bot.py"), *args]
    starter = _warm_starter(env, preexec)
    if starter is not None:
        return await starter.start(argv, env, cwd, stdout, stderr)
    with stdout.open("ab") as out, stderr.open("ab") as err:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            *argv,
            cwd=cwd,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=out,
            stderr=out if stderr == stdout else err,
            preexec_fn=preexec,
        )


async def run_command(
    *args: str, env: dict[str, str], cwd: Path, timeout_s: float = 60, preexec: Callable[[], None] | None = None
) -> tuple[int, str, str]:
    """``python bot.py ARGS`` run to its end (PATH added to ``env``); returns (exit status, stdout, stderr)."""
    with tempfile.TemporaryDirectory(prefix="bot-output-") as folder:
        out, err = Path(folder) / "stdout", Path(folder) / "stderr"
        out.touch()
        err.touch()
        environment = {"PATH": os.environ.get("PATH", ""), **HERMETIC, **env}
        process = await start_bot(args, env=environment, cwd=cwd, stdout=out, stderr=err, preexec=preexec)
        status = await asyncio.wait_for(process.wait(), timeout_s)
        return status, out.read_text(errors="replace"), err.read_text(errors="replace")


@dataclass
class BotProcess:
    discord: DiscordEmulator
    xai: XaiEmulator
    tmp_path: Path
    overrides: dict[str, str] = field(default_factory=dict)
    preexec: Callable[[], None] | None = None
    process: BotChild | None = None
    runs: int = 0
    database_url: str | None = None  # PostgreSQL's (TEST_ENGINE=postgresql), else the SQLite file

    def __post_init__(self) -> None:
        if self.database_url is not None:
            _POSTGRES_OF[self.database_path] = self.database_url

    def rig(self) -> BotRig:
        """The in-process rig with this bot's settings (its store, its environment)."""
        return BotRig(self.discord, self.xai, self.tmp_path, database_url=self.database_url)

    @property
    def database_path(self) -> Path:
        return BotRig(self.discord, self.xai, self.tmp_path).database_path

    def environment(self) -> dict[str, str]:
        values = {
            "PATH": os.environ.get("PATH", ""),
            **self.rig().environment(),  # the same settings as in-process tests
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
        log = self.log_path()
        log.write_bytes(b"")
        self.process = await start_bot(
            args, env=self.environment(), cwd=self.tmp_path, stdout=log, stderr=log, preexec=self.preexec
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


# A bot's DATABASE_PATH → the PostgreSQL URL its store is really in (TEST_ENGINE=postgresql), for ``jobs_now``.
_POSTGRES_OF: dict[Path, str] = {}


async def jobs_now(database: Path) -> list[dict[str, object]]:
    """``read_jobs`` off the event loop, so the emulators keep answering meanwhile (or the rows from PostgreSQL,
    when the bot of that DATABASE_PATH keeps its store there)."""
    url = _POSTGRES_OF.get(database)
    if url is not None:
        try:
            connection = await asyncpg.connect(url)
        except asyncpg.PostgresError:
            return []
        try:
            return [dict(row) for row in await connection.fetch("SELECT * FROM jobs ORDER BY id")]
        except asyncpg.UndefinedTableError:
            return []  # the schema is not there yet
        finally:
            await connection.close()
    return await asyncio.to_thread(read_jobs, database)
