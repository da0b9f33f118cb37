"""The Discord face: slash commands, context menus, forms, the reply trigger, and each button beside its handler.

May import: discord, services (not scheduler, xai, process: the bot's runtime holds those), other cogs; bot for types.
"""
