"""The bot's logic, in packages that say what they own; nothing here imports discord except ``delivery``.

Top level: ``config`` (settings), ``runtime`` (wiring, once), ``terminal`` and ``checkup`` (the CLI commands).
"""
