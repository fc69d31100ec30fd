"""publish() is called from many runtime threads at once: nothing may be lost or torn."""

from __future__ import annotations

import threading

import pytest

from minigun_nb.observe.events import (
    Event,
    ItemsReceived,
    ItemsTaken,
    RunStarted,
    StageStarted,
)
from minigun_nb.observe.snapshot import RunSnapshot
from minigun_nb.observe.stats import StatsCollector

from ._helpers import chunk, stage

THREADS = 8
EVENTS_PER_THREAD = 10_000


class Counter:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.events = 0

    def on_event(self, event: Event) -> None:
        with self.lock:
            self.events += 1


@pytest.mark.timeout(30)
def test_eight_threads_publishing_ten_thousand_events_each_lose_nothing() -> None:
    stats = StatsCollector()  # the real clock: the point is real concurrency
    paths = ("a", "b")
    stats.publish(RunStarted("r1", 0.0, tuple(stage(p, workers=THREADS) for p in paths)))
    for path in paths:
        stats.publish(StageStarted(path, 0.0))
    counter = Counter()
    stats.subscribe(counter)
    start = threading.Barrier(THREADS + 1)  # the publishers and the reader
    done_publishing = threading.Event()
    torn: list[RunSnapshot] = []

    def publisher(index: int) -> None:
        path = paths[index % 2]
        start.wait()
        # Cycles of (received 3, taken 3, chunk of 3 with one failure and a latency each).
        for i in range(EVENTS_PER_THREAD):
            step = i % 3
            if step == 0:
                stats.publish(ItemsReceived(path, 3))
            elif step == 1:
                stats.publish(ItemsTaken(path, 3))
            else:
                stats.publish(
                    chunk(path, 2, failed=1, retried=1, busy_s=0.001, latencies=(0.001,) * 3)
                )

    def reader() -> None:
        start.wait()
        while not done_publishing.is_set():
            snap = stats.snapshot()
            for s in snap.stages:
                if s.items_in != s.done + s.failed + s.cancelled + s.in_flight:
                    torn.append(snap)

    # Daemon threads and bounded joins: a bug here must fail the test, not hang the suite.
    threads = [threading.Thread(target=publisher, args=(i,), daemon=True) for i in range(THREADS)]
    watcher = threading.Thread(target=reader, daemon=True)
    for thread in (*threads, watcher):
        thread.start()
    try:
        for thread in threads:
            thread.join(timeout=20)
            assert not thread.is_alive(), "a publisher is stuck"
    finally:
        done_publishing.set()
    watcher.join(timeout=5)

    cycles = -(-EVENTS_PER_THREAD // 3)  # received events per thread
    chunks = EVENTS_PER_THREAD // 3  # chunk events per thread (10_000 = 3333 cycles + 1)
    snap = stats.snapshot()
    assert counter.events == THREADS * EVENTS_PER_THREAD
    assert snap.totals.items_in == THREADS * cycles * 3
    assert snap.totals.done == THREADS * chunks * 2
    assert snap.totals.failed == THREADS * chunks
    assert snap.totals.retried == THREADS * chunks
    assert snap.totals.items_out == THREADS * chunks * 2
    assert snap.totals.in_flight == THREADS * 3  # the last cycle's received items
    for s in snap.stages:
        assert s.latency is not None and s.latency.count == (THREADS // 2) * chunks * 3
        assert s.items_in == s.done + s.failed + s.cancelled + s.in_flight
    assert torn == []
