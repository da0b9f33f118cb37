"""The health/metrics server under a slowloris client, and with a store that does not answer: real sockets on
loopback, the real bot's pages (tests/observe_pages.py), a real SQLite store whose jobs table goes away."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import asyncpg
import pytest

from services.config import ObserveSettings
from services.observe.health import GatewayWatch, Health
from services.observe.server import ServerLimits, serving
from services.observe.trouble import PROBE, PROBE_TIMEOUT_S
from tests import pgtest
from tests.emulators.discord_emulator import DiscordEmulator
from tests.emulators.xai_emulator import XaiEmulator
from tests.harness import BotRig
from tests.observe_pages import get, pages, wait_for_health

DOCKER_CHECK_TIMEOUT_S = 4.0  # the image's HEALTHCHECK: urlopen(..., timeout=4)
SAFETY_S = 10.0  # how long a test waits for the server to act before calling it a failure (it acts far sooner)


def _healthy() -> Health:
    watch = GatewayWatch()
    watch.up()
    return Health(watch, lambda: None)


async def _closed_by_server(reader: asyncio.StreamReader) -> bool:
    """Whether the server closed this connection (read to EOF, whatever it said before closing)."""
    await reader.read()
    return True


async def test_a_client_that_trickles_its_headers_is_cut_off() -> None:
    """A slowloris connection sends its head a byte now and then and never finishes it (staying far below every
    size limit): the server closes it once the head has taken longer than the bound, however steadily bytes come."""
    limits = ServerLimits(header_timeout_s=0.3)
    async with serving(ObserveSettings(http_port=0), _healthy(), None, limits=limits) as port:
        assert port is not None
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Trickle: ")
        closed = asyncio.create_task(_closed_by_server(reader))
        deadline = asyncio.get_running_loop().time() + SAFETY_S
        while not closed.done() and asyncio.get_running_loop().time() < deadline:
            try:
                writer.write(b"a")
                await writer.drain()
            except ConnectionError:
                break
            await asyncio.wait({closed}, timeout=0.05)
        assert await asyncio.wait_for(closed, 1.0)
        writer.close()
        status, body, _ = await get(f"http://127.0.0.1:{port}/healthz")  # and it serves on
    assert (status, body) == (200, "ok\n")


async def test_many_slow_connections_cannot_crowd_out_a_health_check() -> None:
    """Each open connection costs a file descriptor of the bot's own process: past the bound, the oldest is let go
    to make room, so a flood of half-sent requests neither piles up nor keeps a monitor out."""
    most = 8
    async with serving(
        ObserveSettings(http_port=0), _healthy(), None, limits=ServerLimits(max_connections=most)
    ) as port:
        assert port is not None
        held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(30)]
        for _, writer in held:
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # never finished
        status, body, _ = await get(f"http://127.0.0.1:{port}/healthz")
        closed = [asyncio.create_task(_closed_by_server(reader)) for reader, _ in held]
        deadline = asyncio.get_running_loop().time() + SAFETY_S
        while sum(task.done() for task in closed) < len(held) - most + 1:
            assert asyncio.get_running_loop().time() < deadline, f"{sum(t.done() for t in closed)} closed"
            await asyncio.wait(closed, timeout=0.05, return_when=asyncio.FIRST_COMPLETED)
        still_open = [task for task in closed if not task.done()]
        assert [task for task in closed[-len(still_open) :] if task.done()] == []  # the newest are the ones kept
        for task in still_open:
            task.cancel()
        for _, writer in held:
            writer.close()
    assert (status, body) == (200, "ok\n")


async def test_a_store_that_does_not_answer_gives_503_in_one_line_logged_once(
    rig: BotRig, caplog: pytest.LogCaptureFixture
) -> None:
    """/metrics answers 503 with one plain line (no traceback), /healthz says unhealthy with the same reason, the
    cause is logged once however often they are asked, and both recover with the store."""
    caplog.set_level(logging.INFO, logger="services.observe")
    async with rig.running() as bot, pages(bot) as base:
        assert await wait_for_health(base, 200) == "ok\n"
        async with await rig.open_store() as other:  # another program takes the table away, then gives it back
            await other.database.execute("ALTER TABLE jobs RENAME TO jobs_elsewhere")
            scrapes = [await get(f"{base}/metrics") for _ in range(3)]
            health = await get(f"{base}/healthz")
            await other.database.execute("ALTER TABLE jobs_elsewhere RENAME TO jobs")
        after = await get(f"{base}/metrics")
        healthy_again = await wait_for_health(base, 200)
    said_by_engine = {
        "sqlite": "OperationalError: no such table: jobs",
        "postgresql": 'UndefinedTableError: relation "jobs" does not exist',
    }
    reason = f"the store did not answer ({said_by_engine[pgtest.engine()]})"
    assert {(status, body) for status, body, _ in scrapes} == {(503, f"metrics unavailable: {reason}\n")}
    assert all(kind.startswith("text/plain") for _, _, kind in scrapes)
    assert health[:2] == (503, f"not ready: {reason}\n")
    assert after[0] == 200 and "grokbot_jobs" in after[1] and healthy_again == "ok\n"
    said = [(r.levelno, r.getMessage()) for r in caplog.records if r.name.startswith("services.observe")]
    troubles = [message for level, message in said if level >= logging.WARNING]
    assert troubles == [f"/metrics and /healthz: {reason}"]
    assert not any(r.exc_info for r in caplog.records if r.name.startswith("services.observe"))
    assert "/metrics and /healthz: the store answers again" in [message for _, message in said]


async def test_health_checks_of_a_store_that_hangs_share_one_read_and_answer_in_time(
    discord_emu: DiscordEmulator, xai: XaiEmulator, tmp_path: Path
) -> None:
    """Another program holds the jobs table locked (a long migration, a VACUUM FULL): every read of it waits. Ten
    monitors asking /healthz at once must not put ten reads in the store's queue (each holding one of the bot's
    store connections): they share one, and each hears the reason before Docker's check would give up."""
    async with pgtest.fresh_store_url() as url:
        rig = BotRig(discord_emu, xai, tmp_path, database_url=url)
        async with rig.running() as bot, pages(bot) as base:
            assert await wait_for_health(base, 200) == "ok\n"
            locker, watcher = await asyncpg.connect(url), await asyncpg.connect(url)
            try:
                await locker.execute("BEGIN; LOCK TABLE jobs IN ACCESS EXCLUSIVE MODE")
                started = asyncio.get_running_loop().time()
                asked = [asyncio.create_task(get(f"{base}/healthz")) for _ in range(10)]
                most_waiting = 0
                while not all(task.done() for task in asked):
                    waiting = await watcher.fetchval(
                        "SELECT count(*) FROM pg_stat_activity WHERE query = $1 AND state = 'active'", PROBE
                    )
                    most_waiting = max(most_waiting, int(waiting))
                    await asyncio.wait(asked, timeout=0.05)
                took_s = asyncio.get_running_loop().time() - started
                answers = {(status, body) for status, body, _ in [task.result() for task in asked]}
                await locker.execute("ROLLBACK")
                healthy_again = await wait_for_health(base, 200)
            finally:
                await locker.close()
                await watcher.close()
    assert answers == {(503, f"not ready: the store did not answer within {PROBE_TIMEOUT_S:g} s\n")}
    assert most_waiting == 1 and took_s < DOCKER_CHECK_TIMEOUT_S and healthy_again == "ok\n"
