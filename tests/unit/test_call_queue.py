"""dialplan.queue: who is served next when a destination frees up."""

from __future__ import annotations

from dialplan.queue import CallQueue


def test_best_quality_first_then_longest_wait() -> None:
    queue = CallQueue()
    queue.join("low", 20, ["desk"], joined=1.0)
    queue.join("high-late", 80, ["desk"], joined=3.0)
    queue.join("high-early", 80, ["desk"], joined=2.0)
    assert [w.call_id for w in queue.waiting("desk")] == ["high-early", "high-late", "low"]
    assert [queue.position(c) for c in ("high-early", "high-late", "low")] == [1, 2, 3]


def test_offer_wakes_one_caller_for_that_destination() -> None:
    queue = CallQueue()
    other = queue.join("other", 99, ["support"], joined=0.0)
    best = queue.join("best", 50, ["desk", "support"], joined=1.0)
    second = queue.join("second", 10, ["desk"], joined=0.5)
    assert queue.offer("desk") is best and best.offered == "desk" and best.woken.is_set()
    assert not second.woken.is_set() and not other.woken.is_set()
    assert queue.offer("desk") is second  # a second free place goes to the next one, not to the woken caller again
    assert queue.offer("desk") is None


def test_requeued_caller_keeps_its_place_and_position_counts_overlap_only() -> None:
    queue = CallQueue()
    queue.join("a", 50, ["desk"], joined=1.0)
    queue.join("b", 50, ["desk"], joined=2.0)
    queue.leave("a")
    queue.join("a", 50, ["desk"], joined=1.0)  # back after its destination was taken before it dialled
    assert queue.position("a") == 1 and queue.position("b") == 2
    queue.join("c", 90, ["support"], joined=0.0)
    assert queue.position("b") == 2  # a caller for another destination is not ahead of b
    queue.leave("a"), queue.leave("b"), queue.leave("c")
    assert len(queue) == 0 and queue.position("a") is None


def test_unknown_quality_counts_as_zero_and_ties_are_first_come() -> None:
    queue = CallQueue()
    queue.join("first", None, ["desk"], joined=5.0)
    queue.join("second", 0, ["desk"], joined=5.0)
    assert [w.call_id for w in queue.waiting()] == ["first", "second"]
