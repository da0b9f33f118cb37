"""Calling a submit off: a Cancel can keep a request from going on the wire, and its owner hears when it does.

xAI has no cancel endpoint, so the only Cancel that costs nothing is one that comes before the request is sent.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

Hook = Callable[[], Awaitable[None]]


class SubmitGate:
    """Lets a submit be called off up to the moment it goes on the wire, and tells its owner when it does.

    xAI has no cancel endpoint, so a Cancel can only keep a request from being sent. ``sent`` is true
    while a request may be on its way to xAI or past it (xAI may then be working on it, and billing);
    it falls back to false when xAI provably did not take it (the connection never opened, a 429, a proxy's
    refusal, a body that never went out whole), so a Cancel between retries still stops it.

    ``on_wire`` is awaited right before each attempt goes on the wire, ``on_turned_away`` right after one provably
    did not reach xAI: the scheduler writes the job's ``charged`` flag in them, so the store says at every moment,
    crash included, whether a request may be at xAI.
    """

    __slots__ = ("_on_turned_away", "_on_wire", "called_off", "sent")

    def __init__(self, *, on_wire: Hook | None = None, on_turned_away: Hook | None = None) -> None:
        self.called_off = False
        self.sent = False
        self._on_wire = on_wire
        self._on_turned_away = on_turned_away

    def call_off(self) -> bool:
        """Stop the submit if nothing is on the wire; True when that was in time."""
        if self.sent:
            return False
        self.called_off = True
        return True

    async def going_out(self) -> None:
        """An attempt is about to be sent; raises ``SubmitCalledOff`` if it was called off first (or meanwhile)."""
        if self.called_off:
            raise SubmitCalledOff
        if self._on_wire is not None:
            await self._on_wire()
        if self.called_off:  # a Cancel came while that was recorded: it is still in time
            await self.turned_away()
            raise SubmitCalledOff
        self.sent = True  # no await from here to the wire: a Cancel now is too late

    async def turned_away(self) -> None:
        """The attempt provably did not reach xAI: nothing is there to bill."""
        self.sent = False
        if self._on_turned_away is not None:
            await self._on_turned_away()


class SubmitCalledOff(Exception):
    """The submit was called off before anything was sent to xAI."""
