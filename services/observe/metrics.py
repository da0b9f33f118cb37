"""``/metrics``: the figures an operator graphs, read at scrape time in Prometheus' text format.

Job figures come from the store in one grouped query, so they are right after a restart and agree with
``/usage``; everything else is a plain number the part that knows it already keeps (the budget's grants and
waits, the client's 429s, tracking's detection lags, the posting chain's retries and failures, the scheduler's
line and slots). Nothing is pushed from the services and nothing there imports prometheus_client.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric, SummaryMetricFamily
from prometheus_client.registry import Collector

from services.jobs.models import ticks_to_usd
from services.observe.health import Health
from services.runtime import Runtime

PREFIX = "grokbot"
# One pass over the jobs table, on the store's own thread (or pool), never the event loop: measured 50-90 ms for
# 100,000 SQLite jobs (a scan), 10 ms with an index on (status, error_code, cost_usd_ticks). Grouped by the bare
# columns so such an index serves it; NULL and '' (no error) are merged in job_counts.
JOBS_BY_STATUS = (
    "SELECT status, error_code, COUNT(*) AS n, COALESCE(SUM(cost_usd_ticks), 0) AS ticks "
    "FROM jobs GROUP BY status, error_code"
)
LAG_QUANTILES = (0.5, 0.95)


class DeliveryCounts(Protocol):
    """The posting chain's counters (services/delivery/posting.py)."""

    @property
    def retries(self) -> int: ...

    @property
    def failures(self) -> int: ...


@dataclass(frozen=True, slots=True)
class Readings:
    """Where each figure is read from; built once by the bot, read at every scrape."""

    runtime: Runtime
    delivery: DeliveryCounts | None = None
    health: Health | None = None


@dataclass(frozen=True, slots=True)
class JobCount:
    status: str
    ending: str
    count: int
    cost_ticks: int


async def job_counts(readings: Readings) -> list[JobCount]:
    merged: dict[tuple[str, str], tuple[int, int]] = {}
    for row in await readings.runtime.store.database.fetch_all(JOBS_BY_STATUS):
        key = (str(row[0]), str(row[1] or ""))
        count, ticks = merged.get(key, (0, 0))
        merged[key] = (count + int(row[2]), ticks + int(row[3]))
    return [JobCount(status, ending, count, ticks) for (status, ending), (count, ticks) in merged.items()]


def families(readings: Readings, jobs: Sequence[JobCount]) -> list[Metric]:
    """Every metric, from the store's counts and the parts' counters as they are now."""
    runtime = readings.runtime
    scheduler, budget, client = runtime.scheduler, runtime.budget, runtime.client
    by_status = GaugeMetricFamily(
        f"{PREFIX}_jobs",
        "Jobs in the store, by status and ending (the error code; empty if none)",
        labels=["status", "ending"],
    )
    for job in jobs:
        by_status.add_metric([job.status, job.ending], job.count)
    cost = sum(job.cost_ticks for job in jobs)
    found: list[Metric] = [
        by_status,
        GaugeMetricFamily(f"{PREFIX}_queue_length", "Jobs waiting in line for a slot at xAI", value=scheduler.waiting),
        GaugeMetricFamily(
            f"{PREFIX}_jobs_generating", "Jobs using one of xAI's concurrent slots now", value=scheduler.generating
        ),
        CounterMetricFamily(
            f"{PREFIX}_xai_cost_usd", "What xAI reported the jobs cost, in US dollars", value=ticks_to_usd(cost)
        ),
        CounterMetricFamily(
            f"{PREFIX}_budget_slots_granted",
            "Request slots the budget handed out (a submit or poll each)",
            value=budget.granted,
        ),
        CounterMetricFamily(
            f"{PREFIX}_budget_slots_waited",
            "Request slots granted only after waiting for the budget",
            value=budget.waited,
        ),
        CounterMetricFamily(
            f"{PREFIX}_budget_wait_seconds", "Time spent waiting for request slots", value=budget.waited_s
        ),
        CounterMetricFamily(f"{PREFIX}_xai_429", "Too-many-requests answers from xAI", value=client.rate_limited),
        _lag_summary(scheduler.detection_lags.count, scheduler.detection_lags.sum_s),
        _lag_quantiles(list(scheduler.detection_lags.recent_s)),
    ]
    if readings.delivery is not None:
        found += [
            CounterMetricFamily(
                f"{PREFIX}_delivery_retries", "Video posts to Discord tried again", value=readings.delivery.retries
            ),
            CounterMetricFamily(
                f"{PREFIX}_delivery_failures", "Video post attempts that failed", value=readings.delivery.failures
            ),
        ]
    if readings.health is not None:
        up = 0 if readings.health.problems() else 1
        found.append(GaugeMetricFamily(f"{PREFIX}_up", "1 while /healthz would answer 200", value=up))
    return found


def _lag_summary(count: int, total_s: float) -> Metric:
    return SummaryMetricFamily(
        f"{PREFIX}_poll_detection_lag_seconds",
        "How late finished videos were noticed, at most (from the last poll that found each pending)",
        count_value=count,
        sum_value=total_s,
    )


def _lag_quantiles(recent_s: list[float]) -> Metric:
    gauge = GaugeMetricFamily(
        f"{PREFIX}_poll_detection_lag_recent_seconds",
        "Quantiles of the detection lag over the latest 1,000 videos",
        labels=["quantile"],
    )
    if len(recent_s) >= 2:
        cuts = statistics.quantiles(recent_s, n=100, method="inclusive")
        for q in LAG_QUANTILES:
            gauge.add_metric([str(q)], cuts[round(q * 100) - 1])
    elif recent_s:
        for q in LAG_QUANTILES:
            gauge.add_metric([str(q)], recent_s[0])
    return gauge


class _Snapshot(Collector):
    def __init__(self, found: list[Metric]) -> None:
        self._found = found

    def collect(self) -> Iterator[Metric]:
        yield from self._found


def page(readings: Readings, jobs: Sequence[JobCount]) -> bytes:
    """The whole page, in Prometheus' text format (``prometheus_client.CONTENT_TYPE_LATEST``), from the store's
    counts already read (``job_counts``, the one part that can find the store down)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(families(readings, jobs)))
    return generate_latest(registry)
