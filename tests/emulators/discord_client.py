"""Running a real discord.py client against a `DiscordEmulator` (re-exported by `discord_emulator`)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, TypeVar

import discord
import discord.gateway
import discord.http
import yarl

if TYPE_CHECKING:
    from .discord_emulator import DiscordEmulator

ClientT = TypeVar("ClientT", bound=discord.Client)

_patch_depth = 0
_saved_endpoints: tuple[str, yarl.URL] | None = None


def _patch_endpoints(emulator: DiscordEmulator) -> None:
    global _patch_depth, _saved_endpoints
    if _patch_depth == 0:
        _saved_endpoints = (discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY)
    _patch_depth += 1
    discord.http.Route.BASE = emulator.api_base_url
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(emulator.gateway_url)


def _unpatch_endpoints() -> None:
    global _patch_depth, _saved_endpoints
    _patch_depth -= 1
    if _patch_depth == 0 and _saved_endpoints is not None:
        discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = _saved_endpoints
        _saved_endpoints = None


@asynccontextmanager
async def run_client(
    client: ClientT,
    emulator: DiscordEmulator,
    *,
    token: str | None = None,
    guild_ready_timeout: float | None = 0.05,
    ready_timeout: float = 10.0,
) -> AsyncIterator[ClientT]:
    """Log `client` in against `emulator`, connect (reconnect=False) and wait until ready; close on exit.

    Points `discord.http.Route.BASE` and `DiscordWebSocket.DEFAULT_GATEWAY` at the emulator for the duration
    (restored when the last `run_client` exits). `guild_ready_timeout` (None: keep the client's) shortens
    discord.py's 2 s wait after the last GUILD_CREATE. If connecting fails before ready, the client's own
    exception is raised (e.g. `discord.LoginFailure`, `discord.ConnectionClosed` with code 4014). If the
    client's gateway task crashes later, the crash is recorded in `emulator.problems`."""
    _patch_endpoints(emulator)
    task: asyncio.Task[None] | None = None
    try:
        if guild_ready_timeout is not None:
            client._connection.guild_ready_timeout = guild_ready_timeout
        await client.login(token or emulator.bot_token)
        task = asyncio.create_task(client.connect(reconnect=False), name="emulated-discord-client")
        waiter = asyncio.create_task(client.wait_until_ready())
        done, _ = await asyncio.wait({task, waiter}, timeout=ready_timeout, return_when=asyncio.FIRST_COMPLETED)
        if waiter not in done:
            waiter.cancel()
            if task in done:
                await client.close()
                task.result()
                raise RuntimeError("the client's connect() returned before it was ready")
            raise TimeoutError(f"client not ready after {ready_timeout}s")

        def crashed(t: asyncio.Task[None]) -> None:
            # ConnectionClosed comes from a close code the emulator sent (fatal ones are deliberate or already
            # in `problems`); anything else (a KeyError in a parser, ...) means a broken dispatch.
            exc = None if t.cancelled() else t.exception()
            if exc is not None and not isinstance(exc, discord.ConnectionClosed):
                emulator._problem(f"the client's gateway task crashed: {exc!r}")

        task.add_done_callback(crashed)
        try:
            yield client
        finally:
            if not client.is_closed():
                await client.close()
            if not task.done():
                with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                    await asyncio.wait_for(asyncio.shield(task), 5.0)
    finally:
        if (task is None or not task.done()) and not client.is_closed():
            await client.close()
        _unpatch_endpoints()
