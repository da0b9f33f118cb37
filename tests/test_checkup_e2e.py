"""``python bot.py check`` as an admin runs it: a real process against both emulators and a real SQLite file."""

from __future__ import annotations

import contextlib
import sqlite3

import pytest

from bot import invite_permissions
from services.checkup import ALL_PERMISSIONS, base_permissions, channel_permissions
from services.permissions import mask as needed_mask
from services.store.store import Store
from tests.botprocess import run_command
from tests.emulators.discord_models import ATTACH_FILES, DEFAULT_MEMBER_PERMISSIONS, EMBED_LINKS, VIEW_CHANNEL
from tests.harness import BotRig

# `check`'s store lines here are the SQLite file's; PostgreSQL's line: tests/test_postgres_startup.py.
pytestmark = pytest.mark.sqlite_only


async def _check(rig: BotRig, **overrides: str) -> tuple[int, str, str]:
    return await run_command("check", env=rig.environment(**overrides), cwd=rig.tmp_path)


def _failures(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("✗")]


async def test_all_good_exits_0_with_the_invite_link(rig: BotRig) -> None:
    """Discord, xAI and the store all fine: every line is ✓, the invite link is printed, exit status 0."""
    status, out, err = await _check(rig)
    assert status == 0, out + err
    assert not _failures(out) and "All good." in out
    assert "logged in as emulated-bot" in out and '"Emulated Guild"' in out and "xAI: the key works" in out
    assert "does not exist yet" in out  # no store yet: it will be created on start
    assert f"client_id={rig.discord.application_id}" in out and f"permissions={invite_permissions().value}" in out
    assert "Traceback" not in out + err
    # It only looked: no commands were synced, no gateway session was opened.
    assert not rig.discord.requests_matching("PUT", r"/commands$") and not rig.discord.gateway_log


async def test_a_rejected_discord_token_is_named_without_showing_it(rig: BotRig) -> None:
    """Discord answering 401 gives one clear line and a non-zero status; the token never appears."""
    status, out, err = await _check(rig, DISCORD_TOKEN="not-the-real-token")
    assert status != 0
    assert any("Discord rejected DISCORD_TOKEN" in line for line in _failures(out)), out
    assert "not-the-real-token" not in out + err and "Invite link" not in out


async def test_a_rejected_xai_key_is_named_without_showing_it(rig: BotRig) -> None:
    """xAI refusing the key gives a line naming XAI_API_KEY; Discord's checks still run and pass."""
    status, out, err = await _check(rig, XAI_API_KEY="xai-wrong-key-0123456789")
    assert status != 0
    assert [line for line in _failures(out) if "XAI_API_KEY" in line], out
    assert "xai-wrong-key-0123456789" not in out + err
    assert "logged in as emulated-bot" in out and "Invite link" in out


async def test_unreachable_services_are_named(rig: BotRig) -> None:
    """Nothing listening at either base URL: one line each, naming the setting to check, exit status non-zero."""
    closed = "http://127.0.0.1:9"  # the discard port: nothing answers there
    status, out, err = await _check(rig, DISCORD_API_BASE_URL=f"{closed}/api/v10", XAI_BASE_URL=f"{closed}/v1")
    assert status != 0 and "Traceback" not in out + err
    failures = _failures(out)
    assert any("Could not reach Discord" in line for line in failures), out
    assert any("Could not reach xAI" in line and "XAI_BASE_URL" in line for line in failures), out


async def test_a_server_where_the_bot_lacks_attach_files_is_named(rig: BotRig) -> None:
    """Permissions come from the bot's roles: @everyone without Attach Files fails the check for that server only."""
    emu = rig.discord
    second = emu.add_guild("Second Server")
    emu.set_role_permissions(second, second, DEFAULT_MEMBER_PERMISSIONS & ~ATTACH_FILES & ~EMBED_LINKS)
    status, out, _ = await _check(rig)
    assert status != 0
    [failure] = _failures(out)
    assert '"Second Server"' in failure and "Attach Files" in failure and "Embed Links" in failure
    assert "View Channel" not in failure
    assert '✓ Server "Emulated Guild"' in out


async def test_a_role_can_give_what_everyone_lacks(rig: BotRig) -> None:
    """A role of the bot's that grants Attach Files makes up for @everyone lacking it."""
    emu = rig.discord
    emu.set_role_permissions(emu.guild_id, emu.guild_id, DEFAULT_MEMBER_PERMISSIONS & ~ATTACH_FILES)
    role = emu.add_role(emu.guild_id, "Grok Video", ATTACH_FILES)
    emu.give_role(emu.guild_id, emu.bot_user_id, role)
    status, out, err = await _check(rig)
    assert status == 0, out + err


async def test_a_channel_that_takes_permissions_away_is_a_note_not_a_failure(rig: BotRig) -> None:
    """Channel overwrites hiding a channel from the bot are listed with a '!' but do not fail the check."""
    emu = rig.discord
    emu.add_channel(emu.guild_id, "mods-only", bot_permissions=0)
    status, out, _ = await _check(rig)
    assert status == 0, out
    [note] = [line for line in out.splitlines() if line.startswith("!")]
    assert "#mods-only (cannot see it)" in note and "#general" not in note


async def test_a_locked_store_is_explained(rig: BotRig) -> None:
    """Another program holding the write lock: the check says the store is locked, and fails."""
    async with await Store.open(rig.database_path):
        pass
    holder = sqlite3.connect(rig.database_path, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        status, out, _ = await _check(rig)
    finally:
        holder.close()
    assert status != 0
    [failure] = _failures(out)
    assert "Store" in failure and "locked" in failure and str(rig.database_path) in failure


async def test_a_store_that_cannot_be_created_is_explained(rig: BotRig) -> None:
    """DATABASE_PATH under a plain file cannot be created: the line says so and names DATABASE_PATH."""
    blocker = rig.tmp_path / "not-a-folder"
    blocker.write_text("x")
    status, out, _ = await _check(rig, DATABASE_PATH=str(blocker / "bot.sqlite3"))
    assert status != 0
    [failure] = _failures(out)
    assert "cannot be created" in failure and "DATABASE_PATH" in failure


async def test_a_file_that_is_not_a_database_is_explained(rig: BotRig) -> None:
    """Garbage at DATABASE_PATH is reported, never a traceback."""
    rig.database_path.parent.mkdir(parents=True)
    rig.database_path.write_bytes(b"this is not sqlite" * 100)
    status, out, err = await _check(rig)
    assert status != 0 and "Traceback" not in out + err
    [failure] = _failures(out)
    assert "not a database" in failure


async def test_an_up_to_date_store_passes(rig: BotRig) -> None:
    """A store the bot already made is at the current schema and writable."""
    async with await Store.open(rig.database_path):
        pass
    status, out, _ = await _check(rig)
    assert status == 0, out
    assert "up to date" in out


async def test_a_missing_setting_stops_with_the_config_line(rig: BotRig) -> None:
    """No DISCORD_TOKEN: the same one line and exit status 78 as the other commands."""
    status, out, err = await _check(rig, DISCORD_TOKEN="")
    assert status == 78
    assert len(err.strip().splitlines()) == 1 and "DISCORD_TOKEN" in err and not out


def test_the_checked_permissions_are_the_invited_ones() -> None:
    """The check looks for exactly what the invite link asks for."""
    assert needed_mask() == invite_permissions().value


def test_permission_arithmetic_follows_discords_order() -> None:
    """@everyone, then roles, then the member; owners and administrators have everything."""
    guild = {
        "id": "1",
        "owner_id": "9",
        "roles": [{"id": "1", "permissions": str(VIEW_CHANNEL)}, {"id": "2", "permissions": str(ATTACH_FILES)}],
    }
    assert base_permissions(guild, ["2"], "5") == VIEW_CHANNEL | ATTACH_FILES
    assert base_permissions(guild, [], "9") == ALL_PERMISSIONS
    admin = {**guild, "roles": [*guild["roles"], {"id": "3", "permissions": str(1 << 3)}]}
    assert base_permissions(admin, ["3"], "5") == ALL_PERMISSIONS
    overwrites = [
        {"id": "1", "type": 0, "allow": "0", "deny": str(ATTACH_FILES)},
        {"id": "2", "type": 0, "allow": str(ATTACH_FILES), "deny": "0"},
        {"id": "5", "type": 1, "allow": "0", "deny": str(VIEW_CHANNEL)},
    ]
    base = VIEW_CHANNEL | ATTACH_FILES
    assert channel_permissions(base, "1", ["2"], "5", overwrites[:2]) == base
    assert channel_permissions(base, "1", [], "5", overwrites[:1]) == VIEW_CHANNEL
    assert channel_permissions(base, "1", ["2"], "5", overwrites) == 0  # no View Channel: nothing at all


async def test_an_older_schema_is_a_note_and_a_newer_one_a_failure(rig: BotRig) -> None:
    """An older store is upgraded on the next start (fine); one from a newer bot cannot be used by this one."""
    async with await Store.open(rig.database_path):
        pass
    with contextlib.closing(sqlite3.connect(rig.database_path)) as db:
        db.execute("PRAGMA user_version = 1")
    status, out, _ = await _check(rig)
    assert status == 0, out
    assert any(line.startswith("! Store") and "will be upgraded" in line for line in out.splitlines()), out
    with contextlib.closing(sqlite3.connect(rig.database_path)) as db:
        db.execute("PRAGMA user_version = 999")
    status, out, _ = await _check(rig)
    assert status != 0
    [failure] = _failures(out)
    assert "newer version of the bot" in failure
