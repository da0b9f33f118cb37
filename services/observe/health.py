"""The health verdict behind ``/healthz``: 200 only while the gateway is connected and the scheduler is alive.

The gateway is tracked from discord.py's own events (``is_ready()`` stays true through a reconnect, so it
cannot be trusted): connected on ready/resumed, not on disconnect, per shard when the bot is sharded. The
scheduler is judged by its heartbeat; under several processes only the leader runs one, so the check is a
callable that answers None ("fine") for a healthy non-leader of a cluster.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

STALE_AFTER_S = 60.0  # a scheduler loop that has not gone round for this long counts as stopped

SchedulerCheck = Callable[[], str | None]  # None: alive; else the reason it is not, in words


class HasHeartbeat(Protocol):
    def heartbeat_age(self) -> float | None: ...


class ListensForEvents(Protocol):
    """What the gateway watch needs of the bot (discord.py's ``Client.add_listener``), without importing discord."""

    def add_listener(self, func: Callable[..., Coroutine[Any, Any, Any]], /, name: str = ...) -> None: ...


def heartbeat_check(scheduler: HasHeartbeat, stale_after_s: float = STALE_AFTER_S) -> SchedulerCheck:
    """The scheduler is alive when its loop runs and went round within ``stale_after_s``."""

    def check() -> str | None:
        age = scheduler.heartbeat_age()
        if age is None:
            return "the scheduler loop is not running"
        if age > stale_after_s:
            return f"the scheduler loop has not gone round for {age:.0f} s"
        return None

    return check


def unless_standing_by(standing_by: Callable[[], bool], check: SchedulerCheck) -> SchedulerCheck:
    """For a cluster's process: while ``standing_by()`` (not the leader, so it runs no scheduler) it is fine as far
    as scheduling goes; once it leads, ``check`` judges its loop (``Health.watching``'s ``standing_by``)."""

    def judged() -> str | None:
        return None if standing_by() else check()

    return judged


class GatewayWatch:
    """Whether this process's gateway connections are up, from the bot's connect and disconnect events.

    Once a shard event is seen the bot is sharded, and only the shards' own events count: one shard that
    connects again with a new session sends ``on_shard_ready`` and no ``on_ready``.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._connected = False
        self._sharded = False
        self._down_shards: set[int] = set()
        self._since = clock()
        self._ever = False

    def up(self, shard_id: int | None = None) -> None:
        self._mark(shard_id, connected=True)

    def down(self, shard_id: int | None = None) -> None:
        self._mark(shard_id, connected=False)

    def _mark(self, shard_id: int | None, *, connected: bool) -> None:
        if shard_id is None:
            self._connected = connected
        else:
            self._sharded = True
            if connected:
                self._down_shards.discard(shard_id)
            else:
                self._down_shards.add(shard_id)
        self._ever = self._ever or connected
        self._since = self._clock()

    def problem(self) -> str | None:
        """None while connected; else what is wrong, and for how long."""
        for_s = f" (for {self._clock() - self._since:.0f} s)"
        if not self._ever:
            return "the Discord gateway has not connected yet" + for_s
        if self._sharded and self._down_shards:
            shards = ", ".join(str(shard) for shard in sorted(self._down_shards))
            return f"Discord gateway shard(s) {shards} not connected" + for_s
        if not self._sharded and not self._connected:
            return "the Discord gateway is not connected" + for_s
        return None

    def watch(self, bot: ListensForEvents) -> None:
        """Follow ``bot``'s gateway events (discord.py dispatches them to every listener added this way)."""

        async def ready() -> None:
            self.up()

        async def disconnected() -> None:
            self.down()

        async def shard_up(shard_id: int) -> None:
            self.up(shard_id)

        async def shard_down(shard_id: int) -> None:
            self.down(shard_id)

        for name, listener in (("on_ready", ready), ("on_resumed", ready), ("on_disconnect", disconnected)):
            bot.add_listener(listener, name)
        for name, shard_listener in (
            ("on_shard_ready", shard_up),
            ("on_shard_resumed", shard_up),
            ("on_shard_disconnect", shard_down),
        ):
            bot.add_listener(shard_listener, name)


class Health:
    """``/healthz``'s verdict: the gateway's, and ``scheduler_check``'s (``watching`` builds it, and passes over
    the scheduler while a cluster's process stands by)."""

    def __init__(self, gateway: GatewayWatch, scheduler_check: SchedulerCheck) -> None:
        self.gateway = gateway
        self.scheduler_check = scheduler_check

    @classmethod
    def watching(
        cls, bot: ListensForEvents, scheduler: HasHeartbeat, *, standing_by: Callable[[], bool] = lambda: False
    ) -> Health:
        """``bot``'s gateway, and ``scheduler``'s loop unless ``standing_by()`` (a cluster's process that is not
        the leader runs no scheduler, and is healthy without one)."""
        gateway = GatewayWatch()
        gateway.watch(bot)
        return cls(gateway, unless_standing_by(standing_by, heartbeat_check(scheduler)))

    def problems(self) -> list[str]:
        """Everything that keeps the bot from being healthy; empty when it is."""
        return [problem for problem in (self.gateway.problem(), self.scheduler_check()) if problem is not None]
