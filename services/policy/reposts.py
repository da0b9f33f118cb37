"""How often a member may post a kept video again with ``/show``: each re-post is a whole upload (up to the
server's file limit), so a loop of them would flood a channel and the bot's upload bandwidth.

A rolling window per member per server, like the video limits (services/policy/limits.py): at most
``REPOSTS_PER_WINDOW`` re-posts in ``REPOST_WINDOW_S``, the same for everyone. Only a re-post that went out counts
(an answer saying why not costs nothing). Kept in memory: a server's interactions all reach the one process that
holds its shard, and a restart forgets at most one window's worth. The window runs on the monotonic clock, so a
wall clock stepped back or forward (NTP) neither locks a member out nor hands out more; the wall clock only names
the moment in the refusal. Both clocks are injected for the tests.
"""

from __future__ import annotations

import time
from collections.abc import Callable

REPOSTS_PER_WINDOW = 3
REPOST_WINDOW_S = 600.0


class RepostAllowance:
    """The re-posts each member made lately; ``take`` before posting, ``give_back`` when nothing was posted."""

    def __init__(
        self,
        most: int = REPOSTS_PER_WINDOW,
        window_s: float = REPOST_WINDOW_S,
        clock: Callable[[], float] = time.time,  # wall time: the refusal names the moment in Discord's timestamps
        monotonic: Callable[[], float] = time.monotonic,  # what the window is measured on
    ) -> None:
        self.most = most
        self.window_s = window_s
        self.clock = clock
        self.monotonic = monotonic
        self._made: dict[tuple[int, int], list[float]] = {}  # (guild, member) -> each recent re-post (monotonic)

    def take(self, guild_id: int, user_id: int) -> float | None:
        """Count one re-post now and answer None, or answer when (wall time) the next is possible (nothing is
        counted).

        Decided before any await, so two quick commands cannot both slip past the limit."""
        now = self.monotonic()
        self._made = {
            key: kept
            for key, moments in self._made.items()
            if (kept := [t for t in moments if now - t < self.window_s])
        }
        moments = self._made.setdefault((guild_id, user_id), [])
        if len(moments) >= self.most:
            return self.clock() + (moments[len(moments) - self.most] + self.window_s - now)
        moments.append(now)
        return None

    def give_back(self, guild_id: int, user_id: int) -> None:
        """Nothing was posted after all: the latest re-post taken does not count."""
        moments = self._made.get((guild_id, user_id))
        if moments:
            moments.pop()
