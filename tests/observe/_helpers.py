"""Event builders and a fake clock shared by the observe tests."""

from __future__ import annotations

import dataclasses
from typing import Any

from minigun_nb.observe.events import ChunkProcessed, StageInfo
from minigun_nb.observe.snapshot import StageSnapshot

#: Wall clock pinned so that monotonic 0.0 is 2024-01-01T00:00:00Z.
EPOCH_2024 = 1_704_067_200.0


class FakeClock:
    """A monotonic clock that only moves when a test says so."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def set(self, now: float) -> None:
        self.now = now


def stage(
    path: str,
    kind: str = "processor",
    *,
    backend: str = "thread",
    workers: int = 1,
    queue_size: int = 100,
    track_latency: bool = True,
) -> StageInfo:
    """A StageInfo with the defaults most tests want."""
    return StageInfo(path, kind, backend, workers, queue_size, track_latency)


def producer(path: str = "gen") -> StageInfo:
    return StageInfo(path, "producer", "thread", 1, 0)


def chunk(
    path: str,
    done: int = 0,
    *,
    failed: int = 0,
    filtered: int = 0,
    emitted: int | None = None,
    retried: int = 0,
    busy_s: float = 0.0,
    latencies: tuple[float, ...] = (),
) -> ChunkProcessed:
    """A ChunkProcessed where, unless said otherwise, every done item emitted one output."""
    return ChunkProcessed(
        path,
        done=done,
        failed=failed,
        filtered=filtered,
        emitted=done - filtered if emitted is None else emitted,
        retried=retried,
        busy_s=busy_s,
        latencies=latencies,
    )


def stage_snapshot(path: str = "a", **fields: Any) -> StageSnapshot:
    """A running, idle StageSnapshot with ``fields`` overridden (for formatting tests)."""
    base = StageSnapshot(
        path=path,
        kind="processor",
        backend="thread",
        workers=1,
        status="running",
        items_in=0,
        items_out=0,
        done=0,
        filtered=0,
        failed=0,
        cancelled=0,
        retried=0,
        in_flight=0,
        queue_depth=0,
        queue_size=100,
        busy=0.0,
        throughput=0.0,
        p50_ms=None,
        p90_ms=None,
        p95_ms=None,
        p99_ms=None,
        started=None,
        finished=None,
        elapsed_s=0.0,
    )
    return dataclasses.replace(base, **fields)
