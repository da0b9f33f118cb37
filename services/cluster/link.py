"""Dedicated PostgreSQL connections for the cluster, outside the store's pool, and the messages between processes.

A session advisory lock belongs to its connection, and LISTEN hears only on its own: a pooled connection would
hand both to whoever borrows it next. The server is asked to end a session whose host vanished (TCP keepalives)
or that went quiet (``idle_session_timeout``, for a leader whose process hangs), so a dead leader's lock frees in
seconds. Messages are ``NOTIFY`` payloads (JSON, tiny): PostgreSQL delivers them on commit to whoever listens
then, and drops them otherwise, so the store stays the truth and every reader of a message re-reads the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from services.store.postgres import KEEPALIVES

log = logging.getLogger(__name__)

JOBS_CHANNEL = "grok_video_bot_jobs"  # to the leader: a job was queued, dropped, or asks to be cancelled
REPLIES_CHANNEL = "grok_video_bot_replies"  # from the leader: the answer to one ask
CONNECT_TIMEOUT_S = 10.0
IDLE_SESSION_TIMEOUT_SINCE = 14  # the PostgreSQL version that added it
# Errors that mean "this connection (or the server) is gone": the caller reconnects.
CONNECTION_LOST: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
)

Connect = Callable[[], Awaitable[asyncpg.Connection]]
Message = dict[str, Any]


def connector(url: str, *, purpose: str, idle_timeout_s: float | None = None) -> Connect:
    """How to open one dedicated connection to ``url`` (never logged: it may carry a password)."""
    # Named with the process id, so an operator (or a test) can tell from pg_stat_activity which process leads.
    settings = {"application_name": f"grok-video-bot {purpose} (pid {os.getpid()})", **KEEPALIVES}

    async def connect() -> asyncpg.Connection:
        connection = await asyncpg.connect(url, timeout=CONNECT_TIMEOUT_S, server_settings=settings)
        # PostgreSQL 13 has no idle_session_timeout (asked for at connect, it refuses the session, so no process
        # could ever lead): there a hung process keeps its locks until it is killed.
        if idle_timeout_s is not None and connection.get_server_version().major >= IDLE_SESSION_TIMEOUT_SINCE:
            try:
                await connection.execute(f"SET idle_session_timeout = {int(idle_timeout_s * 1000)}")
            except BaseException:
                await close_quietly(connection)
                raise
        return connection

    return connect


async def close_quietly(connection: asyncpg.Connection | None) -> None:
    """Close, or drop a connection that cannot be closed politely (its server gone)."""
    if connection is None or connection.is_closed():
        return
    try:
        await asyncio.wait_for(connection.close(), timeout=2.0)
    except Exception:  # a broken connection is dropped either way
        connection.terminate()


def encode(message: Message) -> str:
    return json.dumps(message, separators=(",", ":"), sort_keys=True)


def decode(payload: object) -> Message | None:
    if not isinstance(payload, str):
        return None
    try:
        message = json.loads(payload)
    except ValueError:
        return None
    return message if isinstance(message, dict) else None


class Messenger:
    """Sends messages to the leader and hears its replies, over one connection of its own (reopened on loss)."""

    def __init__(self, connect: Connect) -> None:
        self._connect = connect
        self._connection: asyncpg.Connection | None = None
        self._lock = asyncio.Lock()
        self._asks: dict[str, asyncio.Future[Message]] = {}

    async def send(self, message: Message, *, channel: str = JOBS_CHANNEL) -> bool:
        """NOTIFY ``message``; one more try on a fresh connection; False when the database cannot be reached."""
        async with self._lock:
            for attempt in (1, 2):
                try:
                    connection = await self._open()
                    await connection.execute("SELECT pg_notify($1, $2)", channel, encode(message), timeout=5.0)
                    return True
                except CONNECTION_LOST as error:
                    await self._drop()
                    if attempt == 2:
                        log.warning("Could not tell the other processes %s (%s)", message.get("kind"), error)
        return False

    async def ask(self, message: Message, timeout_s: float) -> Message | None:
        """Send ``message`` and wait for the leader's reply to it; None when none came in time."""
        token = uuid.uuid4().hex
        future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self._asks[token] = future
        try:
            if not await self.send({**message, "reply": token}):
                return None
            with contextlib.suppress(TimeoutError):
                return await asyncio.wait_for(future, timeout_s)
            return None
        finally:
            self._asks.pop(token, None)

    async def answer(self, token: str, reply: Message) -> None:
        await self.send({**reply, "reply": token}, channel=REPLIES_CHANNEL)

    async def close(self) -> None:
        async with self._lock:
            await self._drop()

    async def _open(self) -> asyncpg.Connection:
        if self._connection is None or self._connection.is_closed():
            connection = await self._connect()
            try:
                await connection.add_listener(REPLIES_CHANNEL, self._heard)
            except BaseException:
                await close_quietly(connection)
                raise
            self._connection = connection
        return self._connection

    async def _drop(self) -> None:
        connection, self._connection = self._connection, None
        await close_quietly(connection)

    def _heard(self, _connection: object, _pid: int, _channel: str, payload: object) -> None:
        reply = decode(payload)
        token = reply.get("reply") if reply is not None else None
        future = self._asks.get(token) if isinstance(token, str) else None
        if reply is not None and future is not None and not future.done():
            future.set_result(reply)
