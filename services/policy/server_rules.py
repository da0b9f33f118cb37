"""Each server's rules as the rest of the bot asks for them: the defaults with the server's changes on top.

Policies are read on every request, so they are cached in memory and refreshed whenever a moderator
changes one through this class (the store stays the source of truth across restarts).
"""

from __future__ import annotations

from typing import Any

from services.policy.guild_policy import (
    GuildPolicy,
    LimitDefaults,
    PolicyError,
    apply_overrides,
    default_policy,
    validate,
)
from services.store.store import Store

__all__ = ["PolicyError", "ServerRules"]


class ServerRules:
    def __init__(self, store: Store, defaults: LimitDefaults | None = None) -> None:
        self.store = store
        self.defaults = defaults or LimitDefaults()
        self._base = default_policy(self.defaults)
        self._cache: dict[int, GuildPolicy] = {}

    async def policy(self, guild_id: int) -> GuildPolicy:
        cached = self._cache.get(guild_id)
        if cached is None:
            overrides = await self.store.servers.overrides(guild_id)
            try:
                cached = apply_overrides(self._base, overrides)
            except (PolicyError, TypeError, ValueError):  # stored by an older version with other rules
                cached = self._base
            self._cache[guild_id] = cached
        return cached

    async def change(self, guild_id: int, changes: dict[str, Any], *, by: int | None) -> GuildPolicy:
        """Apply a moderator's changes (``None`` = no limit); raises PolicyError, saving nothing, if they clash."""
        overrides = await self.store.servers.overrides(guild_id)
        overrides.update(changes)
        policy = validate(apply_overrides(self._base, overrides))
        await self.store.servers.save_overrides(guild_id, overrides, by)
        self._cache[guild_id] = policy
        return policy

    async def reset(self, guild_id: int, *, by: int | None) -> GuildPolicy:
        """Forget every change this server made: back to the bot-wide defaults."""
        await self.store.servers.save_overrides(guild_id, {}, by)
        self._cache[guild_id] = self._base
        return self._base

    async def is_banned(self, guild_id: int, user_id: int) -> bool:
        return await self.store.servers.is_banned(guild_id, user_id)
