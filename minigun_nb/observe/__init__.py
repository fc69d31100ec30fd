"""Facts about a run: events in, frozen snapshots out. No UI, no pandas at import time.

The runtime publishes :mod:`~minigun_nb.observe.events` to a :class:`StatsCollector`; displays
subscribe to it and read :class:`RunSnapshot` objects. This package imports nothing from the
rest of minigun_nb, so the dependency only ever points inwards.

Examples
--------
>>> from minigun_nb.observe import StatsCollector
>>> StatsCollector().snapshot().status
'pending'
"""

from __future__ import annotations

from .events import (
    ChunkProcessed,
    Event,
    ItemsCancelled,
    ItemsReceived,
    ItemsTaken,
    RunFinished,
    RunStarted,
    StageFinished,
    StageInfo,
    StageStarted,
)
from .histogram import LatencyHistogram
from .snapshot import STATS_COLUMNS, RunSnapshot, RunTotals, StageSnapshot
from .stats import (
    EventObserver,
    SnapshotObserver,
    StatsCollector,
    bottleneck_hint,
    find_bottleneck,
)
from .summary import summary_text

__all__ = [
    "STATS_COLUMNS",
    "ChunkProcessed",
    "Event",
    "EventObserver",
    "ItemsCancelled",
    "ItemsReceived",
    "ItemsTaken",
    "LatencyHistogram",
    "RunFinished",
    "RunSnapshot",
    "RunStarted",
    "RunTotals",
    "SnapshotObserver",
    "StageFinished",
    "StageInfo",
    "StageSnapshot",
    "StageStarted",
    "StatsCollector",
    "bottleneck_hint",
    "find_bottleneck",
    "summary_text",
]
