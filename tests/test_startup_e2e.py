"""Starting the bot as an admin does: ``python bot.py`` and ``python bot.py sync`` as real processes."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import discord
import pytest

from bot import invite_permissions
from tests.botprocess import HERMETIC, run_command
from tests.emulators.discord_emulator import DiscordEmulator
from tests.emulators.xai_emulator import XaiEmulator
from tests.harness import BotRig

ROOT = Path(__file__).resolve().parent.parent
MESSAGE_CONTENT_INTENT = 1 << 15
MEMBERS_INTENT = 1 << 1


def _environment(rig: BotRig, **overrides: str) -> dict[str, str]:
    values = rig.environment(**overrides)
    values.pop("DISCORD_GATEWAY_URL")  # the bot must ask the base URL for its gateway
    return {"PATH": os.environ.get("PATH", ""), **HERMETIC, **values}


async def _start(rig: BotRig, *args: str, **overrides: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "bot.py"),
        *args,
        cwd=rig.tmp_path,
        env=_environment(rig, **overrides),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def test_the_bot_starts_syncs_serves_and_stops_cleanly(rig: BotRig) -> None:
    """Gateway discovered from the REST base, commands synced to the dev server, invite logged, SIGTERM exits 0."""
    emu = rig.discord
    process = await _start(rig)
    await emu.wait_for(lambda: any(entry["event"] == "identify" for entry in emu.gateway_log), timeout=30)
    await emu.wait_for(lambda: emu.guild_id in emu.commands, timeout=30)
    interaction = await emu.slash("video", {"prompt": "a lantern in fog"})
    await emu.wait_for_message(lambda m: any(a.filename.endswith(".mp4") for a in m.attachments), timeout=30)
    assert interaction.ack_type == 5
    process.send_signal(signal.SIGTERM)
    _, err = await asyncio.wait_for(process.communicate(), 10)
    log = err.decode()
    assert process.returncode == 0, log
    assert emu.requests_matching("GET", r"/gateway/bot$")
    assert "Invite me with: https://discord.com/oauth2/authorize?client_id=" in log
    assert f"permissions={invite_permissions().value}" in log and "scope=bot+applications.commands" in log
    assert "Traceback" not in log
    names = {command["name"] for command in emu.commands[emu.guild_id]}
    assert {"video", "myvideos", "Animate with Grok", "Edit video with Grok"} <= names


async def test_no_privileged_intent_is_requested_by_default(rig: BotRig) -> None:
    """/video needs neither Message Content nor Members; the client's default mentions are none."""
    async with rig.running() as bot:
        identify = next(entry for entry in rig.discord.gateway_log if entry["event"] == "identify")
        assert bot.allowed_mentions is not None and bot.allowed_mentions.to_dict()["parse"] == []
    intents = int(identify["intents"])
    assert not intents & MESSAGE_CONTENT_INTENT and not intents & MEMBERS_INTENT


async def test_commands_are_synced_only_when_they_change(rig: BotRig) -> None:
    """A second start with the same commands does not sync; `python bot.py sync` forces it."""
    emu = rig.discord

    def puts() -> int:
        return len(emu.requests_matching("PUT", r"/commands$"))

    async with rig.running():
        pass
    async with rig.running():
        pass
    assert puts() == 1
    process = await _start(rig, "sync")
    _, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, err.decode()
    assert puts() == 2


async def test_without_a_token_the_bot_says_where_to_get_one(rig: BotRig) -> None:
    """One clear line, exit status 78, no traceback."""
    process = await _start(rig, DISCORD_TOKEN="")
    _, err = await asyncio.wait_for(process.communicate(), 30)
    text = err.decode().strip()
    assert process.returncode == 78
    assert len(text.splitlines()) == 1 and "DISCORD_TOKEN" in text and "discord.com/developers" in text


async def test_a_rejected_token_is_explained(discord_emu: DiscordEmulator, xai: XaiEmulator, tmp_path: Path) -> None:
    """Discord refusing the token ends with a line telling where to copy a fresh one."""
    rig = BotRig(discord_emu, xai, tmp_path)
    process = await _start(rig, DISCORD_TOKEN="not-the-token", DISCORD_GATEWAY_URL=discord_emu.gateway_url)
    _, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 78
    assert "Discord rejected DISCORD_TOKEN" in err.decode() and "not-the-token" not in err.decode()


def test_the_invite_asks_for_exactly_what_delivery_needs() -> None:
    """View Channel, Send Messages (also in threads), Attach Files, Embed Links, Read Message History."""
    expected = discord.Permissions(
        view_channel=True,
        send_messages=True,
        send_messages_in_threads=True,
        attach_files=True,
        embed_links=True,
        read_message_history=True,
    )
    assert invite_permissions() == expected


@pytest.mark.sqlite_only  # names the SQLite file
async def test_start_up_says_which_env_file_it_read(rig: BotRig) -> None:
    """A .env in the working directory is read and named in the log; the environment still wins over it."""
    settings = rig.environment()
    (rig.tmp_path / ".env").write_text(
        "".join(f"{name}={value}\n" for name, value in settings.items() if name != "DEV_GUILD_ID")
        + "DEV_GUILD_ID=1\n"  # overridden below: a sync to guild 1 would fail
    )
    env = {"ENV_FILE": "", "DEV_GUILD_ID": str(rig.discord.guild_id)}
    status, _, err = await run_command("sync", env=env, cwd=rig.tmp_path)
    assert status == 0, err
    assert f"Settings: read {rig.tmp_path.resolve() / '.env'}" in err
    assert f"Store: {rig.database_path}" in err
    if (ROOT / ".env").exists():
        return  # a developer's own .env beside bot.py would be read here: the next part cannot hold
    status, _, err = await run_command("sync", env={**rig.environment(), "ENV_FILE": ""}, cwd=rig.tmp_path / "data")
    assert status == 0, err
    assert "Settings: no .env file in" in err and "using the environment only" in err
