"""grok-video-bot: run the Discord bot, or use its terminal commands.

python bot.py                 run the bot
python bot.py sync            push the slash commands to Discord now
python bot.py generate ...    make one video from the terminal (needs only the xAI settings)
python bot.py check           check the settings, Discord, xAI and the store, then print the invite link
python bot.py backup FILE     copy the SQLite store, also while the bot runs (needs only the store's settings)
python bot.py migrate-store --to postgresql://...   move the SQLite store into an empty PostgreSQL database
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import signal
import sys
from typing import Any

import aiohttp
import discord
import yarl
from discord import app_commands
from discord.ext import commands

from cogs import replies
from cogs.cancel import CancelButton, status_view
from cogs.confirm import Confirmations
from cogs.results import RESULT_BUTTONS, ResultsCog, result_view
from services import cli, permissions
from services.cli import EXIT_CONFIG, EXIT_STORE_IN_USE
from services.cluster import wiring as cluster
from services.cluster.gateway import ShardTaken
from services.config import DISCORD_REFUSED_LOGIN, CommonSettings, ConfigError, DiscordSettings, Settings
from services.delivery.adapter import PROGRESS_INTERVAL_S, DiscordDelivery
from services.delivery.status_texts import StatusTexts
from services.media.retention import Janitor
from services.observe import logformat
from services.observe.health import Health
from services.observe.metrics import Readings
from services.observe.server import serving
from services.process import instance_lock, proxies, redaction, startup
from services.process.startup import Backoff, Stopped, StopSignal, Unreachable, open_store
from services.runtime import Runtime, Sessions, build_runtime, open_sessions
from services.store.store import Store

log = logging.getLogger("grok_video_bot")

# Commands and triggers. The buttons are not extensions: the delivery needs their views when it is built.
EXTENSIONS = ("cogs.video", "cogs.menus", "cogs.mentions", "cogs.myvideos", "cogs.admin", "cogs.usage", "cogs.show")
COMMAND_HASH_KEY = "command_tree_hash"
DISCORD_API = "https://discord.com/api/v10"
# Start-up trouble worth another try: no answer, a refused or reset connection, Discord's own 5xx.
UNREACHABLE = (OSError, aiohttp.ClientError, TimeoutError, discord.DiscordServerError)


def invite_permissions() -> discord.Permissions:
    """Exactly what the bot needs to post videos, and nothing more (services/permissions.py)."""
    return discord.Permissions(permissions.mask())


def invite_url(application_id: int) -> str:
    return discord.utils.oauth_url(
        application_id, permissions=invite_permissions(), scopes=("bot", "applications.commands")
    )


class VideoCommandTree(app_commands.CommandTree["GrokVideoBot"]):
    """Command errors go through the one shared handler every button and form uses (cogs/replies.py)."""

    async def on_error(self, interaction: discord.Interaction, error: app_commands.AppCommandError) -> None:
        await replies.report(interaction, error)


class GrokVideoBot(commands.Bot):
    """The bot: loads the cogs, starts the scheduler, keeps commands in sync, shuts down in order."""

    user: discord.ClientUser
    runtime: Runtime
    delivery: DiscordDelivery
    janitor: Janitor

    def __init__(
        self,
        *,
        settings: Settings,
        store: Store,
        sessions: Sessions,
        sync_only: bool = False,
        progress_interval_s: float = PROGRESS_INTERVAL_S,
    ) -> None:
        assert settings.discord is not None
        intents = discord.Intents.default()
        # Only the opt-in reply trigger needs the privileged Message Content intent.
        intents.message_content = settings.discord.enable_reply_trigger
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=intents,
            help_command=None,
            allowed_mentions=discord.AllowedMentions.none(),
            tree_cls=VideoCommandTree,
            max_ratelimit_timeout=60.0,
            **discord_proxy_options(settings.discord),
            **self.shard_options(settings),
        )
        self.settings = settings
        self.identifies = cluster.identify_queue(settings)  # spaced across every process of the bot
        self.sync_only = sync_only
        self.delivery = DiscordDelivery(
            self, store, result_view=result_view, status_view=status_view, progress_interval_s=progress_interval_s
        )
        # Built, not started: setup_hook starts the scheduler, which reports to the delivery from the first job.
        links = cluster.links_for(settings)  # PostgreSQL: the scheduler runs in the elected process only
        self.runtime = build_runtime(
            settings.xai, store, sessions, listener=self.delivery, limits=settings.limits, links=links
        )
        self.delivery.board.texts = StatusTexts(settings.limits.catalog, self.runtime.scheduler)  # price and wait
        self.confirmations = Confirmations()  # how long a costly video waits for its Confirm (cogs/confirm.py)
        # Removes finished media after MEDIA_RETENTION_DAYS, and at once for Delete and /videoadmin forget.
        self.janitor = Janitor(store, self.runtime.scheduler.media_dir, settings.retention)
        self._work_stopped = False
        # /healthz: the gateway, and the scheduler's heartbeat where this process runs it (a cluster's other
        # processes stand by: their scheduler is not meant to run).
        seat = self.runtime.seat
        self.health = Health.watching(self, self.runtime.scheduler, standing_by=lambda: not seat.seated)

    async def setup_hook(self) -> None:
        for extension in EXTENSIONS:
            try:
                await self.load_extension(extension)
            except commands.ExtensionError:
                log.exception("Failed to load %s", extension)
        self.add_dynamic_items(*RESULT_BUTTONS, CancelButton)  # they work on messages of earlier runs too
        await self.add_cog(ResultsCog(self))
        if self.sync_only or cluster.syncs_commands(self.settings):  # in a cluster, the process with shard 0
            await self.sync_commands(force=self.sync_only)
        if self.sync_only:
            return
        await self.runtime.seat.start()  # the scheduler: here, or (PostgreSQL) in whichever process is elected
        self.janitor.start()
        log.info("Invite me with: %s", invite_url(self.application_id or self.user.id))

    async def sync_commands(self, *, force: bool = False) -> bool:
        """Push the command tree to Discord when it changed since the last push (or when forced)."""
        assert self.settings.discord is not None
        guild_id = self.settings.discord.dev_guild_id
        guild = discord.Object(guild_id) if guild_id else None
        if guild is not None:
            self.tree.copy_global_to(guild=guild)
        payload = [command.to_dict(self.tree) for command in self.tree.get_commands(guild=guild)]
        digest = hashlib.sha256(
            json.dumps({"guild": guild_id, "commands": payload}, sort_keys=True).encode()
        ).hexdigest()
        if not force and await self.runtime.store.kv.get(COMMAND_HASH_KEY) == digest:
            log.info("Slash commands unchanged since the last sync; not syncing")
            return False
        synced = await self.tree.sync(guild=guild)
        await self.runtime.store.kv.set(COMMAND_HASH_KEY, digest)
        log.info("Synced %d command(s) %s", len(synced), f"to server {guild_id}" if guild_id else "globally")
        return True

    async def on_message(self, message: discord.Message, /) -> None:
        """The bot has no text commands: a mention is not a prefix, so nothing is parsed as a command.

        (commands.Bot would call ``process_commands`` here and log CommandNotFound for every mention.)
        The cogs' own ``on_message`` listeners, such as the reply trigger, still run.
        """

    def shard_options(self, settings: Settings) -> dict[str, Any]:
        return {}

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        await self.identifies.before_identify(shard_id)

    async def close(self) -> None:
        await self.stop_work()
        await super().close()

    async def stop_work(self) -> None:
        """All but Discord, first: the scheduler (its last posts still need Discord), the janitor, the turn. Once:
        SIGTERM's orderly close runs it before ``close``, which runs it too."""
        if self._work_stopped:
            return
        self._work_stopped = True
        await self.runtime.seat.stop()
        await self.janitor.stop()
        await self.identifies.close()


class ShardedGrokVideoBot(GrokVideoBot, commands.AutoShardedBot):
    """DISCORD_SHARD_COUNT / DISCORD_SHARD_IDS: this process runs those shards (services/cluster/shards.py)."""

    def shard_options(self, settings: Settings) -> dict[str, Any]:
        plan = settings.discord.shards if settings.discord is not None else None
        assert plan is not None
        return {"shard_count": plan.count, "shard_ids": list(plan.mine)}


async def configure_endpoints(discord_settings: DiscordSettings) -> None:
    """Point discord.py at a REST proxy (or the test emulator) when one is configured.

    Raises Unreachable when the proxy cannot be reached (worth another try) and ConfigError when it answers
    but will not say where its gateway is, or refuses the token (not worth one).
    """
    base = discord_settings.api_base_url
    if base is None:
        return
    discord.http.Route.BASE = base
    gateway = discord_settings.gateway_url or await startup.ask_gateway(base, discord_settings.token)
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway)


def discord_proxy_options(discord_settings: DiscordSettings | None) -> dict[str, Any]:
    """discord.py's HTTP client ignores HTTPS_PROXY / NO_PROXY; hand it the one every other session uses."""
    base = (discord_settings.api_base_url if discord_settings else None) or DISCORD_API
    proxy = proxies.proxy_for(base)
    return {"proxy": proxy.url, "proxy_auth": proxy.auth}


async def run_bot(settings: Settings, *, sync_only: bool = False) -> int:
    """``python bot.py`` (and ``sync``): open the store, then reach Discord, trying again while it cannot be reached.

    A rejected token ends at once with status 78; SIGTERM while waiting ends cleanly with 0 (Ctrl-C: 130).
    """
    discord_settings = settings.discord
    assert discord_settings is not None
    stop = StopSignal()
    _close_on_sigterm(stop)
    proxy = proxies.proxy_for(discord_settings.api_base_url or DISCORD_API)
    if proxy.url is not None:
        log.info("Discord is reached through the proxy %s (HTTPS_PROXY / HTTP_PROXY)", proxy.shown)
    backoff = Backoff(discord_settings.retry_first_s, discord_settings.retry_max_s)
    try:
        waiting = Backoff(discord_settings.retry_first_s, discord_settings.retry_max_s)  # for PostgreSQL to answer
        async with (
            await open_store(settings.database_path, settings.database_url, stop=stop, backoff=waiting) as store,
            cluster.shards_claimed(settings, claim=not sync_only, wait=stop.sleep),  # a stop ends its wait
        ):
            while True:
                try:
                    return await _start_once(settings, store, stop, sync_only=sync_only)
                except Unreachable as unreachable:
                    delay = unreachable.retry_after_s or backoff.next_delay()
                    log.warning("%s; trying again in %s", unreachable, startup.seconds(delay))
                    await stop.sleep(delay)
    except Stopped:
        log.info("Stopped before the bot was connected to Discord")
        return 0
    except ShardTaken as taken:
        print(f"error: {taken}", file=sys.stderr)
        return EXIT_STORE_IN_USE


async def _start_once(settings: Settings, store: Store, stop: StopSignal, *, sync_only: bool) -> int:
    """One try at logging in and connecting. Raises Unreachable when Discord cannot be reached this time.

    Each try opens fresh sessions and builds a fresh bot (and its runtime), so nothing half-started by a failed
    try is reused.
    """
    discord_settings = settings.discord
    assert discord_settings is not None
    where = discord_settings.api_base_url or DISCORD_API
    await stop.unless_stopped(configure_endpoints(discord_settings))
    async with open_sessions(settings.xai) as sessions:
        kind = ShardedGrokVideoBot if discord_settings.shards is not None else GrokVideoBot
        bot = kind(settings=settings, store=store, sessions=sessions, sync_only=sync_only)
        readings = Readings(bot.runtime, bot.delivery.posting, bot.health)
        pages = None if sync_only else settings.observe  # /healthz and /metrics with HTTP_PORT, not for `sync`
        async with bot, serving(pages, bot.health, readings):
            try:
                await stop.unless_stopped(bot.login(discord_settings.token.reveal()))
            except discord.LoginFailure:
                print(f"error: {DISCORD_REFUSED_LOGIN}", file=sys.stderr)
                return EXIT_CONFIG
            except discord.RateLimited as limited:
                raise Unreachable("Discord is rate limiting the bot", retry_after_s=limited.retry_after) from None
            except UNREACHABLE as error:
                raise Unreachable(f"Could not reach Discord at {where} ({startup.reason(error)})") from None
            except discord.HTTPException as error:
                print(f"error: {_refusal(error, discord_settings)}", file=sys.stderr)
                return EXIT_CONFIG if discord_settings.dev_guild_id and error.status in (403, 404) else 1
            if sync_only:
                return 0
            try:
                return await _connect(bot, stop)
            finally:
                await stop.drain()  # an orderly close begun by SIGTERM ends before the runtime closes


async def _connect(bot: GrokVideoBot, stop: StopSignal) -> int:
    """The gateway session, until SIGTERM closes the bot in order (the scheduler first, then Discord)."""
    connection = asyncio.ensure_future(bot.connect())

    async def close_in_order() -> None:
        await bot.stop_work()
        # Then the gateway task, before discord.py's close: it may be asleep in its reconnect backoff (minutes),
        # and a reconnect that the close cuts short would dispatch on the closed client (a traceback, exit 1).
        connection.cancel()
        await bot.close()

    stop.on_stop(close_in_order)
    if stop.stopped:
        await close_in_order()
    try:
        await connection
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise  # Ctrl-C: the whole run is being cancelled
    except discord.PrivilegedIntentsRequired:
        print(
            "error: Discord refused the Message Content intent that ENABLE_REPLY_TRIGGER=true needs. "
            "Turn it on (Developer Portal > your app > Bot > Message Content Intent) or set ENABLE_REPLY_TRIGGER=false",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    except discord.ConnectionClosed as closed:
        if closed.code == 4004:  # the gateway's "authentication failed"
            print(f"error: {DISCORD_REFUSED_LOGIN}", file=sys.stderr)
            return EXIT_CONFIG
        print(f"error: Discord closed the gateway connection (code {closed.code})", file=sys.stderr)
        return 1
    return 0


def _refusal(error: discord.HTTPException, discord_settings: DiscordSettings) -> str:
    """A 4xx during log-in or the command sync, in words (only a bad DEV_GUILD_ID is likely)."""
    what = f"HTTP {error.status}: {error.text or 'no reason given'}"
    guild = discord_settings.dev_guild_id
    if guild and error.status in (403, 404):
        return (
            f"Discord would not take the commands for DEV_GUILD_ID={guild} ({what}). Add the bot to that server "
            "(the invite link is in `python bot.py check`), or leave DEV_GUILD_ID empty"
        )
    return f"Discord refused a start-up request ({what})"


def _close_on_sigterm(stop: StopSignal) -> None:
    """SIGTERM (``systemctl stop``, ``docker stop``) stops start-up at once, or a running bot in order."""
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError):  # not on every platform
        loop.add_signal_handler(signal.SIGTERM, stop.stop)


def setup_logging(
    level: str, settings: CommonSettings | None = None, *, handler: logging.Handler | None = None
) -> None:
    """Log to stderr (or ``handler``) through a formatter that masks the secrets and any token-bearing text."""
    discord.utils.setup_logging(handler=handler or discord.utils.MISSING, level=getattr(logging, level), root=True)
    # discord.py logs every request at DEBUG; below that it is noise. Redaction makes DEBUG safe to turn on.
    logging.getLogger("discord.http").setLevel(logging.DEBUG if level == "DEBUG" else logging.WARNING)
    startup.tidy_discord_log(logging.getLogger("discord.client"))
    if settings is not None and settings.observe.log_format == "json":
        logformat.use_json(logging.getLogger().handlers)
    redaction.protect(logging.getLogger().handlers, redaction.Redactor(cli.secret_values(settings)))


def main(argv: list[str] | None = None) -> int:
    args = cli.build_parser().parse_args(argv)
    command = args.command or "run"
    try:
        settings = cli.load_for(command)  # backup and migrate-store: only the store's settings, no xAI key
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_CONFIG
    setup_logging(
        settings.log_level if command not in ("generate", "check", *cli.STORE_COMMANDS) else "WARNING", settings
    )
    if isinstance(settings, Settings):  # the store commands log nothing below WARNING
        startup.log_sources(settings)
    try:
        with cli.hold_store(settings, command):
            if command in cli.STORE_COMMANDS:
                return cli.run_store_command(command, args, settings)
            assert isinstance(settings, Settings)  # every other command read them all
            if command == "generate":
                return asyncio.run(cli.generate(args, settings))
            if command == "check":
                return asyncio.run(cli.check(settings, invite_url))
            return asyncio.run(run_bot(settings, sync_only=command == "sync"))
    except instance_lock.StoreInUse as in_use:
        print(f"error: {cli.in_use_message(in_use, command)}", file=sys.stderr)
        return EXIT_STORE_IN_USE
    except instance_lock.LockUnavailable as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return 130
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_CONFIG


if __name__ == "__main__":
    sys.exit(main())
