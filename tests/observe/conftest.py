"""Fixtures for the observe tests: a fake clock and a collector built on it."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from minigun_nb.observe.events import RunStarted, StageInfo
from minigun_nb.observe.stats import StatsCollector

from ._helpers import EPOCH_2024, FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_stats(clock: FakeClock) -> Callable[..., StatsCollector]:
    """Build a collector on the fake clock whose monotonic 0.0 is ``EPOCH_2024``."""

    def make(*stages: StageInfo, run_id: str = "r1", window: float = 2.0) -> StatsCollector:
        stats = StatsCollector(clock=clock, wall_clock=lambda: EPOCH_2024 + clock(), window=window)
        if stages:
            stats.publish(RunStarted(run_id, clock(), tuple(stages)))
        return stats

    return make
