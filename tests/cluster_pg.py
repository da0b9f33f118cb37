"""A fresh, empty PostgreSQL database for one cluster test, on TEST_DATABASE_URL's server.

The cluster's tests need a real server: the leader lock and LISTEN/NOTIFY are the server's own behaviour (and both
belong to one database, so each test gets its own). Without a server they skip, or fail under REQUIRE_POSTGRES,
as every PostgreSQL test does (tests/pgtest.py). The bots migrate the empty database themselves.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator

import asyncpg

from tests.pgtest import in_database, server_url


@contextlib.asynccontextmanager
async def fresh_database() -> AsyncIterator[str]:
    """The URL of a new, empty database, dropped afterwards (its sessions ended first)."""
    server = server_url()
    admin = await asyncpg.connect(server, timeout=10)
    name = f"cluster_{uuid.uuid4().hex[:12]}"
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield in_database(server, name)
    finally:
        await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        await admin.close()


async def end_session(url: str, pid: int) -> None:
    """What a dead host's session comes to: the server ends it (the lock it held goes with it)."""
    admin = await asyncpg.connect(url, timeout=5)
    try:
        await admin.execute("SELECT pg_terminate_backend($1)", pid)
    finally:
        await admin.close()
