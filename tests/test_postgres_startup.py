"""DATABASE_URL from the settings to a running store: chosen, masked, waited for, and refused in one line."""

from __future__ import annotations

import asyncio
import logging
import socket
from pathlib import Path

import pytest

from services import cli
from services.config import ConfigError, Secret, load_settings
from services.process import redaction
from services.process.pgtools import check_line
from services.process.startup import Backoff, Stopped, StopSignal, open_store
from services.store.migrations_pg import MIGRATIONS_PG
from tests.pgtest import fresh_store_url

PASSWORD = "s3cret-Passw0rd"


def _closed_port() -> int:
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        return int(free.getsockname()[1])


def test_database_url_selects_postgresql_and_is_kept_secret() -> None:
    url = f"postgresql://bot:{PASSWORD}@db.internal:5432/grok"
    settings = load_settings({"XAI_API_KEY": "k", "DATABASE_URL": url}, need_discord=False)
    assert settings.database_url == Secret(url) and PASSWORD not in repr(settings)
    masked = redaction.Redactor(cli.secret_values(settings))
    assert PASSWORD not in masked(f"could not log in as bot:{PASSWORD} at db.internal") and PASSWORD not in masked(url)
    assert load_settings({"XAI_API_KEY": "k"}, need_discord=False).database_url is None


@pytest.mark.parametrize("raw", ["mysql://a@b/c", "postgresql://", "data/bot.sqlite3"])
def test_a_database_url_that_is_not_postgresqls_is_refused_naming_the_form(raw: str) -> None:
    with pytest.raises(ConfigError, match=r"DATABASE_URL is not valid: it should be a PostgreSQL URL like") as error:
        load_settings({"XAI_API_KEY": "k", "DATABASE_URL": raw}, need_discord=False)
    assert raw not in str(error.value) or raw == "postgresql://"


def test_the_sqlite_lock_is_taken_for_sqlite_only(tmp_path: Path) -> None:
    on_postgres = load_settings(
        {"XAI_API_KEY": "k", "DATABASE_URL": "postgresql://a@b/c", "DATABASE_PATH": str(tmp_path / "x.sqlite3")},
        need_discord=False,
    )
    with cli.hold_store(on_postgres, "run"):
        assert not (tmp_path / "x.sqlite3.lock").exists()
    on_sqlite = load_settings({"XAI_API_KEY": "k", "DATABASE_PATH": str(tmp_path / "x.sqlite3")}, need_discord=False)
    with cli.hold_store(on_sqlite, "run"):
        assert (tmp_path / "x.sqlite3.lock").exists()


async def test_a_server_that_is_down_is_one_line_and_never_the_password(tmp_path: Path) -> None:
    url = f"postgresql://bot:{PASSWORD}@127.0.0.1:{_closed_port()}/grok"
    with pytest.raises(ConfigError) as error:
        await open_store(tmp_path / "x", Secret(url))
    text = str(error.value)
    assert text.startswith("Could not reach PostgreSQL at 127.0.0.1:") and "/grok" in text and "\n" not in text
    assert PASSWORD not in text and "start PostgreSQL or fix DATABASE_URL" in text
    ok, line, _ = await check_line(url)
    assert not ok and line.startswith("Store: Could not reach PostgreSQL") and PASSWORD not in line


async def test_start_up_waits_for_the_server_with_a_line_each_try_until_stopped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    url = f"postgresql://bot:{PASSWORD}@127.0.0.1:{_closed_port()}/grok"
    stop = StopSignal()
    waiting = asyncio.ensure_future(open_store(tmp_path / "x", Secret(url), stop=stop, backoff=Backoff(0.01, 0.02)))
    while sum("trying again in" in record.getMessage() for record in caplog.records) < 3:
        await asyncio.sleep(0.01)
    stop.stop()
    with pytest.raises(Stopped):
        await waiting
    lines = [record.getMessage() for record in caplog.records]
    assert all(PASSWORD not in line for line in lines)
    assert lines[0].startswith("Could not reach PostgreSQL at 127.0.0.1:") and "trying again in" in lines[0]


async def test_a_missing_database_and_a_stranger_are_told_apart() -> None:
    async with fresh_store_url() as url:
        base = url.rsplit("/", 1)[0]
        with pytest.raises(ConfigError, match="has no database of that name: create it"):
            await open_store(Path("x"), Secret(f"{base}/no_such_database_here"))
        stranger = base.replace("postgresql://postgres@", f"postgresql://nobody_here:{PASSWORD}@")
        with pytest.raises(ConfigError, match="refused to let user 'nobody_here' in") as error:
            await open_store(Path("x"), Secret(f"{stranger}/postgres"))
        assert PASSWORD not in str(error.value)
        ok, line, _ = await check_line(url)
        assert ok and line.endswith(f"schema {len(MIGRATIONS_PG)}, this version's"), line
        async with await open_store(Path("x"), Secret(url)) as store:
            assert store.engine == "postgresql"
