"""Waiting jobs, admitted round-robin across people so one person's burst cannot starve the rest.

Each person has their own first-in-first-out line; admission takes the head of the line of whoever
has waited longest since their last admission. ``order()`` replays exactly that rule, so the queue
positions shown to people stay true.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Hashable


class FairQueue:
    """Round-robin over owners, FIFO within an owner."""

    def __init__(self) -> None:
        # owner -> their waiting job ids; dict order is the rotation (front = next to be served)
        self._lines: OrderedDict[Hashable, deque[int]] = OrderedDict()
        self._owner_of: dict[int, Hashable] = {}

    def __len__(self) -> int:
        return len(self._owner_of)

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._owner_of

    def push(self, job_id: int, owner: Hashable) -> None:
        if job_id in self._owner_of:
            return
        self._owner_of[job_id] = owner
        self._lines.setdefault(owner, deque()).append(job_id)

    def push_front(self, job_id: int, owner: Hashable) -> None:
        """Put a job back at the head of its owner's line, and the owner first in the rotation."""
        if job_id in self._owner_of:
            return
        self._owner_of[job_id] = owner
        self._lines.setdefault(owner, deque()).appendleft(job_id)
        self._lines.move_to_end(owner, last=False)

    def pop(self) -> int | None:
        """The next job to admit, or None when nobody is waiting."""
        for owner, line in self._lines.items():
            job_id = line.popleft()
            del self._owner_of[job_id]
            if line:
                self._lines.move_to_end(owner)  # served: go to the back of the rotation
            else:
                del self._lines[owner]
            return job_id
        return None

    def remove(self, job_id: int) -> bool:
        owner = self._owner_of.pop(job_id, None)
        if owner is None:
            return False
        line = self._lines[owner]
        line.remove(job_id)
        if not line:
            del self._lines[owner]
        return True

    def order(self) -> list[int]:
        """Every waiting job in the order it will be admitted (if nothing else arrives)."""
        lines = [list(line) for line in self._lines.values()]
        result: list[int] = []
        depth = 0
        while len(result) < len(self._owner_of):
            result.extend(line[depth] for line in lines if depth < len(line))
            depth += 1
        return result

    def positions(self) -> dict[int, int]:
        """job id -> 1-based place in the admission order."""
        return {job_id: index for index, job_id in enumerate(self.order(), start=1)}
