"""Shared checks for runtime tests: the conservation law and small counters."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any


def assert_conserved(result: Any) -> None:
    """SPEC §5: for every non-producer stage ``items_in == done + failed + cancelled`` and
    every failed item is a row of the error table."""
    stats = result.stats
    errors = result.errors
    rows = Counter(errors["stage"])
    for path, row in stats.iterrows():
        if row["kind"] == "producer":
            assert row["items_in"] == 0, path
            continue
        assert row["items_in"] == row["done"] + row["failed"] + row["cancelled"], (
            path, row[["items_in", "done", "failed", "cancelled"]].to_dict())
        assert row["in_flight"] == 0, path
        assert row["queue_depth"] == 0, (path, row["queue_depth"])  # a finished run holds nothing
        assert row["failed"] <= rows[path], (path, row["failed"], rows[path])
    assert int(stats["cancelled"].sum()) == len(result.cancelled_items)


def as_multiset(items: Any) -> Counter:
    return Counter(repr(x) for x in items)


class MaxConcurrent:
    """Counts calls in progress and remembers the maximum."""

    def __init__(self) -> None:
        self.now = 0
        self.max = 0
        self._lock = threading.Lock()

    def __enter__(self) -> MaxConcurrent:
        with self._lock:
            self.now += 1
            self.max = max(self.max, self.now)
        return self

    def __exit__(self, *exc: Any) -> None:
        with self._lock:
            self.now -= 1
