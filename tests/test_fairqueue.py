"""Round-robin admission across people, and queue positions that tell the truth."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from services.jobs.queue import FairQueue


def test_one_persons_burst_does_not_starve_others() -> None:
    """Alice's five jobs are interleaved with Bob's and Carol's, not served all first."""
    queue = FairQueue()
    for job_id in range(1, 6):
        queue.push(job_id, "alice")
    queue.push(10, "bob")
    queue.push(20, "carol")
    queue.push(11, "bob")
    assert [queue.pop() for _ in range(8)] == [1, 10, 20, 2, 11, 3, 4, 5]


def test_removed_jobs_leave_the_line() -> None:
    """A cancelled job no longer holds a place."""
    queue = FairQueue()
    queue.push(1, "a")
    queue.push(2, "a")
    queue.push(3, "b")
    assert queue.remove(2)
    assert not queue.remove(2)
    assert queue.positions() == {1: 1, 3: 2}


@given(st.lists(st.tuples(st.integers(0, 4), st.booleans()), max_size=60))
def test_positions_predict_the_admission_order(operations: list[tuple[int, bool]]) -> None:
    """Whatever happens, the order shown to people is the order in which jobs are admitted."""
    queue = FairQueue()
    next_id = 0
    for owner, admit in operations:
        if admit:
            predicted = queue.order()
            popped = queue.pop()
            assert popped == (predicted[0] if predicted else None)
        else:
            next_id += 1
            queue.push(next_id, owner)
    predicted = queue.order()
    drained = []
    while (job_id := queue.pop()) is not None:
        drained.append(job_id)
    assert drained == predicted


def test_someone_just_served_waits_behind_a_newcomer() -> None:
    """Alice's first job started at once; her next ones wait behind Bob's first, even though they came earlier."""
    queue = FairQueue()
    queue.push(1, "alice")
    assert queue.pop() == 1
    queue.push(2, "alice")
    queue.push(3, "alice")
    queue.push(10, "bob")
    assert queue.order() == [10, 2, 3]
    assert [queue.pop() for _ in range(3)] == [10, 2, 3]


def test_a_job_put_back_goes_first() -> None:
    """A submit that must wait (xAI busy) keeps its place at the very front."""
    queue = FairQueue()
    queue.push(1, "a")
    queue.push(2, "b")
    assert queue.pop() == 1
    queue.push_front(1, "a")
    assert queue.order() == [1, 2]


@given(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 2)), max_size=80))
def test_one_jobs_position_agrees_with_the_whole_order(operations: list[tuple[int, int]]) -> None:
    """``position()`` (asked on every new job) is the same as its place in ``order()``."""
    queue = FairQueue()
    next_id = 0
    for owner, action in operations:
        if action == 0:
            queue.pop()
        elif action == 1:
            next_id += 1
            queue.push(next_id, owner)
        else:
            next_id += 1
            queue.push_front(next_id, owner)
        assert {job_id: queue.position(job_id) for job_id in queue.order()} == queue.positions()
