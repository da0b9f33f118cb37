"""The scheduler's table of jobs xAI is working on, and what the polling policy is shown of each.

Which job the next poll goes to is the policy's choice (``poll_policy.py``): live jobs (someone waits for their
video) before *quiet* ones. A quiet job was cancelled while xAI generated it: nothing of it is fetched or
posted, but xAI goes on working on it (and billing it, and using one of the account's concurrent slots), so it
stays here, polled only when no live job is worth a poll, until xAI says it is over or a poll past its deadline
still finds it pending. Only then is it let go, with the cost xAI reported.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field

from services.jobs.models import Mode, VideoOptions
from services.scheduler.poll_policy import JobEvidence, JobKind, RunningJob


@dataclass(slots=True)
class Tracked:
    """A job that xAI is working on (or that needs one more poll to learn its video's address).

    Times are on the scheduler's monotonic clock, so a wall-clock jump during a run changes nothing.
    """

    job_id: int
    request_id: str
    started: float  # when xAI got the job (before this run began, for a resumed job)
    deadline: float  # a poll made after this that finds the job pending (or still failing) ends it
    kind: JobKind  # whose generation times this one's is judged by (model, resolution, duration)
    evidence: JobEvidence = field(default_factory=JobEvidence)  # what xAI's answers said so far (the policy reads it)
    not_before: float = -math.inf  # a failed poll holds the next one back until then
    failures: int = 0  # polls failed in a row: the backoff doubles with each
    progress: int | None = None  # as last told to the listener
    in_flight: bool = False
    needs_url_only: bool = False  # resumed in DOWNLOADING: already done at xAI, not using a slot
    resumed: bool = False  # its age includes time the bot was down: not a generation time to learn from
    quiet: bool = False  # cancelled while xAI generates it: followed only to learn when xAI is done (and the cost)
    cancelling: bool = False  # a Cancel is being written: a poll answer meanwhile is not acted on
    followed_after_restart: bool = True  # the next start resumes it (the terminal's jobs are nobody's after it)

    def view(self) -> RunningJob:
        """The job as the polling policy sees it."""
        return RunningJob(
            self.job_id,
            self.kind,
            self.started,
            self.evidence,
            quiet=self.quiet,
            in_flight=self.in_flight,
            resumed=self.resumed,
            deadline=self.deadline,
            not_before=self.not_before,
        )


def job_kind(model: str | None, mode: Mode, options: VideoOptions) -> JobKind:
    """Jobs whose generation times are alike: the same model, resolution, duration and mode."""
    return JobKind(model, options.resolution, options.duration, mode.value)


class PollTable:
    """The tracked jobs by id."""

    def __init__(self) -> None:
        self._jobs: dict[int, Tracked] = {}

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

    def running(self) -> list[RunningJob]:
        """Every tracked job as the polling policy sees it."""
        return [t.view() for t in self._jobs.values()]
