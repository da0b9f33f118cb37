"""``python bot.py check``: is this installation ready? Settings, Discord, xAI and the store, in plain words.

Each check yields findings (one line each, ✓ / ✗, or ! for something worth knowing that still works),
so an admin sees at once what to fix. Discord is asked through its REST API with plain aiohttp, so the
check works without logging a gateway session in; permissions are computed from the bot's roles (and
each text channel's overwrites) the way Discord computes them.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import aiosqlite

from services.config import DISCORD_REFUSED_LOGIN, DiscordSettings, Settings, XaiSettings
from services.permissions import VIEW_CHANNEL, missing
from services.process import instance_lock, pgtools, proxies
from services.store.migrations import MIGRATIONS
from services.store.patience import is_busy
from services.xai.client import XaiClient
from services.xai.errors import XaiAuthError, XaiCreditsExhausted, XaiError, XaiUnavailable

DISCORD_API = "https://discord.com/api/v10"
ADMINISTRATOR = 1 << 3
ALL_PERMISSIONS = (1 << 53) - 1
TEXT_CHANNEL_TYPES = frozenset({0, 5})  # text and announcement channels
MAX_CHANNELS_LISTED = 5
MAX_RETRIES_429 = 3


@dataclass(frozen=True, slots=True)
class Finding:
    """One line of the report. ``ok=False`` makes the check fail; ``note`` marks an ok line worth a look."""

    ok: bool
    text: str
    note: bool = False

    def line(self) -> str:
        return f"{'!' if self.note else '✓' if self.ok else '✗'} {self.text}"


@dataclass(slots=True)
class Report:
    findings: list[Finding] = field(default_factory=list)
    application_id: int | None = None
    # The store was written by a newer version: every command refuses it, with exit status 78.
    newer_store: bool = False

    @property
    def ok(self) -> bool:
        return all(finding.ok for finding in self.findings)

    def add(self, ok: bool, text: str, *, note: bool = False) -> None:
        self.findings.append(Finding(ok, text, note))


# -- permission arithmetic, as Discord documents it -----------------------------------------------------


def base_permissions(guild: Mapping[str, Any], member_role_ids: Iterable[str], user_id: str) -> int:
    """A member's server-wide permissions: @everyone plus each of their roles; owners and admins get all."""
    if str(guild.get("owner_id")) == user_id:
        return ALL_PERMISSIONS
    roles = {str(role["id"]): int(role.get("permissions") or 0) for role in guild.get("roles") or []}
    permissions = roles.get(str(guild["id"]), 0)
    for role_id in member_role_ids:
        permissions |= roles.get(str(role_id), 0)
    return ALL_PERMISSIONS if permissions & ADMINISTRATOR else permissions


def channel_permissions(
    base: int, guild_id: str, member_role_ids: Iterable[str], user_id: str, overwrites: Sequence[Mapping[str, Any]]
) -> int:
    """Base permissions after a channel's overwrites: @everyone, then the member's roles together, then the member."""
    if base & ADMINISTRATOR:
        return ALL_PERMISSIONS
    by_id = {str(o.get("id")): (int(o.get("allow") or 0), int(o.get("deny") or 0)) for o in overwrites}
    permissions = base
    allow, deny = by_id.get(guild_id, (0, 0))
    permissions = (permissions & ~deny) | allow
    roles_allow = roles_deny = 0
    for role_id in member_role_ids:
        role_allow, role_deny = by_id.get(str(role_id), (0, 0))
        roles_allow, roles_deny = roles_allow | role_allow, roles_deny | role_deny
    permissions = (permissions & ~roles_deny) | roles_allow
    member = [o for o in overwrites if str(o.get("id")) == user_id and int(o.get("type", 1)) == 1]
    if member:
        permissions = (permissions & ~int(member[0].get("deny") or 0)) | int(member[0].get("allow") or 0)
    return permissions if permissions & VIEW_CHANNEL.bit else 0


# -- Discord ----------------------------------------------------------------------------------------------


class _DiscordRefused(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class _DiscordApi:
    """The few REST calls the check needs, with Discord's 429s waited out."""

    def __init__(self, session: aiohttp.ClientSession, settings: DiscordSettings) -> None:
        self.session = session
        self.base = settings.api_base_url or DISCORD_API
        self.headers = {"Authorization": f"Bot {settings.token.reveal()}", "User-Agent": "grok-video-bot check"}

    async def get(self, path: str, **params: str) -> Any:
        for _ in range(MAX_RETRIES_429 + 1):
            async with self.session.get(f"{self.base}{path}", headers=self.headers, params=params) as response:
                if response.status == 429:
                    body = await response.json(content_type=None)
                    await asyncio.sleep(min(float(body.get("retry_after") or 1.0), 10.0))
                    continue
                if response.status >= 400:
                    raise _DiscordRefused(response.status)
                return await response.json(content_type=None)
        raise _DiscordRefused(429)


async def check_discord(session: aiohttp.ClientSession, settings: DiscordSettings, report: Report) -> None:
    """Who the bot is, which servers it is in, and whether it may post videos in each."""
    api = _DiscordApi(session, settings)
    try:
        me = await api.get("/users/@me")
    except _DiscordRefused as refused:
        if refused.status == 401:
            report.add(False, DISCORD_REFUSED_LOGIN)
        else:
            report.add(False, f"Discord answered HTTP {refused.status} when asked who the bot is; try again later")
        return
    except (aiohttp.ClientError, TimeoutError) as error:
        report.add(False, f"Could not reach Discord at {api.base} ({type(error).__name__}); check the network")
        return
    user_id = str(me["id"])
    report.application_id = int(user_id)
    report.add(True, f"Discord: logged in as {me.get('username')} (id {user_id})")
    try:
        guilds = await _all_guilds(api)
    except (_DiscordRefused, aiohttp.ClientError, TimeoutError) as error:
        report.add(False, f"Discord would not list the bot's servers ({_describe(error)})")
        return
    if not guilds:
        report.add(False, "The bot is in no server yet: open the invite link below and add it to one")
        return
    report.add(True, f"Discord: the bot is in {len(guilds)} server{'s' if len(guilds) != 1 else ''}")
    for summary in guilds:
        try:
            await _check_guild(api, str(summary["id"]), user_id, report)
        except (_DiscordRefused, aiohttp.ClientError, TimeoutError) as error:
            report.add(False, f'Server "{summary.get("name")}": could not read its roles ({_describe(error)})')


async def _all_guilds(api: _DiscordApi) -> list[dict[str, Any]]:
    guilds: list[dict[str, Any]] = []
    after = "0"
    while True:
        page = await api.get("/users/@me/guilds", limit="200", after=after)
        guilds.extend(page)
        if len(page) < 200:
            return guilds
        after = str(page[-1]["id"])


async def _check_guild(api: _DiscordApi, guild_id: str, user_id: str, report: Report) -> None:
    guild = await api.get(f"/guilds/{guild_id}")
    member = await api.get(f"/guilds/{guild_id}/members/{user_id}")
    role_ids = [str(role) for role in member.get("roles") or []]
    base = base_permissions(guild, role_ids, user_id)
    name = guild.get("name") or guild_id
    lacking = missing(base)
    if lacking:
        report.add(
            False,
            f'Server "{name}": the bot is missing {", ".join(lacking)}. Give its role '
            f"{'this permission' if len(lacking) == 1 else 'these permissions'} in Server Settings > Roles, "
            "or re-invite it with the link below",
        )
        return
    report.add(True, f'Server "{name}": the bot has every permission it needs')
    channels = await api.get(f"/guilds/{guild_id}/channels")
    blocked: list[str] = []
    for channel in channels:
        if channel.get("type") not in TEXT_CHANNEL_TYPES:
            continue
        allowed = channel_permissions(base, guild_id, role_ids, user_id, channel.get("permission_overwrites") or [])
        absent = missing(allowed) if allowed & VIEW_CHANNEL.bit else ["cannot see it"]
        if absent:
            blocked.append(f"#{channel.get('name')} ({', '.join(absent)})")
    if blocked:
        more = f" and {len(blocked) - MAX_CHANNELS_LISTED} more" if len(blocked) > MAX_CHANNELS_LISTED else ""
        report.add(
            True,
            f'Server "{name}": /video will not work in {", ".join(blocked[:MAX_CHANNELS_LISTED])}{more}; '
            "channel permissions take them away there",
            note=True,
        )


def _describe(error: BaseException) -> str:
    if isinstance(error, _DiscordRefused):
        return f"HTTP {error.status}"
    return type(error).__name__


# -- xAI --------------------------------------------------------------------------------------------------


async def check_xai(session: aiohttp.ClientSession, settings: XaiSettings, report: Report) -> None:
    """The key works, and every offered model (XAI_MODELS) is one it may use."""
    client = XaiClient(
        session,
        api_key=settings.api_key,
        base_url=settings.base_url,
        request_timeout_s=settings.request_timeout_s,
        max_retries=1,
        max_rate_limit_retries=2,
    )
    try:
        models = await client.check_key()
    except XaiAuthError:
        report.add(False, "xAI rejected XAI_API_KEY. Create a key at https://console.x.ai/ and put it in .env")
        return
    except XaiCreditsExhausted:
        report.add(False, "xAI accepted XAI_API_KEY, but the account is out of credits; add some at console.x.ai")
        return
    except XaiUnavailable:
        report.add(False, f"Could not reach xAI at {settings.base_url}; check the network and XAI_BASE_URL")
        return
    except XaiError as error:
        report.add(False, f"xAI at {settings.base_url}: {error}")
        return
    refused = [name for name in settings.models if models and name not in models]
    if refused:
        report.add(
            False,
            f"xAI: the key works, but it may not use {', '.join(refused)} (in XAI_MODELS; it may use "
            f"{', '.join(models)})",
        )
        return
    report.add(True, f"xAI: the key works and may use {', '.join(settings.models)}")


# -- the store ---------------------------------------------------------------------------------------------


async def check_store(path: Path, report: Report) -> None:
    """The store opens, its schema is one this version knows, and it can be written (not locked)."""
    current = len(MIGRATIONS)
    if str(path) == ":memory:":
        report.add(True, "Store: DATABASE_PATH=:memory: keeps jobs in memory only; a stop loses them", note=True)
        return
    live = instance_lock.holder(path)
    if live is not None:
        report.add(
            True, f"Store: {live.describe(path)}; a second `python bot.py` on it would refuse to start", note=True
        )
    if not path.exists():
        parent = _nearest_existing(path.parent)
        if parent.is_dir() and os.access(parent, os.W_OK | os.X_OK):
            report.add(True, f"Store: {path} does not exist yet; it will be created on first start")
        else:
            report.add(False, f"Store: {path} cannot be created ({parent} is not a writable folder); fix DATABASE_PATH")
        return
    if path.is_dir():
        report.add(False, f"Store: {path} is a folder, not a database file; fix DATABASE_PATH")
        return
    try:
        async with aiosqlite.connect(f"file:{path}?mode=rw", uri=True, timeout=2.0, isolation_level=None) as db:
            async with db.execute("PRAGMA user_version") as cursor:
                row = await cursor.fetchone()
            version = int(row[0]) if row else 0
            await db.execute("BEGIN IMMEDIATE")
            await db.execute("ROLLBACK")
    except sqlite3.OperationalError as error:
        text = str(error).lower()
        if is_busy(error) and live is not None:
            report.add(True, f"Store: {path} was busy with the running bot's writes; schema not read", note=True)
        elif is_busy(error):
            report.add(False, f"Store: {path} is locked by another program; stop it and run the check again")
        elif "readonly" in text or "unable to open" in text:
            report.add(False, f"Store: {path} cannot be written; check the file's owner and permissions")
        else:
            report.add(False, f"Store: {path} cannot be used ({error})")
        return
    except sqlite3.DatabaseError as error:
        report.add(
            False, f"Store: {path} is not a database this bot can use ({error}); move it away or fix DATABASE_PATH"
        )
        return
    if version > current:
        report.newer_store = True
        report.add(
            False,
            f"Store: {path} was written by a newer version of the bot (schema {version}, this one knows {current}); "
            "upgrade the bot, or restore a backup made before the upgrade",
        )
    elif version < current:
        report.add(
            True, f"Store: {path} is writable; its schema ({version}) will be upgraded to {current} on start", note=True
        )
    else:
        report.add(True, f"Store: {path} is writable and up to date (schema {version})")


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


# -- everything -------------------------------------------------------------------------------------------


async def run_checks(settings: Settings) -> Report:
    """Every check, independent of the others: one broken part never hides what is wrong elsewhere."""
    report = Report()
    report.add(True, "Settings: every setting is present and well formed")
    timeout = aiohttp.ClientTimeout(total=max(10.0, settings.xai.request_timeout_s))
    # The proxy variables apply and netrc does not, as for the bot itself (services/process/proxies.py).
    if settings.discord is not None:
        async with proxies.session(reaching=settings.discord.api_base_url or DISCORD_API, timeout=timeout) as session:
            await check_discord(session, settings.discord, report)
    async with proxies.session(reaching=settings.xai.base_url, timeout=timeout) as session:
        await check_xai(session, settings.xai, report)
    if settings.database_url is not None:
        finding = await pgtools.check_line(settings.database_url.reveal())
        report.add(finding.ok, finding.line)
        report.newer_store |= finding.newer
    else:
        await check_store(settings.database_path, report)
    return report
