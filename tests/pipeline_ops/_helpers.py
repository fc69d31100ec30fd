"""Shared helpers for the operator integration tests."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd


def assert_conserved(result, *stages):
    """``items_in == done + failed + cancelled`` (and nothing left in flight) for each stage."""
    stats = result.stats
    for stage in stages:
        row = stats.loc[stage]
        assert row.items_in == row.done + row.failed + row.cancelled, (stage, row.to_dict())
        assert row.in_flight == 0, (stage, row.to_dict())
        assert row.queue_depth == 0, (stage, row.to_dict())


def sample_frame(n=100, start=0):
    """A small frame with a non-default index and a few dtypes."""
    idx = pd.RangeIndex(start, start + n, name="id")
    return pd.DataFrame(
        {
            "x": np.arange(n, dtype="int64"),
            "y": np.linspace(0.0, 1.0, n),
            "tag": pd.Categorical([("a", "b", "c")[i % 3] for i in range(n)]),
        },
        index=idx,
    )


def wait_until(predicate, timeout=10.0, every=0.01):
    """Poll ``predicate`` until it is true (fails the test after ``timeout`` seconds)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(every)
