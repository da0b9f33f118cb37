"""The plain counters /metrics reads: the budget's grants and waits (no scrape needed to check them)."""

from __future__ import annotations

import asyncio

from services.xai.budget import RequestBudget


async def test_the_budget_counts_slots_granted_and_those_that_waited() -> None:
    """A free slot is granted at once; the next ones, spaced by the budget (10 ms apart at 6,000 a minute), waited."""
    budget = RequestBudget(6000)
    await budget.acquire()
    assert (budget.granted, budget.waited, budget.waited_s) == (1, 0, 0.0)
    await asyncio.gather(budget.acquire(), budget.acquire())
    assert budget.granted == 3 and budget.waited == 2
    assert budget.waited_s >= budget.interval_s  # the second waited one slot, the third two
