"""The scheduler's table of jobs xAI is working on: which one gets the next poll, and when.

Live jobs (someone waits for their video) are served first, always the one due soonest. A *quiet* job was
cancelled while xAI generated it: nothing of it is fetched or posted, but xAI goes on working on it (and
billing it, and using one of the account's concurrent slots), so it stays here, polled only when no live job
is due, until xAI says it is over or a poll past its deadline still finds it pending. Only then is it let go,
with the cost xAI reported.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(slots=True)
class Tracked:
    """A job that xAI is working on (or that needs one more poll to learn its video's address).

    Times are on the scheduler's monotonic clock, so a wall-clock jump during a run changes nothing.
    """

    job_id: int
    request_id: str
    started: float  # when xAI got the job (before this run began, for a resumed job)
    deadline: float  # a poll made after this that finds the job pending (or still failing) ends it
    next_poll_at: float
    polls: int = 0
    progress: int | None = None
    in_flight: bool = False
    needs_url_only: bool = False  # resumed in DOWNLOADING: already done at xAI, not using a slot
    resumed: bool = False  # its age includes time the bot was down: not a generation time to learn from
    quiet: bool = False  # cancelled while xAI generates it: followed only to learn when xAI is done (and the cost)
    cancelling: bool = False  # a Cancel is being written: a poll answer meanwhile is not acted on
    followed_after_restart: bool = True  # the next start resumes it (the terminal's jobs are nobody's after it)


class PollTable:
    """The tracked jobs by id, and the choice of the next poll."""

    def __init__(self) -> None:
        self._jobs: dict[int, Tracked] = {}

    def __len__(self) -> int:
        return len(self._jobs)

    def __iter__(self) -> Iterator[Tracked]:
        return iter(list(self._jobs.values()))

    def add(self, tracked: Tracked) -> None:
        self._jobs[tracked.job_id] = tracked

    def get(self, job_id: int) -> Tracked | None:
        return self._jobs.get(job_id)

    def pop(self, job_id: int) -> Tracked | None:
        return self._jobs.pop(job_id, None)

    def holds(self, tracked: Tracked) -> bool:
        """Whether this very entry is still tracked (not let go, nor replaced, while its poll was out)."""
        return self._jobs.get(tracked.job_id) is tracked

    @property
    def generating(self) -> int:
        """Jobs using one of xAI's concurrent slots: every tracked job but those already done at xAI."""
        return sum(1 for t in self._jobs.values() if not t.needs_url_only)

    def next_due(self, now: float) -> Tracked | None:
        """The job to poll now: the live one due soonest, else the quiet one due soonest, else None."""
        due = [t for t in self._jobs.values() if not t.in_flight and t.next_poll_at <= now]
        live = [t for t in due if not t.quiet]
        chosen = live or due
        return min(chosen, key=lambda t: t.next_poll_at) if chosen else None

    def seconds_until_next(self, now: float, idle_s: float = 60.0) -> float:
        times = [t.next_poll_at for t in self._jobs.values() if not t.in_flight]
        return max(0.0, min(times) - now) if times else idle_s
