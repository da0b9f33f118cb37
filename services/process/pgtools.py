"""PostgreSQL's own commands: ``migrate-store`` (a SQLite store moved into PostgreSQL) and ``check``'s line.

Both say what went wrong in one line, as start-up does (``startup.postgres_failure``), and never show the
password of a URL: it is masked wherever it is printed (``postgres.shown_url``).
"""

from __future__ import annotations

from typing import NamedTuple, TextIO

import asyncpg

from services.config import CommonSettings, ConfigError, Secret
from services.process.startup import open_store, postgres_failure
from services.store import postgres, transfer
from services.store.database import SqliteDatabase
from services.store.migrations_pg import MIGRATIONS_PG
from services.store.postgres import PostgresDatabase

CHECK_TIMEOUT_S = 5.0
TO = "the --to URL"  # where migrate-store's person wrote the target, named in what it says about it


class Finding(NamedTuple):
    """One line of ``check``: whether all is well, the line, and whether a newer bot wrote the schema."""

    ok: bool
    line: str
    newer: bool = False


async def migrate_store(settings: CommonSettings, url: str, out: TextIO) -> int:
    """``python bot.py migrate-store --to URL``: DATABASE_PATH's SQLite store copied into the empty PostgreSQL
    database at ``url`` (services/store/transfer.py), with a line per table; ConfigError when it cannot be."""
    path = settings.database_path
    if str(path) == ":memory:" or not path.is_file():
        raise ConfigError(f"There is no SQLite store at DATABASE_PATH={path} to move; point DATABASE_PATH at it")
    if not postgres.is_postgres_url(url):
        raise ConfigError("--to should be a PostgreSQL URL like postgresql://user:password@host:5432/dbname")
    async with await open_store(path) as source, await open_store(path, Secret(url), named=TO) as target:
        assert isinstance(source.database, SqliteDatabase) and isinstance(target.database, PostgresDatabase)
        print(f"Copying {path} into PostgreSQL at {postgres.shown_url(url)} ...", file=out)
        try:
            copied = await transfer.copy_store(source.database, target.database)
        except transfer.TransferRefused as refused:
            raise ConfigError(f"Nothing was copied: {refused}") from None
    for table, rows in copied.items():
        print(f"  {table}: {rows} row{'s' if rows != 1 else ''}", file=out)
    print(
        f"Done. To run on it, set DATABASE_URL={postgres.shown_url(url)} (with its password) and start the bot; "
        f"keep {path} as a backup until you are happy.",
        file=out,
    )
    return 0


async def check_line(url: str) -> Finding:
    """``check``'s finding for a PostgreSQL store: the server answers, lets the bot in, and holds a schema this
    version knows. Only looks (nothing is created or migrated)."""
    where = postgres.where(url)
    try:
        connection = await asyncpg.connect(url, timeout=CHECK_TIMEOUT_S)
    except Exception as error:
        failure = postgres_failure(error, url)
        if failure is error:
            raise
        return Finding(False, f"Store: {failure}")
    try:
        server = connection.get_server_version()
        version = await postgres.schema_version_of(connection)
    finally:
        await connection.close()
    current = len(MIGRATIONS_PG)
    engine = f"Store: PostgreSQL {server.major}.{server.micro} at {where}"  # asyncpg: 15.18 is (15, 0, 18)
    if version > current:
        return Finding(
            False,
            f"{engine} was written by a newer version of the bot (schema {version}; this version knows up to "
            f"{current}): upgrade the bot",
            newer=True,
        )
    if version == 0:
        return Finding(True, f"{engine}: empty; the bot makes its tables at its first start")
    if version < current:
        return Finding(True, f"{engine}: schema {version}; the bot brings it up to {current} at its next start")
    return Finding(True, f"{engine}: schema {version}, this version's")
