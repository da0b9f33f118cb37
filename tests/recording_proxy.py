"""A tiny forward HTTP proxy on loopback that writes down every request it forwards.

Clients send it absolute-URI requests (``GET http://127.0.0.1:PORT/path HTTP/1.1``), as HTTP proxies get
them; it opens the origin, rewrites the request line to the path, and pipes bytes both ways, so request
bodies, responses and websocket upgrades (the Discord gateway) all pass. Every forwarded request but a
websocket is sent with ``Connection: close``, so each one arrives on a fresh connection and is seen.
CONNECT (https through the proxy) is not needed here: every test service speaks plain http.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from types import TracebackType
from urllib.parse import urlsplit

HOP_BY_HOP = (b"proxy-connection", b"proxy-authorization", b"keep-alive")


@dataclass(frozen=True, slots=True)
class Forwarded:
    method: str
    url: str
    proxy_authorization: str | None
    authorization: str | None = None  # what the client sent the origin (a Bearer key, or a netrc login leaking)


@dataclass
class RecordingProxy:
    seen: list[Forwarded] = field(default_factory=list)
    port: int = 0
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def seen_for(self, base_url: str) -> list[Forwarded]:
        """The requests forwarded to ``base_url`` (scheme, host and port must match)."""
        origin = urlsplit(base_url)
        return [f for f in self.seen if urlsplit(f.url).netloc == origin.netloc]

    async def __aenter__(self) -> RecordingProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._forward(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        request_line, *header_lines = head[:-4].split(b"\r\n")
        method, target, version = request_line.decode("latin-1").split(" ", 2)
        origin = urlsplit(target)
        if not origin.scheme or not origin.hostname:
            writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            return
        headers = {line.split(b":", 1)[0].strip().lower(): line for line in header_lines}
        self.seen.append(
            Forwarded(
                method, target, _value(headers.get(b"proxy-authorization")), _value(headers.get(b"authorization"))
            )
        )
        upgrade = b"upgrade" in headers.get(b"connection", b"").lower()
        kept = [line for name, line in headers.items() if name not in HOP_BY_HOP and (upgrade or name != b"connection")]
        if not upgrade:
            kept.append(b"Connection: close")
        path = (origin.path or "/") + (f"?{origin.query}" if origin.query else "")
        upstream_reader, upstream_writer = await asyncio.open_connection(origin.hostname, origin.port or 80)
        try:
            upstream_writer.write(f"{method} {path} {version}".encode() + b"\r\n" + b"\r\n".join(kept) + b"\r\n\r\n")
            await asyncio.gather(_pipe(reader, upstream_writer), _pipe(upstream_reader, writer))
        finally:
            upstream_writer.close()


def _value(line: bytes | None) -> str | None:
    return line.split(b":", 1)[1].strip().decode("latin-1") if line else None


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):
        while chunk := await source.read(65536):
            sink.write(chunk)
            await sink.drain()
        if sink.can_write_eof():
            sink.write_eof()
