"""What a server's members used: totals by outcome, seconds of video, spend, top users, per day, per model.

Pure arithmetic over jobs from the store, plus the CSV export, by the limits' own rules: a job is priced by
``GuildPolicy.spend_ticks`` (xAI's reported cost, else its model's price; summed in ticks) and placed in time
as the limits' windows place it (``Job.counts_at``: when it was sent, else asked for; now while it is in the
making). The chart lives in ``services.policy.usage_chart`` so this module never loads matplotlib.
"""

from __future__ import annotations

import csv
import io
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from services.jobs.models import Job, JobStatus, ticks_to_usd
from services.policy.guild_policy import GuildPolicy
from services.xai.catalog import CLASSIC


class Period(StrEnum):
    TODAY = "today"
    WEEK = "7d"
    MONTH = "30d"
    ALL = "all"

    @property
    def label(self) -> str:
        return {"today": "today (UTC)", "7d": "the last 7 days", "30d": "the last 30 days", "all": "all time"}[self]

    def since(self, now: float) -> float | None:
        """The start of the period: midnight UTC for today, a rolling window otherwise."""
        if self is Period.ALL:
            return None
        if self is Period.TODAY:
            midnight = datetime.fromtimestamp(now, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
            return midnight.timestamp()
        days = 7 if self is Period.WEEK else 30
        return now - days * 86400.0


class _InDollars:
    """Counted in ticks; ``usd`` is for display."""

    __slots__ = ()
    ticks: int

    @property
    def usd(self) -> float:
        return ticks_to_usd(self.ticks)


@dataclass(frozen=True, slots=True)
class UserUsage(_InDollars):
    user_id: int
    jobs: int
    seconds: float
    ticks: int


@dataclass(frozen=True, slots=True)
class DayUsage(_InDollars):
    day: str  # YYYY-MM-DD, UTC
    jobs: int
    ticks: int


@dataclass(frozen=True, slots=True)
class ModelUsage(_InDollars):
    model: str  # an old job that recorded none went to the classic model
    jobs: int
    seconds: float
    ticks: int


@dataclass(frozen=True, slots=True)
class Rejection:
    job_id: int
    user_id: int | None
    prompt: str
    created_at: float


@dataclass(slots=True)
class UsageReport:
    period: Period
    since: float | None
    jobs: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    failure_reasons: Counter[str] = field(default_factory=Counter)
    video_seconds: float = 0.0
    ticks_reported: int = 0  # what xAI said the jobs cost
    ticks_estimated: int = 0  # running jobs, and finished ones xAI gave no figure for
    top_users: list[UserUsage] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    days: list[DayUsage] = field(default_factory=list)
    models: list[ModelUsage] = field(default_factory=list)  # dearest first

    @property
    def ticks(self) -> int:
        return self.ticks_reported + self.ticks_estimated

    @property
    def usd(self) -> float:
        return ticks_to_usd(self.ticks)

    @property
    def usd_estimated(self) -> float:
        return ticks_to_usd(self.ticks_estimated)


def job_cost(job: Job, policy: GuildPolicy) -> tuple[int, bool]:
    """(ticks, estimated?) for one job, by the rule the spend limit uses (``GuildPolicy.spend_ticks``)."""
    options, counted = job.options, job.counted
    ticks = policy.spend_ticks(job.cost_usd_ticks, counted, job.model, job.mode, options.duration, options.resolution)
    return ticks, job.cost_usd_ticks is None and counted


def video_seconds(job: Job) -> float:
    """Seconds of video a delivered job produced (what xAI bills), from the file when we probed it."""
    if job.status is not JobStatus.DELIVERED:
        return 0.0
    return float(job.video_duration_s or job.options.duration or 0)


def build_report(
    jobs: list[Job], policy: GuildPolicy, period: Period, *, now: float | None = None, top: int = 5
) -> UsageReport:
    now = time.time() if now is None else now
    report = UsageReport(period=period, since=period.since(now))
    per_user: dict[int, _Tally] = defaultdict(_Tally)
    per_day: dict[str, _Tally] = defaultdict(_Tally)
    per_model: dict[str, _Tally] = defaultdict(_Tally)
    for job in jobs:
        cost, estimated = job_cost(job, policy)
        seconds = video_seconds(job)
        report.jobs += 1
        report.outcomes[_outcome(job)] += 1
        if job.status is JobStatus.FAILED:
            report.failure_reasons[job.error_code or "unknown"] += 1
        report.video_seconds += seconds
        if estimated:
            report.ticks_estimated += cost
        else:
            report.ticks_reported += cost
        if job.origin.user_id is not None:
            per_user[job.origin.user_id].add(seconds, cost)
        per_day[_day(job.counts_at(now))].add(seconds, cost)
        per_model[job.model or CLASSIC].add(seconds, cost)
        if job.status is JobStatus.MODERATED:
            report.rejections.append(Rejection(job.id, job.origin.user_id, job.shown_prompt, job.created_at))
    ranked = sorted(per_user.items(), key=lambda item: (-item[1].ticks, -item[1].jobs, item[0]))
    report.top_users = [UserUsage(uid, tally.jobs, tally.seconds, tally.ticks) for uid, tally in ranked[:top]]
    by_cost = sorted(per_model.items(), key=lambda item: (-item[1].ticks, -item[1].jobs, item[0]))
    report.models = [ModelUsage(name, tally.jobs, tally.seconds, tally.ticks) for name, tally in by_cost]
    report.rejections.sort(key=lambda r: r.created_at, reverse=True)
    report.days = _fill_days(per_day, report.since, now)
    return report


@dataclass(slots=True)
class _Tally:
    jobs: int = 0
    seconds: float = 0.0
    ticks: int = 0

    def add(self, seconds: float, ticks: int) -> None:
        self.jobs += 1
        self.seconds += seconds
        self.ticks += ticks


def _outcome(job: Job) -> str:
    return "in progress" if job.status.is_active else job.status.value


def _day(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")


def _fill_days(per_day: dict[str, _Tally], since: float | None, now: float) -> list[DayUsage]:
    """Every day of the period, quiet ones included, so a chart's gaps mean nothing happened."""
    if not per_day and since is None:
        return []
    first = _day(since) if since is not None else min(per_day)
    day = datetime.strptime(first, "%Y-%m-%d").replace(tzinfo=UTC)
    last = datetime.fromtimestamp(now, UTC)
    days = []
    while day.date() <= last.date():
        key = day.strftime("%Y-%m-%d")
        tally = per_day.get(key, _Tally())
        days.append(DayUsage(key, tally.jobs, tally.ticks))
        day += timedelta(days=1)
    return days


CSV_COLUMNS = (
    "job_id",
    "created_utc",
    "user_id",
    "channel_id",
    "mode",
    "model",
    "duration_s",
    "resolution",
    "status",
    "error_code",
    "video_seconds",
    "cost_usd",
    "cost_estimated",
    "xai_request_id",
    "prompt",
)


def to_csv(jobs: list[Job], policy: GuildPolicy) -> bytes:
    """One row per job. Text cells that a spreadsheet would run as a formula are defused with a quote."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for job in jobs:
        cost, estimated = job_cost(job, policy)
        writer.writerow(
            [
                job.id,
                datetime.fromtimestamp(job.created_at, UTC).strftime("%Y-%m-%d %H:%M:%S"),
                job.origin.user_id or "",
                job.origin.channel_id or "",
                job.mode.value,
                job.model or CLASSIC,
                job.options.duration or "",
                job.options.resolution or "",
                job.status.value,
                job.error_code or "",
                f"{video_seconds(job):g}",
                f"{ticks_to_usd(cost):.4f}",
                "yes" if estimated else "no",
                job.request_id or "",
                _defuse(job.shown_prompt),
            ]
        )
    return out.getvalue().encode("utf-8")


def _defuse(text: str) -> str:
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text
