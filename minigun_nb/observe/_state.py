"""Per-stage accumulators behind :class:`~minigun_nb.observe.stats.StatsCollector`.

Private: only the collector touches these, always under its lock. Kept apart so that the
collector reads as "events in, snapshots out" and each module stays small.
"""

from __future__ import annotations

from collections import deque
from datetime import datetime

from .events import ChunkProcessed, StageInfo
from .histogram import LatencyHistogram
from .snapshot import StageSnapshot

__all__ = ["StageState"]

_PERCENTILES = (50.0, 90.0, 95.0, 99.0)
_NO_PERCENTILES: tuple[float | None, ...] = (None, None, None, None)


class StageState:
    """Mutable per-stage accumulators; only touched under the collector's lock."""

    __slots__ = (
        "info",
        "producer",
        "status",
        "started",
        "finished",
        "started_wall",
        "finished_wall",
        "received",
        "taken",
        "cancelled",
        "cancelled_queued",
        "done",
        "failed",
        "filtered",
        "emitted",
        "retried",
        "busy_s",
        "hist",
        "hist_version",
        "latency_cache",
        "window",
        "win_count",
        "win_busy",
        "fill_start",
        "fill_time",
        "fill",
        "fill_area",
        "flight",
        "_anon",
    )

    def __init__(self, info: StageInfo) -> None:
        self.info = info
        self.producer = info.kind == "producer"
        self.status = "pending"
        self.started: float | None = None
        self.finished: float | None = None
        self.started_wall: datetime | None = None
        self.finished_wall: datetime | None = None
        self.received = self.taken = self.cancelled = self.cancelled_queued = 0
        self.done = self.failed = self.filtered = self.emitted = self.retried = 0
        self.busy_s = 0.0
        self.hist = LatencyHistogram() if info.track_latency else None
        self.hist_version = 0
        # (version, histogram copy, percentiles): rebuilt only when latencies arrived since.
        self.latency_cache: tuple[int, LatencyHistogram | None, tuple[float | None, ...]] = (
            0,
            None,
            _NO_PERCENTILES,
        )
        # Recent chunks (time, count, busy_s) with running sums, so a snapshot costs O(1)
        # per stage whatever the chunk rate.
        self.window: deque[tuple[float, int, float]] = deque()
        self.win_count = 0
        self.win_busy = 0.0
        # Queue fill is integrated over time as a step function sampled at each queue event.
        self.fill_start: float | None = None
        self.fill_time = 0.0
        self.fill = 0.0
        self.fill_area = 0.0
        # Taken and not yet accounted for: token -> [take time, items left], oldest first. A
        # chunk that names its take settles exactly that one, so a stuck item stays the
        # oldest while other workers go on; what names no take settles the oldest first.
        self.flight: dict[int, list[float]] = {}
        self._anon = 0

    # -- folding ------------------------------------------------------------------------------

    def advance_fill(self, t: float) -> None:
        if self.fill_start is None:
            self.fill_start = self.fill_time = t
        elif t > self.fill_time and self.finished is None:
            self.fill_area += self.fill * (t - self.fill_time)
            self.fill_time = t

    def update_fill(self) -> None:
        size = self.info.queue_size
        depth = self.received - self.taken - self.cancelled_queued
        # A queue may hold one chunk over its size; "full" is what matters, so clip at 1.
        self.fill = min(1.0, max(0.0, depth / size)) if size > 0 else 0.0

    def took(self, t: float, n: int, token: int = 0) -> None:
        if n <= 0:
            return
        if not token:
            self._anon -= 1
            token = self._anon
        self.flight.pop(token, None)  # a recycled id: the old take is over
        self.flight[token] = [t, n]

    def settle(self, n: int, token: int = 0) -> None:
        """``n`` taken items ended (done, failed or cancelled after being taken)."""
        flight = self.flight
        entry = flight.get(token) if token else None
        if entry is not None:
            if entry[1] > n:
                entry[1] -= n
                return
            n -= int(entry[1])
            del flight[token]
        while n > 0 and flight:
            key = next(iter(flight))
            head = flight[key]
            if head[1] > n:
                head[1] -= n
                return
            n -= int(head[1])
            del flight[key]

    def oldest(self, now: float) -> float | None:
        if not self.flight:
            return None
        return max(0.0, now - next(iter(self.flight.values()))[0])

    def add_chunk(self, t: float, event: ChunkProcessed, horizon: float) -> None:
        if not self.producer:
            self.settle(event.done + event.failed, event.token)
        self.done += event.done
        self.failed += event.failed
        self.filtered += event.filtered
        self.emitted += event.emitted
        self.retried += event.retried
        self.busy_s += event.busy_s
        count = event.emitted if self.producer else event.done
        self.window.append((t, count, event.busy_s))
        self.win_count += count
        self.win_busy += event.busy_s
        self.prune(t - horizon)
        if self.hist is not None and event.latencies:
            self.hist.add_many(event.latencies)
            self.hist_version += 1

    def prune(self, cutoff: float) -> None:
        window = self.window
        while window and window[0][0] <= cutoff:
            _, count, busy = window.popleft()
            self.win_count -= count
            self.win_busy -= busy
        if not window:
            # Reset rather than trust a float that went up and down many times.
            self.win_count, self.win_busy = 0, 0.0

    # -- reading ------------------------------------------------------------------------------

    def latency(self) -> tuple[LatencyHistogram | None, tuple[float | None, ...]]:
        hist = self.hist
        if hist is None or hist.count == 0:
            return None, _NO_PERCENTILES
        version, copy, percentiles = self.latency_cache
        if copy is None or version != self.hist_version:
            copy = hist.copy()
            percentiles = tuple(
                None if p is None else p * 1e3 for p in copy.percentiles(_PERCENTILES)
            )
            self.latency_cache = (self.hist_version, copy, percentiles)
        return copy, percentiles

    def snapshot(self, now: float, horizon: float) -> StageSnapshot:
        info = self.info
        running = self.finished is None
        end = now if running else self.finished
        assert end is not None
        elapsed = 0.0 if self.started is None else max(0.0, end - self.started)
        count = self.emitted if self.producer else self.done
        overall_count = self.emitted if self.producer else self.done + self.failed
        workers = info.workers
        if running:
            self.prune(now - horizon)
            span = min(horizon, elapsed)
            throughput = self.win_count / span if span > 0 else 0.0
            busy = self.win_busy / (workers * span) if span > 0 and workers > 0 else 0.0
        else:
            throughput = count / elapsed if elapsed > 0 else 0.0
            busy = self.busy_s / (workers * elapsed) if elapsed > 0 and workers > 0 else 0.0
        histogram, (p50, p90, p95, p99) = self.latency()
        return StageSnapshot(
            path=info.path,
            kind=info.kind,
            backend=info.backend,
            workers=workers,
            status=self.status,
            items_in=self.received,
            items_out=self.emitted,
            done=self.done,
            filtered=self.filtered,
            failed=self.failed,
            cancelled=self.cancelled,
            retried=self.retried,
            # Publishers race (a chunk may be reported before its ItemsReceived lands), so a
            # transient negative is clipped; once events are consistent the law is exact.
            in_flight=0
            if self.producer
            else max(0, self.received - self.done - self.failed - self.cancelled),
            queue_depth=max(0, self.received - self.taken - self.cancelled_queued),
            queue_size=info.queue_size,
            busy=min(1.0, max(0.0, busy)),
            throughput=throughput,
            p50_ms=p50,
            p90_ms=p90,
            p95_ms=p95,
            p99_ms=p99,
            started=self.started_wall,
            finished=self.finished_wall,
            elapsed_s=elapsed,
            throughput_overall=overall_count / elapsed if elapsed > 0 else 0.0,
            latency=histogram,
            queue_fill=self.average_fill(end),
            oldest_s=self.oldest(now) if running else None,
        )

    def average_fill(self, end: float) -> float:
        if self.fill_start is None:
            return 0.0
        area = self.fill_area + self.fill * max(0.0, end - self.fill_time)
        duration = end - self.fill_start
        return min(1.0, max(0.0, area / duration)) if duration > 0 else self.fill
