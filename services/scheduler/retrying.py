"""The one shape of "try again" in the scheduler: a first try at once, then one more after each delay.

The delays are given (from ``SchedulerSettings``), and so is the sleep, so tests never wait out real seconds.
The caller's loop body decides what a failure means: it leaves the loop (``return``/``break``) on success or
when trying again cannot help, and falls through to the end of the body to try again::

    async for attempt in retrying(settings.delivery_retry_delays_s, sleep=clocks.sleep):
        try:
            ...
        except SomeError:
            if attempt.last:
                ...  # give up
                return
            log.warning("...; retrying in %.0fs", attempt.next_delay_s)
        else:
            return
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from services.scheduler.settings import Sleep


@dataclass(frozen=True, slots=True)
class Attempt:
    number: int  # 1 for the first try
    next_delay_s: float | None  # the wait before the next try, should this one fail; None on the last

    @property
    def last(self) -> bool:
        return self.next_delay_s is None


def doubling(first_s: float, failures: int, *, low_s: float, high_s: float) -> float:
    """The wait after ``failures`` failures in a row of an open-ended retry (a poll): ``first_s``, doubling with
    each, kept within ``low_s`` and ``high_s``. The exponent is bounded: after a day-long outage (a thousand
    failures) ``2.0 ** failures`` would overflow and break every retry of the poll."""
    return min(high_s, max(low_s, first_s * 2.0 ** min(64, max(0, failures - 1))))


def retrying(delays_s: Sequence[float], *, sleep: Sleep = asyncio.sleep) -> AsyncIterator[Attempt]:
    """``len(delays_s) + 1`` attempts; the wait before one happens only when the loop asks for it."""
    return _Attempts(tuple(delays_s), sleep)


class _Attempts:
    """An iterator class rather than an async generator, so leaving the loop early leaves nothing to close."""

    def __init__(self, delays_s: tuple[float, ...], sleep: Sleep) -> None:
        self._delays_s = delays_s
        self._sleep = sleep
        self._tried = 0

    def __aiter__(self) -> _Attempts:
        return self

    async def __anext__(self) -> Attempt:
        if self._tried > len(self._delays_s):
            raise StopAsyncIteration
        if self._tried:
            await self._sleep(self._delays_s[self._tried - 1])
        self._tried += 1
        following = self._delays_s[self._tried - 1] if self._tried <= len(self._delays_s) else None
        return Attempt(self._tried, following)
