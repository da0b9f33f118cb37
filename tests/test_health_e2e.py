"""``/healthz``: 200 only while the gateway is connected and the scheduler loop is alive, 503 with the reason."""

from __future__ import annotations

import asyncio
import logging
import socket
from pathlib import Path

import pytest

from services.cli import EXIT_CONFIG
from services.config import ConfigError, ObserveSettings, load_settings
from services.observe.health import GatewayWatch, Health, heartbeat_check, unless_standing_by
from services.observe.metrics import Readings
from services.observe.server import serving
from tests.botprocess import BotProcess, run_command
from tests.harness import BotRig
from tests.observe_pages import get, metrics, pages, wait_for_health


async def test_healthy_bot_answers_200_and_a_stopped_scheduler_503(rig: BotRig) -> None:
    """The real bot against both emulators: ok while everything runs; the scheduler stopped is named."""
    async with rig.running() as bot, pages(bot) as base:
        assert await wait_for_health(base, 200) == "ok\n"
        await bot.runtime.scheduler.stop()
        body = await wait_for_health(base, 503)
    assert body == "not ready: the scheduler loop is not running\n"


class _Beating:
    """A scheduler whose loop last went round ``age`` seconds ago (None: not running)."""

    def __init__(self, age: float | None) -> None:
        self.age = age

    def heartbeat_age(self) -> float | None:
        return self.age


def test_a_stale_heartbeat_and_a_lost_shard_are_unhealthy() -> None:
    """A loop that stopped going round counts as stopped; with shards, each shard's connection counts."""
    now = [100.0]
    gateway = GatewayWatch(clock=lambda: now[0])
    scheduler = _Beating(1.0)
    health = Health(gateway, heartbeat_check(scheduler, stale_after_s=60))
    assert health.problems() == ["the Discord gateway has not connected yet (for 0 s)"]
    gateway.up()
    assert health.problems() == []
    scheduler.age = 61.0
    assert health.problems() == ["the scheduler loop has not gone round for 61 s"]
    scheduler.age = 2.0
    gateway.up(0)
    gateway.up(1)
    gateway.down(1)
    now[0] += 12
    assert health.problems() == ["Discord gateway shard(s) 1 not connected (for 12 s)"]
    gateway.up(1)
    assert health.problems() == []
    leads = [False]
    health.scheduler_check = unless_standing_by(lambda: not leads[0], health.scheduler_check)
    scheduler.age = None  # a cluster's non-leader runs no scheduler, and is healthy
    assert health.problems() == []
    leads[0] = True  # elected: now its loop must run
    assert health.problems() == ["the scheduler loop is not running"]


async def test_without_http_port_nothing_is_served() -> None:
    health = Health(GatewayWatch(), lambda: None)
    async with serving(ObserveSettings(), health, Readings.__new__(Readings)) as port:
        assert port is None


def test_bad_http_settings_are_refused_by_name() -> None:
    base = {"XAI_API_KEY": "xai-key", "DISCORD_TOKEN": "token"}
    assert load_settings(base).observe == ObserveSettings()
    every_interface = "0.0.0.0"  # noqa: S104 - read as a setting, nothing is bound here
    chosen = load_settings({**base, "HTTP_PORT": "9100", "HTTP_HOST": every_interface, "LOG_FORMAT": "JSON"}).observe
    assert chosen == ObserveSettings(http_port=9100, http_host=every_interface, log_format="json")
    with pytest.raises(ConfigError, match=r"HTTP_PORT='80000' is not valid: it should be a port number"):
        load_settings({**base, "HTTP_PORT": "80000"})
    with pytest.raises(ConfigError, match=r"LOG_FORMAT='yaml' is not valid: it should be text or json"):
        load_settings({**base, "LOG_FORMAT": "yaml"})


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_python_bot_py_serves_health_and_says_when_the_gateway_is_gone(bot: BotProcess) -> None:
    """``python bot.py`` with HTTP_PORT: 200 once connected, metrics on the same port; Discord gone is a 503
    naming the gateway, while the scheduler (which needs no Discord) is still fine; SIGTERM ends it cleanly."""
    port = _free_port()
    bot.overrides["HTTP_PORT"] = str(port)
    base = f"http://127.0.0.1:{port}"
    await bot.start()
    assert await wait_for_health(base, 200, timeout=60) == "ok\n"
    assert (await metrics(base))[("grokbot_up", ())] == 1
    status, _, _ = await get(f"{base}/nothing-here")
    assert status == 404
    await bot.discord.stop()  # the gateway goes away, and does not come back
    body = await wait_for_health(base, 503, timeout=60)
    assert body.startswith("not ready: the Discord gateway is not connected (for ")
    assert "scheduler" not in body
    assert (await metrics(base))[("grokbot_up", ())] == 0
    assert await bot.terminate(timeout=30) == 0
    assert f"Serving /healthz and /metrics on http://127.0.0.1:{port}" in bot.log()


async def test_an_http_port_in_use_stops_the_bot_at_start_with_one_line(bot: BotProcess, tmp_path: Path) -> None:
    """Running on without its pages would let a monitor read another process's /healthz on that port and call
    this one healthy; like every other setting that cannot work, it is refused at start (exit 78)."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = int(taken.getsockname()[1])
        env = {**bot.environment(), "HTTP_PORT": str(port)}
        status, _, err = await run_command("run", env=env, cwd=tmp_path)
    assert status == EXIT_CONFIG, err
    assert err.strip().splitlines()[-1] == (
        f"error: HTTP_PORT={port} is in use on 127.0.0.1 (another program, or another bot process, listens "
        "there): set HTTP_PORT to a free port"
    )


async def test_an_http_host_that_is_not_this_machines_is_refused_by_name() -> None:
    health = Health(GatewayWatch(), lambda: None)
    refused = r"^HTTP_HOST='not a host' is not an address to listen on \(.+\): it should be one of this machine's"
    with pytest.raises(ConfigError, match=refused):
        async with serving(ObserveSettings(http_port=_free_port(), http_host="not a host"), health, None):
            pass


async def test_a_malformed_request_is_refused_without_a_traceback_in_the_log(caplog: pytest.LogCaptureFixture) -> None:
    """Anyone who can reach the port (HTTP_HOST=0.0.0.0) could otherwise fill the log with ERROR tracebacks."""
    watch = GatewayWatch()
    watch.up()
    async with serving(ObserveSettings(http_port=0), Health(watch, lambda: None), None) as port:
        assert port is not None
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Huge: " + b"a" * 20_000 + b"\r\n\r\n")
        status_line = await reader.readline()
        writer.close()
        assert status_line.startswith(b"HTTP/1.0 400") or status_line.startswith(b"HTTP/1.1 400"), status_line
        status, body, _ = await get(f"http://127.0.0.1:{port}/healthz")  # the server serves on
        assert (status, body) == (200, "ok\n")
    assert [record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING] == []
