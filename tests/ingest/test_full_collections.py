"""Full garbage collections when the runner chooses: none automatic while started, its thresholds given back."""

from __future__ import annotations

import gc
import weakref

from framework.ingest.loop import FullCollections


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


def cycle() -> weakref.ref[Node]:
    a, b = Node(), Node()
    a.other, b.other = b, a
    return weakref.ref(a)


def test_collections_run_when_due_and_the_collectors_thresholds_come_back() -> None:
    before = gc.get_threshold()
    collections = FullCollections(every_s=3600.0)
    assert not collections.collect_if_due()  # not started: the collector's own schedule
    collections.start()
    try:
        assert gc.get_threshold()[:2] == before[:2]  # the young generations as usual
        assert gc.get_threshold()[2] > 1_000_000  # no automatic full collection
        assert not collections.collect_if_due()
        assert not collections.collect_if_overdue()
        garbage = cycle()
        collections.every_s = 0.0
        assert collections.collect_if_due()
        assert garbage() is None  # the cycle was collected
        assert collections.count == 1
        assert collections.last_pause_s >= 0.0
    finally:
        collections.stop()
    assert gc.get_threshold() == before
