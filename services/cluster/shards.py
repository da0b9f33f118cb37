"""Which Discord shards this process runs, from DISCORD_SHARD_COUNT and DISCORD_SHARD_IDS.

Discord routes a guild's events to shard ``(guild_id >> 22) % count`` and every event without a guild (DMs)
to shard 0, so each process of a cluster runs the same count and its own slice of the ids.
"""

from __future__ import annotations

from dataclasses import dataclass

# Far beyond any bot's need (Discord suggests one shard per 1,000 servers); the shard and count locks keep the id in
# their lowest 16 bits (services/cluster/gateway.py).
MAX_SHARDS = 65535


class ShardSettingError(ValueError):
    """A shard setting that cannot be used; ``str()`` says how to write it."""


@dataclass(frozen=True, slots=True)
class ShardPlan:
    """``count`` shards in all; this process runs ``ids`` of them (all when None)."""

    count: int
    ids: tuple[int, ...] | None = None

    @property
    def mine(self) -> tuple[int, ...]:
        return self.ids if self.ids is not None else tuple(range(self.count))

    @property
    def runs_shard_zero(self) -> bool:
        """Whether this process gets the DMs (and so syncs the commands when no leader is elected)."""
        return 0 in self.mine


def parse_shard_ids(text: str, count: int) -> tuple[int, ...]:
    """``0-3``, ``0,2`` or ``0-1,4``: distinct ids below ``count``, in order."""
    ids: list[int] = []
    for part in (piece.strip() for piece in text.split(",")):
        if not part:
            continue
        low, dash, high = part.partition("-")
        try:
            first, last = int(low), int(high if dash else low)  # "0-" is half a range, not shard 0
        except ValueError:
            raise ShardSettingError(
                f"DISCORD_SHARD_IDS={text!r} is not valid: write shard numbers or ranges, such as 0-3 or 0,2"
            ) from None
        if first > last:
            raise ShardSettingError(f"DISCORD_SHARD_IDS={text!r} is not valid: the range {part} runs backwards")
        ids.extend(range(first, last + 1))
    if not ids:
        raise ShardSettingError(f"DISCORD_SHARD_IDS={text!r} names no shard: write shard numbers, such as 0-3")
    if len(set(ids)) != len(ids):
        raise ShardSettingError(f"DISCORD_SHARD_IDS={text!r} names a shard twice")
    outside = [shard for shard in ids if shard >= count]
    if outside:
        raise ShardSettingError(
            f"DISCORD_SHARD_IDS={text!r} names shard {outside[0]}, but DISCORD_SHARD_COUNT={count} means "
            f"shards 0 to {count - 1}"
        )
    return tuple(sorted(ids))


def shard_plan(count_text: str | None, ids_text: str | None) -> ShardPlan | None:
    """The plan from the two settings' raw values; None when neither is set (one shard, no sharding)."""
    count_text, ids_text = (count_text or "").strip(), (ids_text or "").strip()
    if not count_text:
        if ids_text:
            raise ShardSettingError(
                "DISCORD_SHARD_IDS needs DISCORD_SHARD_COUNT: set the total number of shards of the whole bot too"
            )
        return None
    try:
        count = int(count_text)
    except ValueError:
        count = 0
    if not 1 <= count <= MAX_SHARDS:
        raise ShardSettingError(
            f"DISCORD_SHARD_COUNT={count_text!r} is not valid: it should be a whole number from 1 to {MAX_SHARDS}"
        )
    return ShardPlan(count, parse_shard_ids(ids_text, count) if ids_text else None)
