"""A fresh PostgreSQL store for each test that wants one, and the switch that runs the rigs on PostgreSQL.

The server is ``TEST_DATABASE_URL`` (``.ci/with-postgres`` starts a throwaway one and sets it). Without it the
PostgreSQL tests skip, saying why, unless ``REQUIRE_POSTGRES=1`` (``.ci/run`` sets it): then they fail, so CI
cannot pass by skipping them.

Each test gets a database of its own, copied from a template that holds this version's schema already
(``CREATE DATABASE ... TEMPLATE``: about 70 ms, less than migrating an empty one), and dropped after it. A schema
per test would be cheaper still (under 1 ms, plus the migrations), but advisory locks and LISTEN/NOTIFY channels
belong to the database, so the bots of parallel tests would meet in them (one leader for every test).

``TEST_ENGINE=postgresql`` makes the rigs (tests/scheduler_rig.py, tests/harness.py) run on PostgreSQL: with
it ``.ci/run`` runs the suite a second time; tests that are about SQLite itself carry the ``sqlite_only``
marker and skip then.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from services.store.migrations_pg import MIGRATIONS_PG
from services.store.postgres import PostgresDatabase

ENGINES = ("sqlite", "postgresql")
SKIP_REASON = "needs PostgreSQL: set TEST_DATABASE_URL, or run the tests as `.ci/with-postgres pytest`"


def engine() -> str:
    """The engine the rigs use when a test does not pick one: TEST_ENGINE, SQLite by default."""
    chosen = os.environ.get("TEST_ENGINE", "sqlite").strip().lower() or "sqlite"
    if chosen not in ENGINES:
        raise ValueError(f"TEST_ENGINE={chosen!r}: it should be sqlite or postgresql")
    return chosen


def server_url() -> str:
    """The test server's URL; skips the test (fails it under REQUIRE_POSTGRES) when there is none."""
    url = os.environ.get("TEST_DATABASE_URL", "").strip()
    if url:
        return url
    if os.environ.get("REQUIRE_POSTGRES", "").strip() not in ("", "0"):
        pytest.fail("REQUIRE_POSTGRES is set but TEST_DATABASE_URL is not: start one with .ci/with-postgres")
    pytest.skip(SKIP_REASON)


def in_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


# Held while a template is made, so parallel workers make it once.
_TEMPLATE_LOCK = 0x6776_6274
_templates: set[str] = set()


async def _template(admin: asyncpg.Connection, url: str) -> str:
    """The template database with this version's schema (named by its migrations), made if it is missing."""
    name = "gvb_template_" + hashlib.sha256("\0".join(MIGRATIONS_PG).encode()).hexdigest()[:12]
    if name in _templates:
        return name
    await admin.execute("SELECT pg_advisory_lock($1)", _TEMPLATE_LOCK)
    try:
        if not await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            await admin.execute(f"CREATE DATABASE {name}_part")
            database = await PostgresDatabase.open(in_database(url, f"{name}_part"))
            await database.close()
            await admin.execute(f"ALTER DATABASE {name}_part RENAME TO {name}")
    finally:
        await admin.execute("SELECT pg_advisory_unlock($1)", _TEMPLATE_LOCK)
    _templates.add(name)
    return name


@contextlib.asynccontextmanager
async def fresh_store_url(*, empty: bool = False) -> AsyncIterator[str]:
    """A URL to a database of its own on the test server, at this version's schema (``empty``: none at all)."""
    url = server_url()
    name = f"gvb_test_{uuid.uuid4().hex[:16]}"
    admin = await asyncpg.connect(url)
    try:
        template = "template0" if empty else await _template(admin, url)
        await admin.execute(f"CREATE DATABASE {name} TEMPLATE {template}")
    finally:
        await admin.close()
    try:
        yield in_database(url, name)
    finally:
        admin = await asyncpg.connect(url)
        try:
            await admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
        finally:
            await admin.close()


@contextlib.asynccontextmanager
async def store_url(chosen: str | None = None) -> AsyncIterator[str | None]:
    """None for SQLite (the caller's file), or a fresh PostgreSQL URL: for ``chosen``, else ``TEST_ENGINE``."""
    if (chosen or engine()) == "sqlite":
        yield None
        return
    async with fresh_store_url() as url:
        yield url
