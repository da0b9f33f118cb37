"""One shared request budget for everything the bot sends to xAI's API.

xAI enforces its per-minute limit per second ("you cannot spend a full minute's requests in a single
second"), so the budget hands out evenly spaced slots instead of a bucket that allows bursts. Every
submit, poll and retry waits for a slot here; a 429 pauses everyone, not only the request that got it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

# 2 % under the limit: up to 20 ms of jitter a second, between a slot and its request reaching xAI (the loop, the
# submit's charge write, the network), never tips a second over. 1 % was seen to: a submit's write alone took 14 ms.
SAFETY_MARGIN = 1.02


class RequestBudget:
    """Evenly spaced request slots: at most ``per_minute`` a minute and ``per_minute / 60`` a second."""

    def __init__(self, per_minute: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        if per_minute <= 0:
            raise ValueError("per_minute must be positive")
        self.interval_s = 60.0 / per_minute * SAFETY_MARGIN
        self._clock = clock
        self._next_slot = clock()
        self._paused_until = 0.0
        self._lock = asyncio.Lock()
        self._waiting = 0
        self.granted = 0
        self.waited = 0  # slots granted only after a wait (the budget was the bottleneck), for /metrics
        self.waited_s = 0.0  # the total of those waits
        self.paused_s = 0.0  # total pause requested by 429s, for reports and tests

    @property
    def per_second(self) -> float:
        """The rate slots are granted at (the safety margin included): what the polling policy may spend."""
        return 1.0 / self.interval_s

    @property
    def waiting(self) -> int:
        """How many callers are waiting for a slot right now."""
        return self._waiting

    def delay(self) -> float:
        """Seconds until the next slot would be granted (0 when one is free now)."""
        return max(0.0, max(self._next_slot, self._paused_until) - self._clock())

    async def acquire(self) -> None:
        """Wait for a slot. Slots are granted in the order callers arrive."""
        self._waiting += 1
        asked_at, waited = self._clock(), self._lock.locked()  # behind another caller: waiting too
        try:
            async with self._lock:
                while (wait := self.delay()) > 0:  # waiting on the clock, not on a flag
                    waited = True
                    await asyncio.sleep(wait)
                # Space slots from the moment this one is actually taken, so a late wake-up
                # never lets the next request follow too closely.
                now = self._clock()
                self._next_slot = now + self.interval_s
                self.granted += 1
                if waited:
                    self.waited += 1
                    self.waited_s += max(0.0, now - asked_at)
        finally:
            self._waiting -= 1

    def pause_for(self, seconds: float) -> None:
        """xAI said "slow down": no slot for anyone until ``seconds`` from now."""
        self._paused_until = max(self._paused_until, self._clock() + max(0.0, seconds))
        self.paused_s += max(0.0, seconds)
