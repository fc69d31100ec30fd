"""Checks shared by the reliability tests."""

from __future__ import annotations

from collections import Counter
from typing import Any


def assert_conserved(result: Any) -> None:
    """SPEC §5: per stage ``items_in == done + failed + cancelled``; failed == error rows;
    cancelled == ``len(result.cancelled_items)``."""
    stats = result.stats
    rows = Counter(result.errors["stage"])
    for path, row in stats.iterrows():
        if row["kind"] == "producer":
            continue
        assert row["items_in"] == row["done"] + row["failed"] + row["cancelled"], (
            path, row[["items_in", "done", "failed", "cancelled"]].to_dict())
        assert row["failed"] == rows[path], (path, row["failed"], rows[path])
    assert int(stats["cancelled"].sum()) == len(result.cancelled_items)
