"""The concurrent slots held for requests that may be at xAI although nobody here can follow them.

A process that dies while a submit is on the wire leaves a job whose request xAI may have taken: the next start
(or the next leader) ends it "uncertain" rather than send it twice, but xAI may be generating it all the same,
and counts it against the account's concurrent cap. xAI can find a request only by the id its answer carried, so
nobody can ask. Each such job therefore keeps one slot until nine in ten videos of its kind would be done,
counted from when its request went out; admitting another job into that slot sooner would only be turned away.
A submit whose answer never came (a timeout, a broken connection, a 5xx after it went out) is the same unknown
fate while the bot runs, and holds a slot the same way. A job the bot was away from for longer holds nothing.
"""

from __future__ import annotations

from collections.abc import Callable


class UncertainSlots:
    """Slots held by requests of unknown fate, each until its own moment on the monotonic clock."""

    def __init__(self, monotonic: Callable[[], float]) -> None:
        self._monotonic = monotonic
        self._until: dict[int, float] = {}

    def hold(self, job_id: int, seconds: float) -> None:
        """Keep a slot for ``job_id`` for ``seconds`` from now (nothing when that is not in the future)."""
        if seconds > 0:
            self._until[job_id] = self._monotonic() + seconds

    @property
    def held(self) -> int:
        """Slots still held; the ones whose time is up are let go on the way."""
        now = self._monotonic()
        for job_id in [job_id for job_id, until in self._until.items() if until <= now]:
            del self._until[job_id]
        return len(self._until)
