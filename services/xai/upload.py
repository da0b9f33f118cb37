"""A submit's body on its way to xAI: streamed, told apart when it went out whole, and given up cleanly.

A 50 MiB edit input is ~70 MB as base64. It is encoded a slice at a time between socket writes (one encode of
it would hold the GIL and stall the loop), and the body knows whether its last byte was handed to the socket:
a request whose body never went out whole cannot have started anything at xAI. Sending takes as long as the
link needs (the client gives it a deadline by its size); only the wait for xAI's answer after it is timed
with ``XAI_REQUEST_TIMEOUT_SECONDS``, from the moment the kernel has sent the last byte.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import Callable

from aiohttp.abc import AbstractStreamWriter
from aiohttp.payload import Payload

from services.xai.bodies import Body

try:  # how many bytes a socket has not yet got acknowledged (Linux); elsewhere the upload is timed less finely
    import fcntl
    import termios

    _OUTQ: int | None = termios.TIOCOUTQ
except (ImportError, AttributeError):  # pragma: no cover - Windows, or a system without the ioctl
    _OUTQ = None

MIN_UPLOAD_BYTES_PER_S = 64 * 1024  # 0.5 Mbit/s: a body slower than this to send is given up (xAI started nothing)


class JsonBody(Payload):
    """A submit's body streamed with its Content-Length: a big input is base64-encoded a slice at a time
    between socket writes, so the loop never stalls on it and no 70 MB copy of it is ever made.

    It knows whether it went out whole (``complete``): a request whose body never fully left cannot have
    started anything at xAI, which waits for the whole body before it reads it. ``on_complete`` is called
    once the kernel has sent the last byte (the answer's time limit starts then)."""

    def __init__(self, body: Body) -> None:
        super().__init__(body, content_type="application/json")
        self._body = body
        self._size = body.size
        self.on_complete: Callable[[], None] | None = None
        self.complete = False

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        return b"".join(self._body.pieces()).decode(encoding, errors)

    async def write(self, writer: AbstractStreamWriter) -> None:
        written, size = 0, self._body.size
        transport = writer.transport  # kept: aiohttp lets go of it before this task hears it was given up
        try:
            for piece in self._body.pieces():
                written += len(piece)
                if written >= size:
                    # Marked before the last piece is handed over: the writer gives it to the socket before it
                    # waits to drain, so from here on xAI may get it all, even if this write is cut short.
                    self.complete = True
                await writer.write(piece)  # waits for the socket to drain past aiohttp's buffer limit
                await asyncio.sleep(0)  # a fast socket never makes it wait: let the bot run between pieces
            await sent_out(transport)  # the kernel's send buffer (megabytes) is still part of the upload
        except asyncio.CancelledError:
            drop(transport)
            raise
        if self.on_complete is not None:
            self.on_complete()


def drop(transport: asyncio.BaseTransport | None) -> None:
    """Given up mid-body (its deadline, a Cancel, a shutdown): reset the connection and discard what is buffered.

    A plain close would leave the kernel sending the buffered part of the body for as long as the link takes it
    (and, on a link that stopped, holding the connection open forever)."""
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close = reset
    if isinstance(transport, asyncio.WriteTransport):
        transport.abort()


async def sent_out(transport: asyncio.BaseTransport | None) -> None:
    """Wait until the kernel has sent every byte handed to it and the other end acknowledged them.

    A socket's send buffer holds megabytes: on a slow link the last of a big body is still going out for many
    seconds after the writer accepted it, and that belongs to the upload, not to the wait for the answer. On a
    system without ``TIOCOUTQ`` (not Linux) the answer is timed from the last write, which is only earlier.
    """
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is None or _OUTQ is None:
        return
    while True:
        try:
            unsent = struct.unpack("i", fcntl.ioctl(sock.fileno(), _OUTQ, b"\0\0\0\0"))[0]
        except (OSError, ValueError):  # closed meanwhile, or not a TCP socket
            return
        if unsent <= 0:
            return
        await asyncio.sleep(0.02)
