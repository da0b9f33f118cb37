"""What a careless admin's PostgreSQL URL gets: one line naming where it was written, never a traceback or a password.

``migrate-store --to URL`` reads no DATABASE_URL, so what it says of a bad target names the --to URL; a URL the
standard library cannot even split (an unclosed IPv6 "[") is reported as the driver refuses it.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from services.config import ConfigError, load_settings
from services.process.pgtools import migrate_store
from services.store import postgres
from services.store.store import Store
from tests.pgtest import in_database, server_url

UNSPLITTABLE = "postgresql://bot:hunter2@[db.example/grok"


async def _said(tmp_path: Path, url: str) -> str:
    path = tmp_path / "bot.sqlite3"
    async with await Store.open(path):
        pass
    settings = load_settings({"XAI_API_KEY": "k", "DISCORD_TOKEN": "t", "DATABASE_PATH": str(path)})
    with pytest.raises(ConfigError) as refused:
        await migrate_store(settings, url, io.StringIO())
    return str(refused.value)


@pytest.mark.parametrize(
    ("target", "says"),
    [
        ("no database", "create it (createdb) or fix the --to URL"),
        ("no user", "fix the user and password in the --to URL"),
        ("no server", "start PostgreSQL or fix the --to URL"),
        ("bad parameter", "check the --to URL"),
    ],
)
async def test_a_bad_migrate_target_is_said_of_the_to_url_not_database_url(
    tmp_path: Path, target: str, says: str
) -> None:
    server = server_url()
    url = {
        "no database": in_database(server, "gvb_no_such_database"),
        "no user": server.replace("postgres@", "gvb_nobody:secret@", 1),
        "no server": "postgresql://bot:secret@127.0.0.1:1/grok",
        "bad parameter": server + "?sslmode=bogus",
    }[target]
    said = await _said(tmp_path, url)
    assert says in said and "DATABASE_URL" not in said and "secret" not in said


async def test_a_url_urllib_cannot_split_is_one_line_without_its_password(tmp_path: Path) -> None:
    assert postgres.shown_url(UNSPLITTABLE) == "postgresql://bot:***@[db.example/grok"
    assert postgres.where(UNSPLITTABLE) == "[db.example:5432/grok"
    assert postgres.url_password(UNSPLITTABLE) == "hunter2" and postgres.user(UNSPLITTABLE) == "bot"
    said = await _said(tmp_path, UNSPLITTABLE)
    assert "check the --to URL" in said and "hunter2" not in said
