"""Whom a request is for, as xAI's ``user`` field carries it: a salted hash of the Discord user id, never the id.

xAI can then attribute abuse to one member instead of the whole API key, while the id itself never leaves the
bot. The salt is made once (32 random bytes) and kept in the store's kv table, so one member keeps one tag
across restarts and processes; it is never logged. The admin's terminal jobs send no ``user``: they are the
key owner's own.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
from typing import Protocol

from services.jobs.models import Origin
from services.store.patience import patiently

SALT_KEY = "xai_user_salt"


class KeyValues(Protocol):
    """The store's kv table (services/store/kv.py)."""

    async def get(self, key: str) -> str | None: ...

    async def set_if_absent(self, key: str, value: str) -> str: ...


def user_tag(salt: str, user_id: int) -> str:
    """A stable, unguessable stand-in for a Discord user id (HMAC-SHA256, 32 hex digits)."""
    return hmac.new(salt.encode(), str(user_id).encode(), hashlib.sha256).hexdigest()[:32]


class Attribution:
    def __init__(self, kv: KeyValues) -> None:
        self._kv = kv
        self._salt: str | None = None
        self._lock = asyncio.Lock()

    async def user_of(self, origin: Origin) -> str | None:
        """The ``user`` to send for a job from ``origin``: None for the terminal (and anything with no user)."""
        if origin.kind != "discord" or origin.user_id is None:
            return None
        return user_tag(await self._salt_once(), origin.user_id)

    async def _salt_once(self) -> str:
        async with self._lock:
            salt = self._salt or await self._kv.get(SALT_KEY)
            if salt is None:
                # Made once for good; another process may write its own first, and then that one is kept. A write,
                # so it waits out a locked database or a full disk like every other step of a job.
                salt = await patiently(
                    lambda: self._kv.set_if_absent(SALT_KEY, secrets.token_hex(32)), what="the user-hash salt"
                )
            self._salt = salt
            return salt
