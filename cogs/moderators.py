"""Who may use the moderators' commands (``/videoadmin``, ``/usage``): Manage Server, checked in code.

Discord hides those commands from members without it by default, but a server can change that in
its Integrations settings, so each command checks the permission again.
"""

from __future__ import annotations

import logging

import discord
from discord import app_commands

log = logging.getLogger(__name__)

MANAGE_SERVER = discord.Permissions(manage_guild=True)
NOT_ALLOWED = "⛔ Only members with the Manage Server permission can do that."


def require_manage_server(interaction: discord.Interaction) -> bool:
    """The permission, checked in code: Discord's default can be loosened by a server's settings."""
    if interaction.guild_id is None or not interaction.permissions.manage_guild:
        name = interaction.command.qualified_name if interaction.command else "a command"
        log.info("Refused %s to user %s: no Manage Server", name, interaction.user.id)
        raise app_commands.CheckFailure(NOT_ALLOWED)
    return True
