"""What the pages say, and the log says once, when the store does not answer them.

A monitor scrapes every few seconds: a traceback per scrape would bury the log, and a traceback in the answer
would show the store's insides to whoever can reach the port. Both pages give one plain line instead, the same
for each (the error's kind and its first line, with anything shaped like a secret masked), and the log says it
when it starts or changes and once when the store answers again.
"""

from __future__ import annotations

import asyncio
import logging
import re

from services.process.redaction import MASK, Redactor
from services.store.database import Database

log = logging.getLogger(__name__)

PROBE_TIMEOUT_S = 5.0  # a store that takes longer than this to count one row is not answering
# The cheapest read of the table every page depends on: the connection, the file (or server) and the schema at once.
PROBE = "SELECT 1 FROM jobs LIMIT 1"
_URL_CREDENTIALS = re.compile(r"(://)[^/@\s]+@")  # postgresql://user:password@host
_MOST_CHARS = 200


def reason_of(error: BaseException) -> str:
    """The error in one line for anyone to read: its kind and its first line, secrets masked."""
    if isinstance(error, TimeoutError):
        return f"the store did not answer within {PROBE_TIMEOUT_S:g} s"
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


async def probe_store(database: Database, trouble: StoreTrouble) -> str | None:
    """None when the store reads the jobs table (within ``PROBE_TIMEOUT_S``); else the reason, in one line."""
    try:
        await asyncio.wait_for(database.fetch_one(PROBE), PROBE_TIMEOUT_S)
    except Exception as error:  # sqlite3's, asyncpg's, OSError, a timeout: each is one reason
        return trouble.failed(error)
    trouble.answered()
    return None
