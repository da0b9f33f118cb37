"""When to poll a running job next.

Polls cost requests from the shared budget, so each one should land close to when the video is
ready: soon after submit (as soon as past jobs say a video could be ready), then at the time the
reported progress predicts, and backing off when xAI reports no progress at all.
"""

from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CadenceSettings:
    first_poll_s: float = 2.0  # used until the bot has seen a job finish
    min_interval_s: float = 0.5
    max_interval_s: float = 30.0
    backoff: float = 2.0


class PollCadence:
    """Learns typical generation times and turns (elapsed, progress) into the next poll delay."""

    def __init__(self, settings: CadenceSettings | None = None, history: list[float] | None = None) -> None:
        self.settings = settings or CadenceSettings()
        self._history: deque[float] = deque(maxlen=20)
        for seconds in history or []:
            self.record(seconds)

    def record(self, generation_s: float) -> None:
        """A job took this long from submit until we saw it ready."""
        if generation_s > 0:
            self._history.append(generation_s)

    def first_delay(self) -> float:
        """Delay from submit to the first poll: a typical generation time once one is known."""
        if not self._history:
            return self.settings.first_poll_s
        # The lower quartile, so a run of slow jobs does not make every later first poll late.
        typical = statistics.quantiles(self._history, n=4)[0] if len(self._history) >= 4 else min(self._history)
        return self._clamp(typical)

    def next_delay(self, elapsed_s: float, progress: int | None, polls_so_far: int) -> float:
        """Delay after a poll that found the job still pending."""
        if progress is not None and 0 < progress < 100 and elapsed_s > 0:
            remaining = elapsed_s * (100 - progress) / progress
            # A little slack past the predicted moment so the next poll is the one that finds it done.
            return self._clamp(remaining + max(0.1, 0.05 * elapsed_s))
        return self._clamp(self.settings.first_poll_s * self.settings.backoff ** max(0, polls_so_far))

    def _clamp(self, seconds: float) -> float:
        return min(self.settings.max_interval_s, max(self.settings.min_interval_s, seconds))
