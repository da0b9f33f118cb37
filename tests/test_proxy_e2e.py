"""HTTPS_PROXY / HTTP_PROXY / NO_PROXY: every client of the bot goes through the proxy, unless NO_PROXY says not.

The services here speak plain http on 127.0.0.1, so HTTP_PROXY is the variable that applies (HTTPS_PROXY
does the same for https addresses such as api.x.ai and discord.com).
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.botprocess import BotProcess, run_command
from tests.emulators.discord_emulator import DiscordEmulator
from tests.emulators.xai_emulator import XaiEmulator
from tests.harness import BotRig
from tests.recording_proxy import RecordingProxy


@pytest.fixture
async def proxy() -> AsyncIterator[RecordingProxy]:
    async with RecordingProxy() as recording:
        yield recording


def _generate_env(xai: XaiEmulator, tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        "XAI_API_KEY": xai.api_key,
        "XAI_BASE_URL": xai.base_url,
        "XAI_FIRST_POLL_SECONDS": "0.1",
        "XAI_MAX_REQUESTS_PER_MINUTE": "6000",
        "DATABASE_PATH": str(tmp_path / "jobs.sqlite3"),
        **extra,
    }


async def test_the_xai_client_goes_through_http_proxy(proxy: RecordingProxy, xai: XaiEmulator, tmp_path: Path) -> None:
    """`generate` with HTTP_PROXY set: the submit, every poll and the download pass the proxy."""
    env = _generate_env(xai, tmp_path, HTTP_PROXY=proxy.url)
    status, _, err = await run_command("generate", "a fox", "--out", "fox.mp4", env=env, cwd=tmp_path)
    assert status == 0, err
    through = proxy.seen_for(xai.base_url)
    assert [f for f in through if f.method == "POST" and f.url.endswith("/v1/videos/generations")]
    assert len([f for f in through if "/v1/videos/" in f.url]) >= len(xai.requests)
    assert (tmp_path / "fox.mp4").read_bytes() == xai.output_video


async def test_no_proxy_covering_the_host_goes_direct(proxy: RecordingProxy, xai: XaiEmulator, tmp_path: Path) -> None:
    """The same with NO_PROXY=127.0.0.1: the proxy sees nothing, the video still arrives."""
    env = _generate_env(xai, tmp_path, HTTP_PROXY=proxy.url, NO_PROXY="localhost,127.0.0.1")
    status, _, err = await run_command("generate", "a fox", "--out", "fox.mp4", env=env, cwd=tmp_path)
    assert status == 0, err
    assert not proxy.seen and xai.requests


async def test_check_goes_through_the_proxy(proxy: RecordingProxy, rig: BotRig) -> None:
    """`check` asks Discord and xAI through the proxy too."""
    env = rig.environment(HTTP_PROXY=proxy.url)
    status, out, err = await run_command("check", env=env, cwd=rig.tmp_path)
    assert status == 0, out + err
    assert [f for f in proxy.seen_for(rig.discord.api_base_url) if f.url.endswith("/users/@me")]
    assert proxy.seen_for(rig.xai.base_url)


async def test_the_bot_reaches_discord_and_xai_through_the_proxy(
    proxy: RecordingProxy, discord_emu: DiscordEmulator, xai: XaiEmulator, tmp_path: Path
) -> None:
    """discord.py's REST calls and gateway, xAI and attachments all pass the proxy, with its credentials."""
    proxy_url = proxy.url.replace("http://", "http://grok:proxy-pass-42@")
    bot = BotProcess(discord_emu, xai, tmp_path, overrides={"HTTP_PROXY": proxy_url, "DISCORD_GATEWAY_URL": ""})
    await bot.start()
    try:
        await discord_emu.slash("video", {"prompt": "a lantern in fog"})
        await discord_emu.wait_for_message(lambda m: any(a.filename.endswith(".mp4") for a in m.attachments), 30)
        assert await bot.terminate() == 0
    finally:
        await bot.stop_quietly()
    to_discord = proxy.seen_for(discord_emu.api_base_url)
    urls = [f.url for f in to_discord]
    assert any(url.endswith("/gateway/bot") for url in urls)  # the gateway lookup
    assert any(url.endswith("/users/@me") for url in urls)  # discord.py's log-in
    assert any(url.startswith(discord_emu.gateway_url) for url in urls)  # the websocket
    assert any(f.method == "POST" and "/v1/videos/" in f.url for f in proxy.seen_for(xai.base_url))
    expected = "Basic " + base64.b64encode(b"grok:proxy-pass-42").decode()
    assert {f.proxy_authorization for f in proxy.seen} == {expected}
    assert "proxy-pass-42" not in bot.all_logs()
    assert "Discord is reached through the proxy http://127.0.0.1:" in bot.all_logs()


async def test_the_bot_honours_no_proxy(
    proxy: RecordingProxy, discord_emu: DiscordEmulator, xai: XaiEmulator, tmp_path: Path
) -> None:
    """With NO_PROXY covering 127.0.0.1 neither discord.py nor the bot's own sessions use the proxy."""
    overrides = {"HTTP_PROXY": proxy.url, "NO_PROXY": "127.0.0.1", "DISCORD_GATEWAY_URL": ""}
    bot = BotProcess(discord_emu, xai, tmp_path, overrides=overrides)
    await bot.start()
    try:
        await discord_emu.slash("video", {"prompt": "a lantern in fog"})
        await discord_emu.wait_for_message(lambda m: any(a.filename.endswith(".mp4") for a in m.attachments), 30)
    finally:
        await bot.stop_quietly()
    assert not proxy.seen
