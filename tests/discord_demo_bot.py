"""The throwaway bot the Discord emulator's self-tests drive (tests/test_discord_emulator.py).

A cog with slash commands (and a group of subcommands, as the real bot has), a message context
menu that opens a modal, a DynamicItem button and an on_message listener: the parts of discord.py the real
bot uses, in as few lines as show the emulator speaks its protocol.
"""

from __future__ import annotations

import asyncio
import io
import re
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

MP4 = b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 64  # bytes only; the emulator never decodes media


class RegenButton(discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]], template=r"demo:regen:(?P<job>\w+)"):
    def __init__(self, job: str) -> None:
        super().__init__(discord.ui.Button(label="Regenerate", custom_id=f"demo:regen:{job}"))
        self.job = job

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> RegenButton:
        return cls(match["job"])

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        await interaction.response.edit_message(content=f"regenerating {self.job}", view=None)
        await interaction.followup.send(f"queued {self.job}", ephemeral=True)


class PromptModal(discord.ui.Modal, title="Animate this"):
    prompt: discord.ui.TextInput[PromptModal] = discord.ui.TextInput(label="Prompt", custom_id="prompt")
    style: discord.ui.TextInput[PromptModal] = discord.ui.TextInput(label="Style", custom_id="style", required=False)

    def __init__(self, source: discord.Message) -> None:
        super().__init__()
        self.source = source

    async def on_submit(self, interaction: discord.Interaction[Any]) -> None:
        await interaction.response.send_message(
            f"prompt={self.prompt.value} style={self.style.value} files={len(self.source.attachments)}", ephemeral=True
        )


class DemoCog(commands.Cog):
    def __init__(self, bot: DemoBot) -> None:
        self.bot = bot

    @app_commands.command(name="render", description="Render a clip")
    async def render(
        self, interaction: discord.Interaction[Any], video: discord.Attachment, title: str = "untitled"
    ) -> None:
        await interaction.response.defer(thinking=True)
        data = await video.read()
        await interaction.edit_original_response(content=f"got {len(data)} bytes")
        view = discord.ui.View(timeout=None)
        view.add_item(RegenButton("job1"))
        await interaction.followup.send(f"done: {title}", file=discord.File(io.BytesIO(MP4), "out.mp4"), view=view)

    @app_commands.command(name="echo", description="Echo text")
    async def echo(self, interaction: discord.Interaction[Any], text: str, private: bool = False) -> None:
        await interaction.response.defer(thinking=True, ephemeral=private)
        await interaction.followup.send(text)

    @app_commands.command(name="slow", description="Sleeps before acknowledging")
    async def slow(self, interaction: discord.Interaction[Any], seconds: float) -> None:
        await asyncio.sleep(seconds)
        await interaction.response.defer()

    @app_commands.command(name="upload", description="Uploads n bytes")
    async def upload(self, interaction: discord.Interaction[Any], size: int) -> None:
        await interaction.response.defer(thinking=True)
        await interaction.followup.send(file=discord.File(io.BytesIO(b"\0" * size), "blob.mp4"))


class Admin(app_commands.Group):
    @app_commands.command(name="set", description="Set who, where and which role")
    async def set_(
        self, interaction: discord.Interaction[Any], who: discord.Member, where: discord.TextChannel, role: discord.Role
    ) -> None:
        await interaction.response.send_message(f"{who.id} {where.id} {role.id}", ephemeral=True)


async def animate(interaction: discord.Interaction[Any], message: discord.Message) -> None:
    await interaction.response.send_modal(PromptModal(message))


class DemoBot(commands.Bot):
    def __init__(self, guild_id: int, *, message_content: bool = False, members: bool = False) -> None:
        intents = discord.Intents.default()
        intents.message_content = message_content
        intents.members = members
        super().__init__(command_prefix="!", intents=intents, allowed_mentions=discord.AllowedMentions.none())
        self.guild_id = guild_id
        self.seen: list[discord.Message] = []
        self.errors: list[BaseException] = []
        self.tree.error(self._on_app_command_error)

    async def setup_hook(self) -> None:
        await self.add_cog(DemoCog(self))
        self.tree.add_command(app_commands.ContextMenu(name="Animate", callback=animate))
        self.tree.add_command(Admin(name="admin", description="Admin"))
        self.add_dynamic_items(RegenButton)
        guild = discord.Object(self.guild_id)
        self.tree.copy_global_to(guild=guild)
        await self.tree.sync(guild=guild)

    async def on_message(self, message: discord.Message) -> None:
        if not message.author.bot:
            self.seen.append(message)

    async def _on_app_command_error(
        self, interaction: discord.Interaction[Any], error: app_commands.AppCommandError
    ) -> None:
        self.errors.append(error.original if isinstance(error, app_commands.CommandInvokeError) else error)


def last_error(bot: DemoBot) -> discord.HTTPException:
    assert bot.errors, "the bot recorded no error"
    err = bot.errors[-1]
    assert isinstance(err, discord.HTTPException), repr(err)
    return err


def text_channel(bot: DemoBot, channel_id: int) -> discord.TextChannel:
    channel = bot.get_channel(channel_id)
    assert isinstance(channel, discord.TextChannel), channel
    return channel
