"""grok-video-bot: run the Discord bot, or use its terminal commands.

python bot.py                 run the bot
python bot.py sync            push the slash commands to Discord now
python bot.py generate ...    make one video from the terminal (needs only the xAI settings)
python bot.py check           check the settings, Discord, xAI and the store, then print the invite link
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import logging
import signal
import sys
from typing import Any, TextIO

import aiohttp
import discord
import yarl
from discord import app_commands
from discord.ext import commands

from services import checkup, redaction, terminal
from services.config import DISCORD_REFUSED_LOGIN, ConfigError, DiscordSettings, Settings, load_settings
from services.delivery import DiscordDelivery
from services.runtime import Runtime, open_runtime
from services.store import JobStore

log = logging.getLogger("grok_video_bot")

EXTENSIONS: tuple[str, ...] = ("cogs.video", "cogs.followups", "cogs.admin")
COMMAND_HASH_KEY = "command_tree_hash"
EXIT_CONFIG = 78  # EX_CONFIG: a setting is missing or wrong


def invite_permissions() -> discord.Permissions:
    """Exactly what the bot needs to post videos, and nothing more."""
    return discord.Permissions(
        view_channel=True,
        send_messages=True,
        send_messages_in_threads=True,
        attach_files=True,
        embed_links=True,
        read_message_history=True,
    )


def invite_url(application_id: int) -> str:
    return discord.utils.oauth_url(
        application_id, permissions=invite_permissions(), scopes=("bot", "applications.commands")
    )


class VideoCommandTree(app_commands.CommandTree["GrokVideoBot"]):
    """One place that turns unexpected command errors into a polite answer (and a log line)."""

    async def on_error(self, interaction: discord.Interaction, error: app_commands.AppCommandError) -> None:
        if isinstance(error, app_commands.CheckFailure):
            text = str(error) or "You can't use this command here."
        else:
            command = interaction.command.qualified_name if interaction.command else "?"
            log.error(
                "Command %s failed (user %s, guild %s)",
                command,
                interaction.user.id,
                interaction.guild_id,
                exc_info=error,
            )
            text = "❌ Something went wrong on my side. Please try again in a moment."
        try:
            if interaction.response.is_done():
                await interaction.edit_original_response(content=text)
            else:
                await interaction.response.send_message(text, ephemeral=True)
        except discord.HTTPException:
            log.info("Could not tell the user about the error (interaction %s)", interaction.id)


class GrokVideoBot(commands.Bot):
    """The bot: loads the cogs, starts the scheduler, keeps commands in sync, shuts down in order."""

    user: discord.ClientUser
    runtime: Runtime
    delivery: DiscordDelivery

    def __init__(self, *, settings: Settings, runtime: Runtime, sync_only: bool = False) -> None:
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
        )
        self.settings = settings
        self.runtime = runtime
        self.sync_only = sync_only
        self.delivery = DiscordDelivery(self, runtime.store)

    async def setup_hook(self) -> None:
        for extension in EXTENSIONS:
            try:
                await self.load_extension(extension)
            except commands.ExtensionError:
                log.exception("Failed to load %s", extension)
        await self.sync_commands(force=self.sync_only)
        if self.sync_only:
            return
        self.runtime.scheduler.listener = self.delivery
        await self.runtime.scheduler.start()
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
        if not force and await self.runtime.store.get_value(COMMAND_HASH_KEY) == digest:
            log.info("Slash commands unchanged since the last sync; not syncing")
            return False
        synced = await self.tree.sync(guild=guild)
        await self.runtime.store.set_value(COMMAND_HASH_KEY, digest)
        log.info("Synced %d command(s) %s", len(synced), f"to server {guild_id}" if guild_id else "globally")
        return True

    async def close(self) -> None:
        await self.runtime.scheduler.stop()
        await super().close()


async def configure_endpoints(discord_settings: DiscordSettings) -> None:
    """Point discord.py at a REST proxy (or the test emulator) when one is configured."""
    base = discord_settings.api_base_url
    if base is None:
        return
    discord.http.Route.BASE = base
    gateway = discord_settings.gateway_url
    if gateway is None:
        headers = {"Authorization": f"Bot {discord_settings.token.reveal()}"}
        async with aiohttp.ClientSession() as session, session.get(f"{base}/gateway/bot", headers=headers) as resp:
            if resp.status == 401:
                raise ConfigError(DISCORD_REFUSED_LOGIN)
            if resp.status != 200:
                raise ConfigError(
                    f"DISCORD_API_BASE_URL={base} did not tell me its gateway (HTTP {resp.status}); "
                    "set DISCORD_GATEWAY_URL too"
                )
            data: dict[str, Any] = await resp.json(content_type=None)
            gateway = str(data["url"])
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway)


async def run_bot(settings: Settings, *, sync_only: bool = False) -> int:
    assert settings.discord is not None
    await configure_endpoints(settings.discord)
    async with (
        await JobStore.open(settings.database_path) as store,
        open_runtime(settings.xai, store, limits=settings.limits) as runtime,
    ):
        bot = GrokVideoBot(settings=settings, runtime=runtime, sync_only=sync_only)
        async with bot:
            _close_on_sigterm(bot)
            try:
                await bot.login(settings.discord.token.reveal())
            except discord.LoginFailure:
                print(f"error: {DISCORD_REFUSED_LOGIN}", file=sys.stderr)
                return EXIT_CONFIG
            if sync_only:
                return 0
            await bot.connect()
    return 0


def _close_on_sigterm(bot: GrokVideoBot) -> None:
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError):  # not on every platform
        loop.add_signal_handler(signal.SIGTERM, lambda: loop.create_task(bot.close()))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bot.py", description="A Discord bot for xAI's Grok Imagine video API.")
    commands_ = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands_.add_parser("run", help="run the bot (the default)")
    commands_.add_parser("sync", help="push the slash commands to Discord now, then exit")
    terminal.add_arguments(commands_.add_parser("generate", help="make one video from the terminal"))
    commands_.add_parser("check", help="check the settings, Discord, xAI and the store; print the invite link")
    return parser


def setup_logging(level: str, settings: Settings | None = None, *, handler: logging.Handler | None = None) -> None:
    """Log to stderr (or ``handler``) through a formatter that masks the secrets and any token-bearing text."""
    discord.utils.setup_logging(handler=handler or discord.utils.MISSING, level=getattr(logging, level), root=True)
    # discord.py logs every request at DEBUG; below that it is noise. Redaction makes DEBUG safe to turn on.
    logging.getLogger("discord.http").setLevel(logging.DEBUG if level == "DEBUG" else logging.WARNING)
    redaction.protect(logging.getLogger().handlers, redaction.Redactor(secret_values(settings)))


def secret_values(settings: Settings | None) -> list[str]:
    """The configured secrets, for the log redactor."""
    if settings is None:
        return []
    values = [settings.xai.api_key.reveal()]
    if settings.discord is not None:
        values.append(settings.discord.token.reveal())
    return values


async def check(settings: Settings, stream: TextIO = sys.stdout) -> int:
    """``python bot.py check``: one line per finding, the invite link, and exit status 0 only when all is well."""
    report = await checkup.run_checks(settings)
    for finding in report.findings:
        print(finding.line(), file=stream)
    if report.application_id is not None:
        print(f"Invite link: {invite_url(report.application_id)}", file=stream)
    problems = sum(1 for finding in report.findings if not finding.ok)
    print("All good." if not problems else f"{problems} problem{'s' if problems != 1 else ''} to fix.", file=stream)
    return 0 if not problems else 1


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    command = args.command or "run"
    try:
        settings = load_settings(need_discord=command in ("run", "sync", "check"))
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_CONFIG
    setup_logging(settings.log_level if command not in ("generate", "check") else "WARNING", settings)
    try:
        if command == "generate":
            return asyncio.run(terminal.generate(args, settings))
        if command == "check":
            return asyncio.run(check(settings))
        return asyncio.run(run_bot(settings, sync_only=command == "sync"))
    except KeyboardInterrupt:
        return 130
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_CONFIG


if __name__ == "__main__":
    sys.exit(main())
