"""bot.py's commands, apart from the bot itself: the settings each reads, the store lock each holds, what it
says when another process holds that store, the secrets its log masks, and ``generate``'s run.

Discord stays in bot.py (services never import discord): the bot, ``sync``, ``check``'s invite link, logging.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from services import checkup, terminal
from services.cluster import alone
from services.config import CommonSettings, Settings, load_common_settings, load_settings
from services.process import instance_lock, pgtools, proxies
from services.store import backup
from services.store.postgres import url_password

EXIT_CONFIG = 78  # EX_CONFIG: a setting is missing or wrong
EXIT_STORE_IN_USE = 75  # EX_TEMPFAIL: another bot holds DATABASE_PATH; this one can start once it has stopped
# They read only the common settings: a backup or a move of the store never talks to xAI or Discord.
STORE_COMMANDS = ("backup", "migrate-store")


def build_parser() -> argparse.ArgumentParser:
    """bot.py's command line: ``run`` when no command is given."""
    parser = argparse.ArgumentParser(prog="bot.py", description="A Discord bot for xAI's Grok Imagine video API.")
    commands_ = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands_.add_parser("run", help="run the bot (the default)")
    commands_.add_parser("sync", help="push the slash commands to Discord now, then exit")
    terminal.add_arguments(commands_.add_parser("generate", help="make one video from the terminal"))
    commands_.add_parser("check", help="check the settings, Discord, xAI and the store; print the invite link")
    commands_.add_parser("backup", help="copy the SQLite store to FILE while the bot runs").add_argument("file")
    moving = commands_.add_parser("migrate-store", help="copy the SQLite store into an empty PostgreSQL database")
    moving.add_argument("--to", required=True, metavar="URL", help="postgresql://user:password@host:5432/dbname")
    return parser


def load_for(command: str) -> CommonSettings:
    """The settings ``command`` needs and no more (Settings, but for the store commands); ConfigError names
    the one setting that is missing or wrong."""
    if command in STORE_COMMANDS:
        return load_common_settings()
    return load_settings(need_discord=command in ("run", "sync", "check"))


def run_store_command(command: str, args: argparse.Namespace, settings: CommonSettings) -> int:
    """``backup`` or ``migrate-store``, inside ``hold_store``: neither needs more than the common settings."""
    if command == "backup":  # takes no lock: one more reader of a running bot's store
        return backup.command(settings.database_path, Path(args.file), postgres=bool(settings.database_url))
    # migrate-store: the bot stopped, and the SQLite file's lock is held meanwhile
    return asyncio.run(pgtools.migrate_store(settings, args.to, sys.stdout))


async def check(settings: Settings, invite: Callable[[int], str], stream: TextIO = sys.stdout) -> int:
    """``python bot.py check``: one line per finding, the invite link, and exit status 0 only when all is well.

    ``invite`` makes the link from the application id (bot.py, with discord.py's own helper)."""
    report = await checkup.run_checks(settings)
    for finding in report.findings:
        print(finding.line(), file=stream)
    if report.application_id is not None:
        print(f"Invite link: {invite(report.application_id)}", file=stream)
    problems = sum(1 for finding in report.findings if not finding.ok)
    print("All good." if not problems else f"{problems} problem{'s' if problems != 1 else ''} to fix.", file=stream)
    if report.newer_store:
        return EXIT_CONFIG  # as every other command refuses that store
    return 0 if not problems else 1


def secret_values(settings: CommonSettings | None) -> list[str]:
    """The configured secrets (and a password in a proxy variable), for the log redactor."""
    if settings is None:
        return []
    values: list[str] = []
    if isinstance(settings, Settings):
        values.append(settings.xai.api_key.reveal())
        if settings.discord is not None:
            values.append(settings.discord.token.reveal())
    if settings.database_url is not None:  # DATABASE_URL: the whole URL, and its password wherever it turns up
        values += [settings.database_url.reveal(), *filter(None, [url_password(settings.database_url.reveal())])]
    return values + proxies.proxy_passwords()


def hold_store(settings: CommonSettings, command: str) -> contextlib.AbstractContextManager[object]:
    """One bot per database: ``run`` holds its lock, and so does ``generate``.

    ``generate`` runs a scheduler of its own that spends the same xAI account's per-minute budget and
    concurrency, which the bot's budget cannot see. ``check`` only looks; ``sync`` touches no job. A PostgreSQL
    store (DATABASE_URL) has no file to lock: processes share it, and ``generate`` takes the scheduler's leader
    lock instead (services/cluster/alone.py). ``migrate-store`` holds the SQLite file's lock, when there is a file
    (none: it says so, and leaves no folder or lock file behind).
    """
    moving = command == "migrate-store" and settings.database_path.is_file()
    if moving or (command in ("run", "generate") and settings.database_url is None):
        return instance_lock.InstanceLock.acquire(settings.database_path, command=command)
    return contextlib.nullcontext()


def in_use_message(in_use: instance_lock.StoreInUse, command: str) -> str:
    """Why ``command`` cannot have the store another process holds, and what to do."""
    if command == "migrate-store":
        return f"{in_use}; stop it before moving its store, so no job changes while it is copied"
    if command == "generate":
        return (
            f"{in_use}; a generate beside it would spend the same xAI budget a second time. "
            "Wait for it to stop, or make the video with /video in Discord"
        )
    if in_use.holder.command == "generate":
        return f"{in_use}; start the bot once it has finished"
    return f"{in_use}; a second one on the same database would deliver every job twice. Stop that one first"


async def generate(args: argparse.Namespace, settings: Settings) -> int:
    """``generate``, with SIGTERM taken like Ctrl-C: the job is cancelled, never left behind as running."""
    task = asyncio.current_task()
    assert task is not None
    with contextlib.suppress(NotImplementedError):
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    url = settings.database_url
    try:
        async with alone.the_only_scheduler(url.reveal()) if url is not None else contextlib.nullcontext():
            return await terminal.generate(args, settings)
    except alone.SchedulerBusy as busy:
        print(f"error: {busy}", file=sys.stderr)
        return EXIT_STORE_IN_USE
    except asyncio.CancelledError:
        print("error: interrupted before anything was sent to xAI", file=sys.stderr)
        return terminal.Exit.INTERRUPTED
