"""Start-up's small parts: the proxy discord.py is handed, the retry delays, the stop that cuts a wait short."""

from __future__ import annotations

import asyncio
import logging

import pytest

from services.process.proxies import proxy_for, proxy_passwords
from services.process.startup import Backoff, Stopped, StopSignal, tidy_discord_log

PROXY_VARIABLES = ("HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY", "ALL_PROXY", "WS_PROXY", "WSS_PROXY")


@pytest.fixture
def clean_proxy_environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    return monkeypatch


def test_proxy_for_reads_the_environment_like_aiohttp(clean_proxy_environment: pytest.MonkeyPatch) -> None:
    """HTTPS_PROXY for https, HTTP_PROXY for http, NO_PROXY wins; credentials leave the URL for proxy_auth."""
    env = clean_proxy_environment
    assert proxy_for("https://discord.com/api/v10").url is None
    env.setenv("HTTPS_PROXY", "http://user:p%40ss@proxy.internal:3128")
    env.setenv("HTTP_PROXY", "http://plain.internal:8080")
    secure = proxy_for("https://discord.com/api/v10")
    assert secure.url == "http://proxy.internal:3128" and secure.shown == "http://proxy.internal:3128"
    assert secure.auth is not None and (secure.auth.login, secure.auth.password) == ("user", "p@ss")
    assert proxy_for("http://127.0.0.1:5000/api/v10").url == "http://plain.internal:8080"
    env.setenv("NO_PROXY", "localhost,.discord.com,discord.com")
    assert proxy_for("https://discord.com/api/v10").url is None
    assert proxy_for("https://api.x.ai/v1").url == "http://proxy.internal:3128"
    env.setenv("NO_PROXY", "*")
    assert proxy_for("https://api.x.ai/v1").url is None


def test_proxy_passwords_are_found_for_the_redactor(clean_proxy_environment: pytest.MonkeyPatch) -> None:
    """A password in HTTPS_PROXY is handed to the log redactor (decoded, as it would be sent)."""
    clean_proxy_environment.setenv("HTTPS_PROXY", "http://user:s%3Acret@proxy.internal:3128")
    clean_proxy_environment.setenv("NO_PROXY", "localhost")
    assert proxy_passwords() == ["s:cret"]


def test_backoff_doubles_up_to_its_cap() -> None:
    """5, 10, 20, 40, then 60 s for ever: quick after a blip, calm through an outage."""
    backoff = Backoff(5, 60)
    assert [backoff.next_delay() for _ in range(6)] == [5, 10, 20, 40, 60, 60]


async def test_a_stop_cuts_a_wait_short() -> None:
    """sleep() raises Stopped as soon as stop() is called, long before its time is up."""
    stop = StopSignal()
    asyncio.get_running_loop().call_later(0.05, stop.stop)
    with pytest.raises(Stopped):
        await stop.sleep(30)


async def test_a_stop_cancels_work_in_flight() -> None:
    """unless_stopped() cancels the work (a log-in that hangs) and raises Stopped; finished work is returned."""
    stop = StopSignal()
    assert await stop.unless_stopped(asyncio.sleep(0, result="done")) == "done"
    cancelled = asyncio.Event()

    async def hangs() -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    asyncio.get_running_loop().call_later(0.05, stop.stop)
    with pytest.raises(Stopped):
        await stop.unless_stopped(hangs())
    assert cancelled.is_set()


async def test_after_on_stop_a_stop_runs_the_orderly_close() -> None:
    """Once connected, a stop runs the close it was given instead (and drain() waits for it)."""
    stop = StopSignal()
    closed: list[str] = []

    async def close() -> None:
        await asyncio.sleep(0.01)
        closed.append("closed")

    stop.on_stop(close)
    stop.stop()
    stop.stop()  # a second SIGTERM changes nothing
    await stop.drain()
    assert closed == ["closed"]


def test_discord_reconnect_tracebacks_become_one_line() -> None:
    """discord.py's 'Attempting a reconnect' traceback turns into one warning line; its voice warnings go."""
    logger = logging.getLogger("tests.fake_discord_client")
    tidy_discord_log(logger)
    tidy_discord_log(logger)  # installed once, however often logging is set up
    seen: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    handler = Keep()
    logger.addHandler(handler)
    try:
        try:
            raise ConnectionRefusedError(111, "Connection refused")
        except OSError:
            logger.exception("Attempting a reconnect in %.2fs", 1.5)
        logger.warning("PyNaCl is not installed, voice will NOT be supported")
    finally:
        logger.removeHandler(handler)
    [record] = seen
    assert record.levelname == "WARNING" and record.exc_info is None
    assert record.getMessage() == "Lost the connection to Discord's gateway (Connection refused); reconnecting in 2 s"
    assert len(logger.filters) == 1
