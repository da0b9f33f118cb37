"""A loopback Discord emulator for end-to-end tests of a discord.py 2.7 bot.

The real `commands.Bot` talks to it over HTTP and a websocket on 127.0.0.1 (see `run_client`). Tests inject
what people do (`slash`, `message_command`, `click`, `submit_modal`, `user_message`), then assert on what
people would see (`messages`, `interactions`, `requests`) and on `problems` (anything that is a bug in the
bot or in the emulator). Discord's rules (3 s acknowledgement, 15 min tokens, upload limits, permissions,
message content intent, content/embed/component limits) answer with Discord's real error codes.

Only what the bot uses is emulated: routes it never calls answer 404 and count as a problem. Example::

    async with DiscordEmulator() as emu, run_client(make_bot(), emu):
        clip = emu.add_attachment(b"...", "in.mp4")
        inter = await emu.slash("video", {"prompt": "a cat", "image": clip})
        msg = await emu.wait_for_message(lambda m: m.interaction_id == inter.id and bool(m.attachments))
        assert msg.attachment("out.mp4").content_type == "video/mp4"
    assert not emu.problems

Behaviour worth knowing (all as on Discord):
- GUILD_CREATE lists every member only to clients with the GUILD_MEMBERS intent (then member_count ==
  len(members)); without it, only the bot's own member, so `guild.get_member(user)` is None.
- Every message, the bot's included, is echoed as MESSAGE_CREATE/UPDATE/DELETE to clients with the
  GUILD_MESSAGES (DIRECT_MESSAGES for DMs) intent; ephemeral messages never are.
- The first follow-up after a deferred (type 5) response resolves the "thinking" message instead of
  posting a new one; `@original` of a component interaction acknowledged with 6/7 is the clicked message.
- A channel the bot cannot view answers 403 / 50001 "Missing Access"; other missing permissions 50013.
- A dropped (not closed) gateway connection leaves its session live for 60 s, as Discord keeps it
  resumable; nothing is replayed, since every bot the tests start identifies afresh.

Modules: `discord_models` (records, constants), `discord_rules` (requests, answers, Discord's limits),
`discord_world` (state and JSON payloads), `discord_setup` (world building), `discord_people` (the
drivers) with `discord_interactions` (their payloads), `discord_rest` + `discord_posting` +
`discord_messages` (REST routes), `discord_faults` (injected faults), `discord_gateway`, and
`discord_client` (`run_client`).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import re
import socket
from collections.abc import Callable
from types import TracebackType
from typing import Any

from aiohttp import web

from .discord_client import run_client
from .discord_faults import Faults, _Fault, _LostAnswer
from .discord_gateway import Gateway
from .discord_interactions import InteractionFactory
from .discord_models import (
    INTENT_DIRECT_MESSAGES,
    INTENT_GUILD_MESSAGES,
    MIB,
    AttachmentRecord,
    InteractionRecord,
    MessageRecord,
    MessageVersion,
    RequestRecord,
    SnowflakeMinter,
)
from .discord_payloads import Visibility
from .discord_people import People
from .discord_posting import NONCE_WINDOW_S
from .discord_rest import RestApi
from .discord_setup import WorldSetup
from .discord_world import World

__all__ = [
    "AttachmentRecord",
    "DiscordEmulator",
    "InteractionRecord",
    "MessageRecord",
    "MessageVersion",
    "RequestRecord",
    "run_client",
]

# How long stopping waits for a request still being answered (an injected delay, say) before cancelling it.
SHUTDOWN_GRACE_S = 0.01


class DiscordEmulator(WorldSetup, People, Faults):
    """Discord's REST API (under /api/v10), gateway and attachment CDN, on one loopback port.

    The port is bound in `__init__`, so URLs (`api_base_url`, attachment URLs) are valid before `start()`.
    A default world exists from the start: guild `guild_id` (premium tier 0, owned by `owner_id`), text
    channel `channel_id` ("general"), humans `user_id` and `other_user_id`, and the bot (`bot_user_id`, which
    is also `application_id`, as for every modern Discord app)."""

    def __init__(
        self,
        *,
        bot_token: str = "emulated-bot-token",
        message_content_intent_allowed: bool = True,
        ack_deadline_s: float = 3.0,
        token_lifetime_s: float = 900.0,
    ) -> None:
        self.bot_token = bot_token
        self.message_content_intent_allowed = message_content_intent_allowed
        self.ack_deadline_s = ack_deadline_s
        self.token_lifetime_s = token_lifetime_s

        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.port: int = self._sock.getsockname()[1]
        self.http_base_url = f"http://127.0.0.1:{self.port}"
        self.api_base_url = f"{self.http_base_url}/api/v10"
        self.gateway_url = f"ws://127.0.0.1:{self.port}/gateway"

        self.minter = SnowflakeMinter()
        self.application_id: int = self.minter.mint()
        self.bot_user_id: int = self.application_id
        self.world = World(
            minter=self.minter,
            http_base=self.http_base_url,
            application_id=self.application_id,
            bot_user_id=self.bot_user_id,
        )

        # Records tests assert on.
        self.requests: list[RequestRecord] = []
        self.messages: dict[int, MessageRecord] = self.world.messages
        self.interactions: dict[int, InteractionRecord] = {}
        self.commands: dict[str | int, list[dict[str, Any]]] = {}
        # Commands a server opened to everyone in Server Settings > Integrations, overriding
        # default_member_permissions: the bot must still check permissions itself.
        self.open_to_everyone: set[str] = set()
        self.gateway_log: list[dict[str, Any]] = []
        self.problems: list[str] = []

        self._interactions_by_token: dict[str, InteractionRecord] = {}
        self._faults: list[_Fault] = []
        self._lost: list[_LostAnswer] = []
        # How long `enforce_nonce` dedupes a bot's message ("a few minutes" on Discord).
        self.nonce_window_s: float = NONCE_WINDOW_S
        self._changed = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.gateway = Gateway(self)
        self.rest = RestApi(self)
        self._factory = InteractionFactory(self)

        self.world.new_user("emulated-bot", bot=True, user_id=self.bot_user_id)
        self.owner_id: int = self.world.new_user("owner").id
        self.guild_id: int = self.add_guild("Emulated Guild")
        self.channel_id: int = self.add_channel(self.guild_id, "general")
        self.user_id: int = self.add_user("alice")
        self.other_user_id: int = self.add_user("bob")

    # --- lifecycle ---------------------------------------------------------------------------------
    async def start(self) -> None:
        """Start serving on the port bound in `__init__`."""
        if self._runner is not None:
            return
        app = web.Application(client_max_size=200 * MIB)
        app.router.add_get("/gateway", self.gateway.handle)
        app.router.add_get("/gateway/", self.gateway.handle)
        app.router.add_route("*", "/{tail:.*}", self.rest.handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=SHUTDOWN_GRACE_S)
        await self._runner.setup()
        await web.SockSite(self._runner, self._sock).start()

    async def stop(self) -> None:
        """Close every gateway socket and stop serving."""
        await self.gateway.shutdown()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self._sock.close()

    async def __aenter__(self) -> DiscordEmulator:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    # --- queries and waiting -----------------------------------------------------------------------
    def messages_in(self, channel_id: int) -> list[MessageRecord]:
        """Messages in a channel that are not deleted (ephemeral ones included), in creation order."""
        return [m for m in self.world.messages.values() if m.channel_id == channel_id and not m.deleted]

    def requests_matching(self, method: str, path_pattern: str) -> list[RequestRecord]:
        """Requests with `method` ("*" for any) whose path matches the regex (re.search)."""
        pattern = re.compile(path_pattern)
        return [r for r in self.requests if method in ("*", r.method) and pattern.search(r.path)]

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        """Wait until `predicate()` is true; it is re-evaluated whenever any record changes (and every 50 ms,
        for predicates about the bot's own state). Raises AssertionError describing the emulator on timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate():
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(self._describe_timeout(predicate, timeout))
            event = self._changed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), min(remaining, 0.05))

    async def wait_for_message(
        self, predicate: Callable[[MessageRecord], bool], timeout: float = 10.0
    ) -> MessageRecord:
        """The first (in creation order) non-deleted message matching `predicate`, waiting for it if needed."""
        found: list[MessageRecord] = []

        def check() -> bool:
            for msg in self.world.messages.values():
                if not msg.deleted and predicate(msg):
                    found.append(msg)
                    return True
            return False

        check.__qualname__ = f"wait_for_message({_describe_callable(predicate)})"
        await self.wait_for(check, timeout)
        return found[0]

    # --- internals used by the gateway and REST modules --------------------------------------------
    def _problem(self, text: str) -> None:
        self.problems.append(text)
        self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def _content_exempt(self, msg: MessageRecord) -> bool:
        """Discord's MESSAGE_CONTENT exemptions: the app's own messages, DMs, and messages mentioning it."""
        return msg.author_id == self.bot_user_id or msg.guild_id is None or self.bot_user_id in msg.mentions

    def _visibility(self, has_intent: bool) -> Visibility:
        return lambda msg: has_intent or self._content_exempt(msg)

    def _announce(self, event: str, msg: MessageRecord) -> None:
        """Dispatch MESSAGE_CREATE/UPDATE/DELETE for a message to sessions with the right intent."""
        if msg.ephemeral:
            return
        intent = INTENT_GUILD_MESSAGES if msg.guild_id is not None else INTENT_DIRECT_MESSAGES
        if event == "MESSAGE_DELETE":
            data: dict[str, Any] = {"id": str(msg.id), "channel_id": str(msg.channel_id)}
            if msg.guild_id is not None:
                data["guild_id"] = str(msg.guild_id)
            self.gateway.dispatch(event, data, intent=intent)
            return
        self.gateway.dispatch(
            event, lambda s: self.world.message_json(msg, visible=self._visibility(s.message_content)), intent=intent
        )

    def _describe_timeout(self, predicate: Callable[[], bool], timeout: float) -> str:
        lines = [f"wait_for timed out after {timeout}s: {_describe_callable(predicate)}"]
        lines.append("last requests:")
        lines.extend(
            f"  {r.method} {r.path} -> {r.status}" + (f" (code {r.error_code})" if r.error_code else "")
            for r in self.requests[-10:]
        )
        lines.append("last messages:")
        for m in list(self.world.messages.values())[-6:]:
            atts = ", ".join(f"{a.filename}({a.size}B)" for a in m.attachments)
            lines.append(
                f"  {m.id} ch={m.channel_id} via={m.via} flags={m.flags} deleted={m.deleted} "
                f"content={m.content[:80]!r} embeds={len(m.embeds)} attachments=[{atts}]"
            )
        pending = [i for i in self.interactions.values() if i.ack_type is None]
        if pending:
            lines.append(
                "unacknowledged interactions: " + ", ".join(f"{i.id} ({i.name or i.custom_id})" for i in pending)
            )
        rejected = [i for i in self.interactions.values() if i.ack_rejected]
        if rejected:
            lines.append("rejected acks: " + ", ".join(f"{i.id}: {i.ack_rejected}" for i in rejected))
        connected, live = len(self.gateway.connected_sessions()), len(self.gateway.live_sessions())
        lines.append(f"gateway: {connected} connected / {live} live sessions")
        if self.problems:
            lines.append("problems:")
            lines.extend(f"  {p}" for p in self.problems)
        return "\n".join(lines)


def _describe_callable(fn: Callable[..., Any]) -> str:
    qualname = getattr(fn, "__qualname__", repr(fn))
    if "<lambda>" in qualname:
        with contextlib.suppress(OSError, TypeError):
            return inspect.getsource(fn).strip()
    return str(qualname)
