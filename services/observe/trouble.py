"""What the pages say, and the log says once, when the store does not answer them.

A monitor scrapes every few seconds: a traceback per scrape would bury the log, and a traceback in the answer
would show the store's insides to whoever can reach the port. Both pages give one plain line instead, the same
for each (the error's kind and its first line, with anything shaped like a secret masked), and the log says it
when it starts or changes and once when the store answers again.

Each page's read is shared (``SharedRead``): requests that come while one is running wait for that one, so however
many clients ask, a store that hangs has one read of theirs in its queue (or one of its pool's connections), and
the bot's own work keeps the rest. The health read gives up in time for the image's HEALTHCHECK (4 s) to hear why.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from services.process.redaction import MASK, Redactor
from services.store.database import Database

log = logging.getLogger(__name__)
T = TypeVar("T")

PROBE_TIMEOUT_S = 3.0  # a store slower than this to read one row is not answering (the image's check waits 4 s)
COUNTS_TIMEOUT_S = 8.0  # /metrics' one grouped read (Prometheus waits 10 s for a scrape by default)
# The cheapest read of the table every page depends on: the connection, the file (or server) and the schema at once.
PROBE = "SELECT 1 FROM jobs LIMIT 1"
_URL_CREDENTIALS = re.compile(r"(://)[^/@\s]+@")  # postgresql://user:password@host
_MOST_CHARS = 200


class NoAnswer(TimeoutError):
    """A shared read that took longer than its ``seconds``."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"no answer within {seconds:g} s")
        self.seconds = seconds


def reason_of(error: BaseException) -> str:
    """The error in one line for anyone to read: its kind and its first line, secrets masked."""
    if isinstance(error, NoAnswer):
        return f"the store did not answer within {error.seconds:g} s"
    first = (str(error).strip().splitlines() or [""])[0][:_MOST_CHARS]
    said = Redactor()(_URL_CREDENTIALS.sub(rf"\g<1>{MASK}@", first))
    return f"the store did not answer ({type(error).__name__}{': ' + said if said else ''})"


class StoreTrouble:
    """The store's current trouble as the pages tell it; logged when it starts or changes, and when it ends."""

    def __init__(self) -> None:
        self.current: str | None = None

    def failed(self, error: BaseException) -> str:
        reason = reason_of(error)
        if reason != self.current:
            log.warning("/metrics and /healthz: %s", reason)
            self.current = reason
        return reason

    def answered(self) -> None:
        if self.current is not None:
            log.info("/metrics and /healthz: the store answers again")
            self.current = None


class SharedRead(Generic[T]):
    """One read at a time, within ``timeout_s`` (else ``NoAnswer``), its outcome given to every caller that came
    while it ran. A caller that goes away (its client hung up) leaves the read to the others."""

    def __init__(self, read: Callable[[], Awaitable[T]], timeout_s: float) -> None:
        self._read = read
        self._timeout_s = timeout_s
        self._running: asyncio.Future[T] | None = None

    async def __call__(self) -> T:
        if self._running is None:
            self._running = running = asyncio.ensure_future(self._within())
            running.add_done_callback(self._ended)
        return await asyncio.shield(self._running)

    async def _within(self) -> T:
        try:
            return await asyncio.wait_for(self._read(), self._timeout_s)
        except TimeoutError:
            raise NoAnswer(self._timeout_s) from None

    def _ended(self, running: asyncio.Future[T]) -> None:
        if self._running is running:
            self._running = None
        if not running.cancelled():
            running.exception()  # seen: its callers may all have gone, and asyncio would call it never retrieved

    def cancel(self) -> None:
        """The server is closing: a read still running is given up."""
        if self._running is not None:
            self._running.cancel()


def probe(database: Database) -> SharedRead[object]:
    """The health page's read: one row of the jobs table, within ``PROBE_TIMEOUT_S``."""
    return SharedRead(lambda: database.fetch_one(PROBE), PROBE_TIMEOUT_S)


async def probe_store(read: SharedRead[object], trouble: StoreTrouble) -> str | None:
    """None when the store reads the jobs table (within ``PROBE_TIMEOUT_S``); else the reason, in one line."""
    try:
        await read()
    except Exception as error:  # sqlite3's, asyncpg's, OSError, a timeout: each is one reason
        return trouble.failed(error)
    trouble.answered()
    return None
