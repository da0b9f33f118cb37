"""Moving a store from its SQLite file into an empty PostgreSQL database (``python bot.py migrate-store``).

Every table the migrations made is copied, found in the SQLite file itself (so a table added by a later
migration cannot be forgotten here), parents before the tables whose foreign keys point at them, rows in id
order, ids kept as they were (a Discord message's buttons name its job by id), in one PostgreSQL transaction:
it lands whole or not at all. Afterwards the id sequences continue after the highest id copied. Both stores
must be at this version's schema (opening them migrates them), so their columns are the same
(tests/test_postgres_migrations.py keeps the two dialects twins). A target that already holds any row is
refused: merging two stores would mix up two histories' ids.

The bot must be stopped meanwhile: bot.py holds the SQLite file's instance lock while this runs.
"""

from __future__ import annotations

import logging
from typing import Any

from services.store.database import SqliteDatabase
from services.store.postgres import PostgresDatabase

log = logging.getLogger(__name__)

BATCH_ROWS = 2000
# A table holding files (a stored input may be tens of MiB) moves one row at a time: a batch is held about four
# times over on its way (the row, asyncpg's encoding of it, its buffer growing), so 2000 inputs would not fit.
BLOB_BATCH_ROWS = 1


class TransferRefused(Exception):
    """The move cannot be made as asked; ``str`` is the one line to show."""


async def tables_of(source: SqliteDatabase) -> list[str]:
    """The source's tables, each after the tables its foreign keys point at."""
    rows = await source.fetch_all("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
    names = sorted(str(row[0]) for row in rows)
    parents = {name: await _parents(source, name) for name in names}
    ordered: list[str] = []
    while len(ordered) < len(names):
        ready = [n for n in names if n not in ordered and parents[n] <= {*ordered, n}]
        if not ready:
            raise TransferRefused(f"the tables' foreign keys form a cycle: {sorted(set(names) - set(ordered))}")
        ordered += ready
    return ordered


async def _parents(source: SqliteDatabase, table: str) -> set[str]:
    return {str(row["table"]) for row in await source.fetch_all(f"PRAGMA foreign_key_list({table})")}


async def copy_store(source: SqliteDatabase, target: PostgresDatabase) -> dict[str, int]:
    """Copy every row of ``source`` into the empty ``target``; the rows copied, by table (in copying order)."""
    tables = await tables_of(source)
    types = await _column_types(target)
    missing = [table for table in tables if table not in types]
    if missing:
        raise TransferRefused(f"the PostgreSQL store has no table {', '.join(missing)}: upgrade it first")
    copied: dict[str, int] = {}
    async with target.transaction():
        for table in tables:
            row = await target.fetch_one(f"SELECT 1 FROM {table} LIMIT 1")
            if row is not None:
                raise TransferRefused(
                    f"the PostgreSQL store already holds data ({table} is not empty); migrate-store only fills an "
                    "empty one: point --to at a new database"
                )
        for table in tables:
            copied[table] = await _copy_table(source, target, table, types[table])
        for table, column in await _identities(target):
            await target.fetch_one(
                f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'), "
                f"COALESCE((SELECT MAX({column}) FROM {table}), 0) + 1, false)"
            )
    return copied


async def _copy_table(source: SqliteDatabase, target: PostgresDatabase, table: str, types: dict[str, str]) -> int:
    columns = [str(row[1]) for row in await source.fetch_all(f"PRAGMA table_info({table})")]
    unknown = [column for column in columns if column not in types]
    if unknown:
        raise TransferRefused(f"the PostgreSQL store's {table} has no column {', '.join(unknown)}: upgrade it first")
    names = ", ".join(columns)
    marks = ", ".join("?" for _ in columns)
    insert = f"INSERT INTO {table} ({names}) VALUES ({marks})"
    batch = BLOB_BATCH_ROWS if "bytea" in types.values() else BATCH_ROWS
    count, after = 0, None
    while True:
        # After the last rowid copied (not OFFSET, which would read every row before it again for each batch).
        rows = await source.fetch_all(
            f"SELECT rowid, {names} FROM {table} WHERE ? IS NULL OR rowid > ? ORDER BY rowid LIMIT ?",
            (after, after, batch),
        )
        if not rows:
            return count
        await target.execute_many(
            insert,
            [[_as(types[column], value) for column, value in zip(columns, values, strict=True)] for _, *values in rows],
        )
        count += len(rows)
        after = rows[-1][0]


def _as(pg_type: str, value: Any) -> Any:
    """A SQLite value as the PostgreSQL column's type wants it (SQLite lets a column hold any type)."""
    if value is None:
        return None
    if pg_type in ("bigint", "integer", "smallint"):
        return int(value)
    if pg_type == "double precision":
        return float(value)
    if pg_type == "bytea":
        return bytes(value)
    if pg_type == "text":
        return value if isinstance(value, str) else str(value)
    return value


async def _column_types(target: PostgresDatabase) -> dict[str, dict[str, str]]:
    rows = await target.fetch_all(
        """SELECT table_name, column_name, data_type FROM information_schema.columns
           WHERE table_schema = current_schema()"""
    )
    types: dict[str, dict[str, str]] = {}
    for table, column, data_type in rows:
        types.setdefault(str(table), {})[str(column)] = str(data_type)
    return types


async def _identities(target: PostgresDatabase) -> list[tuple[str, str]]:
    rows = await target.fetch_all(
        """SELECT table_name, column_name FROM information_schema.columns
           WHERE table_schema = current_schema() AND is_identity = 'YES'"""
    )
    return [(str(row[0]), str(row[1])) for row in rows]
