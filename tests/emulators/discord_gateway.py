"""The emulator's gateway: HELLO, IDENTIFY, READY + GUILD_CREATE, heartbeats, and nothing the bot never sends.

Frames are always uncompressed text JSON (discord.py accepts them whatever `compress` it asked for).
Each connection has one writer task fed by a queue, so dispatches can be emitted from synchronous code
and always leave in sequence order. A session outlives a connection that dropped (as Discord keeps it
resumable for a while), so dispatches meant for a bot that just died are lost as on Discord; a RESUME
is answered "not resumable" (op 9), since every bot the tests start identifies afresh.

Sharding is Discord's: a session that identified with ``shard: [id, count]`` gets only the guilds, and the
dispatches, of guilds with ``(guild_id >> 22) % count == id``, and events without a guild (DMs) go to shard 0
only; several connections (processes) may each hold their own shards. A session without ``shard`` gets everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from .discord_models import INTENT_GUILD_MEMBERS, INTENT_MESSAGE_CONTENT

if TYPE_CHECKING:
    from .discord_emulator import DiscordEmulator

HEARTBEAT_INTERVAL_MS = 41250
RESUME_WINDOW_S = 60.0

Payload = dict[str, Any]


@dataclass
class GatewaySession:
    """One identified session: its intents and sequence, and its connection while it has one."""

    session_id: str
    intents: int
    identify: dict[str, Any]
    seq: int = 0
    conn: GatewayConnection | None = None
    invalidated: bool = False
    disconnected_at: float | None = None
    shard: tuple[int, int] = (0, 1)  # (id, count) from IDENTIFY

    @property
    def message_content(self) -> bool:
        return bool(self.intents & INTENT_MESSAGE_CONTENT)

    def routes(self, guild_id: int | None) -> bool:
        """Whether Discord sends this session the events of ``guild_id`` (None: an event without a guild)."""
        shard_id, count = self.shard
        return shard_id == (0 if guild_id is None else shard_for(guild_id, count))


@dataclass
class GatewayConnection:
    """One websocket. `queue` holds text frames, or an int: close with that code."""

    ws: web.WebSocketResponse
    number: int
    queue: asyncio.Queue[str | int] = field(default_factory=asyncio.Queue)
    session: GatewaySession | None = None
    writer: asyncio.Task[None] | None = None
    closed_by_server: int | None = None

    def send(self, frame: dict[str, Any]) -> None:
        self.queue.put_nowait(json.dumps(frame))


class Gateway:
    """Gateway state shared by every connection to the emulator."""

    def __init__(self, emulator: DiscordEmulator) -> None:
        self.emu = emulator
        self.sessions: dict[str, GatewaySession] = {}
        self.connections: list[GatewayConnection] = []
        self._numbers = 0

    # --- public helpers ----------------------------------------------------------------------------
    def live_sessions(self) -> list[GatewaySession]:
        """Sessions dispatches go to: identified and not invalidated (connected, or disconnected less than
        RESUME_WINDOW_S ago and so still resumable)."""
        now = time.monotonic()
        for s in self.sessions.values():
            if s.conn is None and s.disconnected_at is not None and now - s.disconnected_at > RESUME_WINDOW_S:
                s.invalidated = True
        return [s for s in self.sessions.values() if not s.invalidated]

    def connected_sessions(self) -> list[GatewaySession]:
        return [s for s in self.live_sessions() if s.conn is not None]

    def dispatch(
        self,
        event: str,
        data: Payload | Callable[[GatewaySession], Payload | None],
        *,
        intent: int | None = None,
    ) -> int:
        """Send a dispatch to every live session (that has `intent`, when given, and the shard of the event's
        guild). Returns how many got it.

        `data` may be a function of the session, for payloads that depend on its intents."""
        count = 0
        for session in self.live_sessions():
            if intent is not None and not session.intents & intent:
                continue
            payload = data(session) if callable(data) else data
            if payload is None or not session.routes(_guild_of(event, payload)):
                continue
            self._send_dispatch(session, event, payload)
            count += 1
        return count

    async def shutdown(self) -> None:
        for conn in list(self.connections):
            with contextlib.suppress(Exception):
                await conn.ws.close(code=1001, message=b"emulator stopping")
            if conn.writer is not None:
                conn.writer.cancel()

    # --- connection handling -----------------------------------------------------------------------
    async def handle(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(max_msg_size=16 * 1024 * 1024)
        await ws.prepare(request)
        self._numbers += 1
        conn = GatewayConnection(ws=ws, number=self._numbers)
        self.connections.append(conn)
        self._log("connect", connection=conn.number, query=dict(request.query))
        conn.writer = asyncio.create_task(self._writer(conn), name=f"emulator-gateway-writer-{conn.number}")
        conn.send({"op": 10, "d": {"heartbeat_interval": HEARTBEAT_INTERVAL_MS}, "s": None, "t": None})
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    try:
                        await self._on_frame(conn, msg.data)
                    except Exception as exc:
                        self.emu._problem(f"gateway: exception handling frame {msg.data[:200]!r}: {exc!r}")
                elif msg.type == WSMsgType.BINARY:
                    self.emu._problem("gateway: client sent a binary frame (the emulator expects JSON text)")
                elif msg.type == WSMsgType.ERROR:
                    break
        finally:
            self._on_disconnect(conn)
        return ws

    def _on_disconnect(self, conn: GatewayConnection) -> None:
        by = "server" if conn.closed_by_server is not None else "client"
        raw_code = conn.closed_by_server if conn.closed_by_server is not None else conn.ws.close_code
        code = int(raw_code) if raw_code is not None else None
        session = conn.session
        if session is not None and session.conn is conn:
            session.conn = None
            session.disconnected_at = time.monotonic()
            if by == "client" and code in (1000, 1001):
                # A clean close ends the session: it can no longer be resumed.
                session.invalidated = True
        self._log(
            "close",
            connection=conn.number,
            code=code,
            by=by,
            session_id=session.session_id if session else None,
        )
        if conn.writer is not None:
            conn.writer.cancel()
        if conn in self.connections:
            self.connections.remove(conn)
        self._prune()

    async def _writer(self, conn: GatewayConnection) -> None:
        ws = conn.ws
        while True:
            item = await conn.queue.get()
            if ws.closed:
                return
            try:
                if isinstance(item, int):
                    await ws.close(code=item, message=_close_reason(item).encode())
                    return
                await ws.send_str(item)
            except (ConnectionError, RuntimeError):
                return

    def _server_close(self, conn: GatewayConnection, code: int) -> None:
        conn.closed_by_server = code
        conn.queue.put_nowait(code)

    # --- frames ------------------------------------------------------------------------------------
    async def _on_frame(self, conn: GatewayConnection, text: str) -> None:
        try:
            frame = json.loads(text)
            op = frame["op"]
        except (ValueError, KeyError, TypeError):
            self.emu._problem(f"gateway: undecodable frame {text[:200]!r}")
            self._server_close(conn, 4002)
            return
        d = frame.get("d")
        if op == 1:
            self._log("heartbeat", connection=conn.number, seq=d, quiet=True)
            conn.send({"op": 11, "d": None, "s": None, "t": None})
        elif op == 2:
            self._identify(conn, d if isinstance(d, dict) else {})
        elif op == 6:
            self._resume(conn, d if isinstance(d, dict) else {})
        elif conn.session is None:
            self._log("not_authenticated", connection=conn.number, op=op)
            self._server_close(conn, 4003)
        elif op in (3, 4):
            self._log("presence_update" if op == 3 else "voice_state_update", connection=conn.number, payload=d)
        else:
            self.emu._problem(f"gateway: unknown opcode {op} from client")
            self._server_close(conn, 4001)

    def _identify(self, conn: GatewayConnection, d: dict[str, Any]) -> None:
        intents = d.get("intents")
        shown = {k: v for k, v in d.items() if k != "token"}
        self._log("identify", connection=conn.number, intents=intents, payload=shown)
        if conn.session is not None:
            self._server_close(conn, 4005)
            return
        if d.get("token") != self.emu.bot_token:
            self._server_close(conn, 4004)
            return
        if not isinstance(intents, int):
            self.emu._problem(f"gateway: IDENTIFY without integer intents: {intents!r}")
            self._server_close(conn, 4013)
            return
        if intents & INTENT_MESSAGE_CONTENT and not self.emu.message_content_intent_allowed:
            self._server_close(conn, 4014)
            return
        shard = d.get("shard") or [0, 1]
        if (
            not (isinstance(shard, list) and len(shard) == 2 and all(isinstance(n, int) for n in shard))
            or not 0 <= shard[0] < shard[1]
        ):
            self._server_close(conn, 4010)
            return
        session = GatewaySession(
            session_id=uuid.uuid4().hex, intents=intents, identify=shown, shard=(shard[0], shard[1])
        )
        self.sessions[session.session_id] = session
        session.conn = conn
        conn.session = session
        world = self.emu.world
        guild_ids = [g.id for g in world.guilds.values() if world.bot_user_id in g.members and session.routes(g.id)]
        self._send_dispatch(
            session,
            "READY",
            {
                "v": 10,
                "user": world.user_json(world.bot_user_id) | {"verified": True, "mfa_enabled": False},
                "guilds": [{"id": str(gid), "unavailable": True} for gid in guild_ids],
                "session_id": session.session_id,
                "session_type": "normal",
                "resume_gateway_url": self.emu.gateway_url,
                "shard": shard,
                "application": {"id": str(world.application_id), "flags": 0},
                "private_channels": [],
                "relationships": [],
                "presences": [],
                "user_settings": {},
                "geo_ordered_rtc_regions": [],
                "guild_join_requests": [],
                "auth": {},
                "_trace": ["emulator"],
            },
        )
        for gid in guild_ids:
            self._send_dispatch(
                session,
                "GUILD_CREATE",
                world.guild_json(gid, full=True, include_members=bool(intents & INTENT_GUILD_MEMBERS)),
            )

    def _resume(self, conn: GatewayConnection, d: dict[str, Any]) -> None:
        """No bot in the tests resumes (each start identifies afresh): any RESUME is told to identify instead."""
        self._log("resume_refused", connection=conn.number, session_id=d.get("session_id"), seq=d.get("seq"))
        if d.get("token") != self.emu.bot_token:
            self._server_close(conn, 4004)
            return
        conn.send({"op": 9, "d": False, "s": None, "t": None})

    # --- internals ---------------------------------------------------------------------------------
    def _send_dispatch(self, session: GatewaySession, event: str, data: Payload) -> None:
        session.seq += 1
        frame = json.dumps({"op": 0, "s": session.seq, "t": event, "d": data})
        if session.conn is not None:
            session.conn.queue.put_nowait(frame)
        self.emu._notify()

    def _prune(self) -> None:
        for sid in [sid for sid, s in self.sessions.items() if s.invalidated and s.conn is None]:
            del self.sessions[sid]

    def _log(self, event: str, *, quiet: bool = False, **fields: Any) -> None:
        self.emu.gateway_log.append({"event": event, "time": time.monotonic(), **fields})
        if not quiet:
            self.emu._notify()


def shard_for(guild_id: int, count: int) -> int:
    """Discord's routing of a guild's events to a shard."""
    return (guild_id >> 22) % count


def _guild_of(event: str, payload: Payload) -> int | None:
    """The guild an event belongs to (a GUILD_* event's own id), None for a DM and the like."""
    raw = payload.get("guild_id")
    if raw is None and event.startswith("GUILD_") and "id" in payload:
        raw = payload["id"]
    return int(raw) if raw is not None else None


def _close_reason(code: int) -> str:
    return {
        4000: "Unknown error.",
        4001: "Unknown opcode.",
        4002: "Decode error.",
        4003: "Not authenticated.",
        4004: "Authentication failed.",
        4005: "Already authenticated.",
        4013: "Invalid intent(s).",
        4010: "Invalid shard.",
        4014: "Disallowed intent(s).",
    }.get(code, "Closed by the emulator.")
