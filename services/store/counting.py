"""The history the limits read, as SQL: which jobs count, and from when. What they cost is Python's to say.

Which jobs count is ``models.COUNTED``, rendered here: a job counts while it is in the making (waiting,
generating, or cancelled while xAI still generates it), whatever its age, and, once it is over, for good if it
was charged: in a rolling window from the moment its request went on the wire (``charged_at``), so a job that
waited in line through a long outage counts on the day it was sent and billed. The spend queries only select
and group the counted jobs by what their price depends on; ``GuildPolicy.spend_ticks`` prices them
(services/store/usage.py), the same function ``/usage`` prices each job with.

Every query is two index reads added up: the few jobs in the making (the partial index ``jobs_in_flight``), and
the finished charged jobs of the window (``jobs_guild_charged`` / ``jobs_user_charged``, which cover what the
count and the spend need, so a decision never reads the table's rows). ``IN_FLIGHT_SQL`` renders to the very
expression of ``jobs_in_flight``'s WHERE clause (migration 7): SQLite uses a partial index only when the query
repeats it.
"""

from __future__ import annotations

from typing import Any

from services.jobs.models import CHARGED, IN_THE_MAKING

IN_FLIGHT_SQL = IN_THE_MAKING.sql()
_FINISHED_SINCE = f"{CHARGED.sql()} AND charged_at > ? AND NOT {IN_FLIGHT_SQL}"
# What a counted job's price depends on (``GuildPolicy.spend_ticks``), and the jobs xAI gave no figure for yet.
PRICED_COLUMNS = "model, mode, duration, resolution, cost_usd_ticks"
_UNPRICED = "cost_usd_ticks IS NULL"

Query = tuple[str, list[Any]]  # SQL and its parameters


def _whose(guild_id: int, user_id: int | None) -> tuple[str, list[Any]]:
    if user_id is None:
        return "guild_id = ?", [guild_id]
    return "guild_id = ? AND user_id = ?", [guild_id, user_id]


def _added_up(aggregate: str, guild_id: int, user_id: int | None, since: float) -> Query:
    """``aggregate`` over the counted jobs of the window: the jobs in the making's plus the finished ones'."""
    whose, params = _whose(guild_id, user_id)
    sql = f"""(SELECT {aggregate} FROM jobs WHERE {whose} AND {IN_FLIGHT_SQL})
              + (SELECT {aggregate} FROM jobs WHERE {whose} AND {_FINISHED_SINCE})"""
    return sql, [*params, *params, since]


def _counted(columns: str, guild_id: int, user_id: int | None, since: float, *, where: str = "") -> Query:
    """``columns`` of the counted jobs of the window (and ``where``): first those in the making (flagged 1), then
    the finished ones."""
    whose, params = _whose(guild_id, user_id)
    whose += f" AND {where}" if where else ""
    sql = f"""SELECT {columns}, 1 AS in_flight FROM jobs WHERE {whose} AND {IN_FLIGHT_SQL}
              UNION ALL
              SELECT {columns}, 0 FROM jobs WHERE {whose} AND {_FINISHED_SINCE}"""
    return sql, [*params, *params, since]


def count_query(guild_id: int, user_id: int | None, since: float) -> Query:
    """How many of a server's (or member's) jobs count in the window since ``since``."""
    sql, params = _added_up("COUNT(*)", guild_id, user_id, since)
    return f"SELECT {sql}", params


def uses_query(guild_id: int, user_id: int | None, since: float) -> Query:
    """The jobs that count in the window: (charged_at, in flight)."""
    return _counted("charged_at", guild_id, user_id, since)


def in_making_query(guild_id: int, user_id: int) -> Query:
    whose, params = _whose(guild_id, user_id)
    return f"SELECT COUNT(*) FROM jobs WHERE {whose} AND {IN_FLIGHT_SQL}", params


def spend_query(guild_id: int, since: float) -> Query:
    """A server's counted jobs of the window, by what prices them: first (None, None, None, None, 0, the ticks xAI
    reported for them all), then (model, mode, duration, resolution, how many, 0) of those xAI gave no figure for.
    Only those few are grouped (sorted); the reported ticks are added up from the covering indexes alone."""
    reported, params = _added_up("COALESCE(SUM(cost_usd_ticks), 0)", guild_id, None, since)
    grouped = "model, mode, duration, resolution"
    unpriced, unpriced_params = _counted(grouped, guild_id, None, since, where=_UNPRICED)
    sql = f"""SELECT NULL, NULL, NULL, NULL, 0, {reported}
              UNION ALL
              SELECT {grouped}, COUNT(*), 0 FROM ({unpriced}) AS unpriced GROUP BY {grouped}"""
    return sql, [*params, *unpriced_params]


def spend_uses_query(guild_id: int, since: float) -> Query:
    """``spend_query`` job by job: (model, mode, duration, resolution, cost_usd_ticks, charged_at, in flight)."""
    return _counted(f"{PRICED_COLUMNS}, charged_at", guild_id, None, since)
