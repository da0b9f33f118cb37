"""The bot's logic, in packages that say what they own; nothing here imports discord except ``delivery``.

Top level: ``config`` (settings) and ``environment`` (where they are read from), ``permissions`` (what the bot
needs on Discord, as plain data), ``runtime`` (wiring, once), ``cli``, ``terminal`` and ``checkup`` (the CLI
commands).
"""
