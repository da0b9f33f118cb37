"""The two dialects of the schema stay twins: as many migrations, ending with the same tables, columns and indexes.

Whoever appends a migration to services/store/migrations.py (SQLite) must append its twin to
services/store/migrations_pg.py; these tests fail until they do, naming what differs.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from services.store.database import NewerSchemaError
from services.store.migrations import MIGRATIONS
from services.store.migrations_pg import MIGRATIONS_PG
from services.store.postgres import PostgresDatabase
from services.store.store import Store
from tests.pgtest import fresh_store_url

Shape = dict[str, list[str]]  # table: its columns in order


def test_both_dialects_have_the_same_number_of_migrations() -> None:
    assert len(MIGRATIONS_PG) == len(MIGRATIONS), (
        "services/store/migrations.py and migrations_pg.py differ in length: append the missing twin"
    )


async def _sqlite_shape(path: Path) -> tuple[Shape, set[str]]:
    async with await Store.open(path):
        pass
    with sqlite3.connect(path) as db:
        tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        shape = {
            table: [row[1] for row in db.execute(f"PRAGMA table_info({table})")]
            for table in tables
            if not table.startswith("sqlite_")
        }
        indexes = {
            row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")
        }
    return shape, indexes


async def _postgres_shape(url: str) -> tuple[Shape, set[str]]:
    async with await Store.open("unused", url=url) as store:
        columns = await store.database.fetch_all(
            """SELECT table_name, column_name FROM information_schema.columns
               WHERE table_schema = current_schema() AND table_name != 'schema_version'
               ORDER BY table_name, ordinal_position"""
        )
        indexes = await store.database.fetch_all(
            "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() AND indexname NOT LIKE '%_pkey'"
        )
    shape: Shape = {}
    for table, column in columns:
        shape.setdefault(table, []).append(column)
    return shape, {row[0] for row in indexes}


async def test_both_dialects_end_with_the_same_tables_columns_and_indexes(tmp_path: Path) -> None:
    sqlite_tables, sqlite_indexes = await _sqlite_shape(tmp_path / "shape.sqlite3")
    async with fresh_store_url(empty=True) as url:
        postgres_tables, postgres_indexes = await _postgres_shape(url)
    assert postgres_tables == sqlite_tables
    assert postgres_indexes == sqlite_indexes


async def test_a_store_from_a_newer_bot_is_refused_and_left_alone() -> None:
    async with fresh_store_url(empty=True) as url:
        async with await Store.open("unused", url=url) as store:
            await store.database.execute("UPDATE schema_version SET version = ?", (len(MIGRATIONS_PG) + 1,))
        with pytest.raises(NewerSchemaError, match="newer version of the bot"):
            await PostgresDatabase.open(url)
        with pytest.raises(NewerSchemaError):  # and again: nothing was changed by the first refusal
            await PostgresDatabase.open(url)


async def test_reopening_applies_nothing_twice() -> None:
    async with fresh_store_url(empty=True) as url:
        async with await Store.open("unused", url=url) as store:
            job_count = await store.database.fetch_one("SELECT COUNT(*) FROM jobs")
            assert job_count is not None and job_count[0] == 0
        async with await Store.open("unused", url=url) as store:
            assert await store.schema_version() == len(MIGRATIONS_PG)
