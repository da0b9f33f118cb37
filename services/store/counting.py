"""The history the limits read, as SQL: which jobs count, from when, and for how much.

One rule, written once here and once in Python (``models.is_counted`` / ``models.is_in_flight``): a job counts
while it is in the making (waiting, generating, or cancelled while xAI still generates it), whatever its age,
and, once it is over, for good if it was charged: in a rolling window from the moment its request went on the
wire (``charged_at``), so a job that waited in line through a long outage counts on the day it was sent and billed.

Every query is two index reads added up: the few jobs in the making (the partial index ``jobs_in_flight``), and
the finished charged jobs of the window (``jobs_guild_charged`` / ``jobs_user_charged``, which cover what the
count and the spend sum need, so a decision never reads the table's rows). ``IN_FLIGHT_SQL`` must stay the very
expression of ``jobs_in_flight``'s WHERE clause (migration 7): SQLite uses a partial index only when the query
repeats it.
"""

from __future__ import annotations

from typing import Any

import aiosqlite

from services.jobs.models import DEFAULT_DURATION_S, USD_TICKS_PER_DOLLAR, JobStatus, Use
from services.policy.guild_policy import EDIT_ESTIMATE_S, GuildPolicy

_ACTIVE = ", ".join(repr(s.value) for s in sorted(JobStatus, key=lambda s: s.value) if s.is_active)
IN_FLIGHT_SQL = f"(status IN ({_ACTIVE}) OR (status = 'cancelled' AND charged = 1 AND ended_at IS NULL))"
_FINISHED_SINCE = f"charged = 1 AND charged_at > ? AND NOT {IN_FLIGHT_SQL}"

# What a job counts for against spend: xAI's figure once reported, else duration x the price of its resolution.
# An edit keeps its input's resolution, which the bot does not know: priced at 720p so it is never under-counted.
_DOLLARS_SQL = f"""CASE
    WHEN cost_usd_ticks IS NOT NULL THEN cost_usd_ticks / {float(USD_TICKS_PER_DOLLAR)!r}
    ELSE COALESCE(duration, CASE mode WHEN 'edit' THEN {EDIT_ESTIMATE_S} ELSE {DEFAULT_DURATION_S} END)
         * (CASE WHEN resolution = '720p' OR (resolution IS NULL AND mode = 'edit') THEN ? ELSE ? END)
END"""


Query = tuple[str, list[Any]]  # SQL and its parameters


def _whose(guild_id: int, user_id: int | None) -> tuple[str, list[Any]]:
    if user_id is None:
        return "guild_id = ?", [guild_id]
    return "guild_id = ? AND user_id = ?", [guild_id, user_id]


async def _one(db: aiosqlite.Connection, query: Query) -> Any:
    async with db.execute(*query) as cursor:
        row = await cursor.fetchone()
    return row[0] if row else None


async def _all(db: aiosqlite.Connection, query: Query) -> list[Any]:
    async with db.execute(*query) as cursor:
        return list(await cursor.fetchall())


def count_query(guild_id: int, user_id: int | None, since: float) -> Query:
    """How many of a server's (or member's) jobs count in the window since ``since``."""
    whose, params = _whose(guild_id, user_id)
    sql = f"""SELECT (SELECT COUNT(*) FROM jobs WHERE {whose} AND {IN_FLIGHT_SQL})
                   + (SELECT COUNT(*) FROM jobs WHERE {whose} AND {_FINISHED_SINCE})"""
    return sql, [*params, *params, since]


def uses_query(guild_id: int, user_id: int | None, since: float) -> Query:
    """The jobs that count in the window: (charged_at, in flight)."""
    whose, params = _whose(guild_id, user_id)
    sql = f"""SELECT charged_at, 1 FROM jobs WHERE {whose} AND {IN_FLIGHT_SQL}
              UNION ALL
              SELECT charged_at, 0 FROM jobs WHERE {whose} AND {_FINISHED_SINCE}"""
    return sql, [*params, *params, since]


def in_making_query(guild_id: int, user_id: int) -> Query:
    whose, params = _whose(guild_id, user_id)
    return f"SELECT COUNT(*) FROM jobs WHERE {whose} AND {IN_FLIGHT_SQL}", params


def spend_query(guild_id: int, since: float, policy: GuildPolicy) -> Query:
    """The dollars a server's counted jobs of the window count for, added up by SQLite."""
    prices = [policy.usd_per_second_720p, policy.usd_per_second_480p]
    sql = f"""SELECT (SELECT COALESCE(SUM({_DOLLARS_SQL}), 0) FROM jobs WHERE guild_id = ? AND {IN_FLIGHT_SQL})
                   + (SELECT COALESCE(SUM({_DOLLARS_SQL}), 0) FROM jobs WHERE guild_id = ? AND {_FINISHED_SINCE})"""
    return sql, [*prices, guild_id, *prices, guild_id, since]


def spend_uses_query(guild_id: int, since: float, policy: GuildPolicy) -> Query:
    """``spend_query`` job by job: (charged_at, in flight, dollars)."""
    prices = [policy.usd_per_second_720p, policy.usd_per_second_480p]
    sql = f"""SELECT charged_at, 1, {_DOLLARS_SQL} FROM jobs WHERE guild_id = ? AND {IN_FLIGHT_SQL}
              UNION ALL
              SELECT charged_at, 0, {_DOLLARS_SQL} FROM jobs WHERE guild_id = ? AND {_FINISHED_SINCE}"""
    return sql, [*prices, guild_id, *prices, guild_id, since]


async def counted_count(db: aiosqlite.Connection, guild_id: int, user_id: int | None, since: float) -> int:
    return int(await _one(db, count_query(guild_id, user_id, since)) or 0)


async def counted_uses(db: aiosqlite.Connection, guild_id: int, user_id: int | None, since: float) -> list[Use]:
    return [Use(row[0], bool(row[1])) for row in await _all(db, uses_query(guild_id, user_id, since))]


async def in_making_count(db: aiosqlite.Connection, guild_id: int, user_id: int) -> int:
    """A member's videos in the making: waiting, generating, or cancelled while xAI still generates them."""
    return int(await _one(db, in_making_query(guild_id, user_id)) or 0)


async def spend_total(db: aiosqlite.Connection, guild_id: int, since: float, policy: GuildPolicy) -> float:
    return float(await _one(db, spend_query(guild_id, since, policy)) or 0.0)


async def spend_uses(db: aiosqlite.Connection, guild_id: int, since: float, policy: GuildPolicy) -> list[Use]:
    rows = await _all(db, spend_uses_query(guild_id, since, policy))
    return [Use(row[0], bool(row[1]), float(row[2])) for row in rows]
