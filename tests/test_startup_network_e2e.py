"""Start-up without a network: one line, tries again with backoff, connects when Discord is back, stops on SIGTERM.

The Discord emulator binds its port when it is built but answers only once started, so until then a
connection to it is refused, exactly like a Discord nobody can reach.
"""

from __future__ import annotations

import asyncio
import signal
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.botprocess import BotProcess
from tests.emulators.discord_emulator import DiscordEmulator
from tests.emulators.xai_emulator import XaiEmulator

RETRY_LINE = "trying again in"
QUICK_RETRIES = {"DISCORD_RETRY_FIRST_SECONDS": "0.2", "DISCORD_RETRY_MAX_SECONDS": "0.4"}
SLOW_RETRIES = {"DISCORD_RETRY_FIRST_SECONDS": "30", "DISCORD_RETRY_MAX_SECONDS": "60"}


@pytest.fixture
async def discord_down() -> AsyncIterator[DiscordEmulator]:
    """A Discord emulator that is not answering yet (``await emu.start()`` brings it up)."""
    emulator = DiscordEmulator()
    try:
        yield emulator
    finally:
        await emulator.stop()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _no_tracebacks(log: str) -> None:
    assert "Traceback" not in log and not [line for line in log.splitlines() if line.startswith("  File ")], log


@pytest.mark.parametrize("ask_gateway", [True, False], ids=["gateway-lookup", "login"])
async def test_discord_down_at_start_is_one_line_then_it_connects(
    discord_down: DiscordEmulator, xai: XaiEmulator, tmp_path: Path, ask_gateway: bool
) -> None:
    """Each failed try is one line naming what to reach; once Discord answers the bot logs in and serves."""
    bot = BotProcess(discord_down, xai, tmp_path, overrides=dict(QUICK_RETRIES))
    if ask_gateway:
        bot.overrides["DISCORD_GATEWAY_URL"] = ""  # configure_endpoints asks the base URL first
    await bot.spawn()
    try:
        log = await bot.wait_for_log(RETRY_LINE, count=3)
        assert bot.alive
        _no_tracebacks(log)
        retries = [line for line in log.splitlines() if RETRY_LINE in line]
        assert all("Could not reach Discord at" in line and discord_down.api_base_url in line for line in retries)
        assert all("Connect call failed" in line or "Connection refused" in line for line in retries), retries
        await discord_down.start()
        await discord_down.wait_for(lambda: bool(discord_down.gateway.connected_sessions()), 30)
        await discord_down.slash("video", {"prompt": "a lantern in fog"})
        await discord_down.wait_for_message(lambda m: any(a.filename.endswith(".mp4") for a in m.attachments), 30)
        assert await bot.terminate() == 0
        _no_tracebacks(bot.log())
    finally:
        await bot.stop_quietly()


async def test_sigterm_while_waiting_to_retry_exits_at_once(
    discord_down: DiscordEmulator, xai: XaiEmulator, tmp_path: Path
) -> None:
    """SIGTERM during a 30-second wait ends the process within seconds, with status 0 and no traceback."""
    bot = BotProcess(discord_down, xai, tmp_path, overrides=dict(SLOW_RETRIES))
    await bot.spawn()
    try:
        log = await bot.wait_for_log(RETRY_LINE)
        assert "trying again in 30 s" in log
        assert await bot.terminate(timeout=5) == 0
        _no_tracebacks(bot.log())
        assert len([line for line in bot.log().splitlines() if RETRY_LINE in line]) == 1
    finally:
        await bot.stop_quietly()


async def test_sigterm_while_logging_in_exits_at_once(xai: XaiEmulator, tmp_path: Path) -> None:
    """A Discord that accepts the connection but never answers: SIGTERM during that log-in still ends it (0)."""

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # hear the request, never answer
        writer.close()

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server, DiscordEmulator() as emu:
        overrides = {"DISCORD_API_BASE_URL": f"http://127.0.0.1:{port}/api/v10", "DISCORD_GATEWAY_URL": emu.gateway_url}
        bot = BotProcess(emu, xai, tmp_path, overrides=overrides)
        await bot.spawn()
        try:
            await bot.wait_for_log("logging in using static token")
            await asyncio.sleep(0.3)  # the request is on the wire, unanswered
            assert bot.alive
            assert await bot.terminate(timeout=5) == 0
            _no_tracebacks(bot.log())
        finally:
            await bot.stop_quietly()
        server.close()


async def test_ctrl_c_while_waiting_to_retry_exits_130(
    discord_down: DiscordEmulator, xai: XaiEmulator, tmp_path: Path
) -> None:
    """Ctrl-C (SIGINT) during the wait: status 130, no traceback."""
    bot = BotProcess(discord_down, xai, tmp_path, overrides=dict(SLOW_RETRIES))
    await bot.spawn()
    try:
        await bot.wait_for_log(RETRY_LINE)
        assert bot.process is not None
        bot.process.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(bot.process.wait(), 5) == 130
        _no_tracebacks(bot.log())
    finally:
        await bot.stop_quietly()


async def test_the_retry_delays_double_up_to_the_cap(
    discord_down: DiscordEmulator, xai: XaiEmulator, tmp_path: Path
) -> None:
    """0.2 s, 0.4 s, then the 0.5 s cap: the numbers in the lines follow the settings."""
    overrides = {"DISCORD_RETRY_FIRST_SECONDS": "0.2", "DISCORD_RETRY_MAX_SECONDS": "0.5"}
    bot = BotProcess(discord_down, xai, tmp_path, overrides=overrides)
    await bot.spawn()
    try:
        log = await bot.wait_for_log(RETRY_LINE, count=4)
        delays = [line.rsplit(RETRY_LINE, 1)[1].strip() for line in log.splitlines() if RETRY_LINE in line]
        assert delays[:4] == ["0.2 s", "0.4 s", "0.5 s", "0.5 s"]
    finally:
        await bot.stop_quietly()


async def test_sync_waits_for_discord_too(discord_down: DiscordEmulator, xai: XaiEmulator, tmp_path: Path) -> None:
    """`python bot.py sync` with Discord down tries again, then pushes the commands and exits 0."""
    bot = BotProcess(discord_down, xai, tmp_path, overrides=dict(QUICK_RETRIES))
    await bot.spawn("sync")
    try:
        await bot.wait_for_log(RETRY_LINE)
        await discord_down.start()
        assert bot.process is not None
        assert await asyncio.wait_for(bot.process.wait(), 30) == 0, bot.log()
        assert discord_down.requests_matching("PUT", r"/commands$")
        _no_tracebacks(bot.log())
    finally:
        await bot.stop_quietly()


async def test_a_rejected_token_is_not_retried(discord_emu: DiscordEmulator, xai: XaiEmulator, tmp_path: Path) -> None:
    """Discord answering 401 is final: one request, one line, status 78, the token never shown."""
    overrides = {**QUICK_RETRIES, "DISCORD_TOKEN": "not-the-token", "DISCORD_GATEWAY_URL": ""}
    bot = BotProcess(discord_emu, xai, tmp_path, overrides=overrides)
    await bot.spawn()
    assert bot.process is not None
    assert await asyncio.wait_for(bot.process.wait(), 30) == 78
    log = bot.log()
    assert "Discord rejected DISCORD_TOKEN" in log and RETRY_LINE not in log and "not-the-token" not in log
    assert len(discord_emu.requests_matching("GET", r"/gateway/bot$")) == 1
    _no_tracebacks(log)


async def test_a_gateway_nobody_answers_is_a_line_per_try_and_sigterm_still_stops_it(
    discord_emu: DiscordEmulator, xai: XaiEmulator, tmp_path: Path
) -> None:
    """REST answers but the gateway does not: discord.py's own reconnects log one line each, never a traceback."""
    gateway = f"ws://127.0.0.1:{_closed_port()}/gateway"
    bot = BotProcess(discord_emu, xai, tmp_path, overrides={"DISCORD_GATEWAY_URL": gateway})
    await bot.spawn()
    try:
        log = await bot.wait_for_log("Lost the connection to Discord's gateway")
        _no_tracebacks(log)
        assert bot.alive
        assert await bot.terminate(timeout=10) == 0
    finally:
        await bot.stop_quietly()


async def test_a_dev_guild_the_bot_is_not_in_is_named(
    discord_emu: DiscordEmulator, xai: XaiEmulator, tmp_path: Path
) -> None:
    """Syncing to a DEV_GUILD_ID without the bot (Discord: 403) is one line naming DEV_GUILD_ID, status 78."""
    other = discord_emu.mint_snowflake()
    bot = BotProcess(discord_emu, xai, tmp_path, overrides={"DEV_GUILD_ID": str(other)})
    await bot.spawn()
    assert bot.process is not None
    assert await asyncio.wait_for(bot.process.wait(), 30) == 78
    log = bot.log()
    [line] = [line for line in log.splitlines() if line.startswith("error:")]
    assert f"DEV_GUILD_ID={other}" in line and "403" in line
    _no_tracebacks(log)


async def test_a_refused_message_content_intent_is_named(xai: XaiEmulator, tmp_path: Path) -> None:
    """ENABLE_REPLY_TRIGGER=true while the portal has the intent off: one line saying where to turn it on."""
    async with DiscordEmulator(message_content_intent_allowed=False) as emu:
        bot = BotProcess(emu, xai, tmp_path, overrides={"ENABLE_REPLY_TRIGGER": "true"})
        await bot.spawn()
        assert bot.process is not None
        assert await asyncio.wait_for(bot.process.wait(), 30) == 78
    log = bot.log()
    [line] = [line for line in log.splitlines() if line.startswith("error:")]
    assert "Message Content Intent" in line and "ENABLE_REPLY_TRIGGER=false" in line
    _no_tracebacks(log)
