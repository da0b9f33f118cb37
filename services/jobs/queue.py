"""Waiting jobs, admitted round-robin across people so one person's burst cannot starve the rest.

Each person has their own first-in-first-out line; admission takes the head of the line of whoever
was served longest ago (people never served first, in order of arrival). Who was served when is
remembered even after a person's line empties, so someone whose first video just started waits
behind a newcomer. ``order()`` replays exactly that rule, so the queue positions shown to people
stay true (until someone new arrives).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable


class FairQueue:
    """Round-robin over owners, FIFO within an owner."""

    def __init__(self) -> None:
        self._lines: dict[Hashable, deque[int]] = {}  # owner -> their waiting job ids
        self._owner_of: dict[int, Hashable] = {}
        self._last_turn: dict[Hashable, int] = {}  # owner -> the admission number that last served them
        self._arrival: dict[Hashable, int] = {}  # owner -> when their current line started (breaks ties)
        self._turns = 0
        self._arrivals = 0
        self._front = -1  # push_front ranks below everyone: each use goes one lower

    def __len__(self) -> int:
        return len(self._owner_of)

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._owner_of

    def push(self, job_id: int, owner: Hashable) -> None:
        if job_id in self._owner_of:
            return
        self._owner_of[job_id] = owner
        self._line(owner).append(job_id)

    def push_front(self, job_id: int, owner: Hashable) -> None:
        """Put a job back at the head of its owner's line, and the owner first in the rotation."""
        if job_id in self._owner_of:
            return
        self._owner_of[job_id] = owner
        self._line(owner).appendleft(job_id)
        self._front -= 1
        self._last_turn[owner] = self._front

    def pop(self) -> int | None:
        """The next job to admit, or None when nobody is waiting."""
        if not self._lines:
            return None
        owner = min(self._lines, key=self._rank)
        line = self._lines[owner]
        job_id = line.popleft()
        del self._owner_of[job_id]
        self._turns += 1
        self._last_turn[owner] = self._turns
        if not line:
            del self._lines[owner], self._arrival[owner]
        return job_id

    def remove(self, job_id: int) -> bool:
        owner = self._owner_of.pop(job_id, None)
        if owner is None:
            return False
        line = self._lines[owner]
        line.remove(job_id)
        if not line:
            del self._lines[owner], self._arrival[owner]
        return True

    def order(self) -> list[int]:
        """Every waiting job in the order it will be admitted (if nothing else arrives).

        Serving someone sends them behind everyone still waiting, so admission goes in rounds: each
        round takes the next job of every owner who still has one, owners in rank order.
        """
        owners = sorted(self._lines, key=self._rank)
        result: list[int] = []
        depth = 0
        while owners:
            result.extend(self._lines[owner][depth] for owner in owners)
            depth += 1
            owners = [owner for owner in owners if len(self._lines[owner]) > depth]
        return result

    def position(self, job_id: int) -> int | None:
        """One job's 1-based place in ``order()``, without building the whole order."""
        owner = self._owner_of.get(job_id)
        if owner is None:
            return None
        depth = self._lines[owner].index(job_id)
        last_turn, arrival = self._last_turn, self._arrival  # asked on every new job: kept lean
        rank = (last_turn.get(owner, -1), arrival[owner])
        ahead = 0
        for other, line in self._lines.items():
            waiting = len(line)
            if waiting <= depth:
                ahead += waiting  # all of theirs go in earlier rounds
                continue
            ahead += depth
            if (last_turn.get(other, -1), arrival[other]) < rank:
                ahead += 1  # ahead of it in its own round
        return ahead + 1

    def _line(self, owner: Hashable) -> deque[int]:
        if owner not in self._lines:
            self._lines[owner] = deque()
            self._arrivals += 1
            self._arrival[owner] = self._arrivals
        return self._lines[owner]

    def _rank(self, owner: Hashable) -> tuple[int, int]:
        return self._last_turn.get(owner, -1), self._arrival[owner]

    def positions(self) -> dict[int, int]:
        """job id -> 1-based place in the admission order."""
        return {job_id: index for index, job_id in enumerate(self.order(), start=1)}
