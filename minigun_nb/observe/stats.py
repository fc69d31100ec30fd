"""Fold the runtime's events into frozen snapshots; fan events and snapshots out to observers.

The runtime owns one :class:`StatsCollector` per run and calls :meth:`~StatsCollector.publish`
from its threads, once per chunk. Displays subscribe as observers and read snapshots on their
own timer (at most ~10 Hz), so their cost does not grow with the item rate. Nothing here
imports a display, pandas, or the rest of minigun_nb.

Examples
--------
>>> from minigun_nb.observe.events import (
...     ChunkProcessed, ItemsReceived, ItemsTaken, RunStarted, StageInfo, StageStarted)
>>> now = [0.0]
>>> stats = StatsCollector(clock=lambda: now[0])
>>> stats.publish(RunStarted("r1", 0.0, (StageInfo("clean", "processor", "thread", 2, 100),)))
>>> stats.publish(StageStarted("clean", 0.0))
>>> stats.publish(ItemsReceived("clean", 10)); stats.publish(ItemsTaken("clean", 10))
>>> now[0] = 1.0
>>> stats.publish(ChunkProcessed("clean", done=10, failed=0, filtered=0, emitted=10,
...                              retried=0, busy_s=2.0, latencies=(0.2,) * 10))
>>> snap = stats.snapshot().stage("clean")
>>> snap.done, snap.in_flight, snap.busy, snap.throughput
(10, 0, 1.0, 10.0)
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any, NamedTuple, Protocol, runtime_checkable

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
from .summary import summary_text

__all__ = [
    "BOTTLENECK_BUSY",
    "BOTTLENECK_FILL",
    "EventObserver",
    "RunSnapshot",
    "RunTotals",
    "STATS_COLUMNS",
    "SnapshotObserver",
    "StageSnapshot",
    "StatsCollector",
    "bottleneck_hint",
    "find_bottleneck",
    "summary_text",
]

logger = logging.getLogger("minigun_nb")

#: A stage is reported as the bottleneck only from this busy fraction on ...
BOTTLENECK_BUSY = 0.5
#: ... or when its input queue was at least this full on average.
BOTTLENECK_FILL = 0.5
_PERCENTILES = (50.0, 90.0, 95.0, 99.0)
_NO_PERCENTILES: tuple[float | None, ...] = (None, None, None, None)


@runtime_checkable
class EventObserver(Protocol):
    """An observer that wants every event (called from the publishing thread).

    Examples
    --------
    >>> class Printer:
    ...     def on_event(self, event): print(type(event).__name__)
    >>> isinstance(Printer(), EventObserver)
    True
    """

    def on_event(self, event: Event) -> None: ...


@runtime_checkable
class SnapshotObserver(Protocol):
    """An observer that wants snapshots (called by :meth:`StatsCollector.notify_snapshot`).

    Examples
    --------
    >>> class Table:
    ...     def on_snapshot(self, snapshot): pass
    >>> isinstance(Table(), SnapshotObserver)
    True
    """

    def on_snapshot(self, snapshot: RunSnapshot) -> None: ...


class _Subscription(NamedTuple):
    observer: object
    on_event: Callable[[Event], object] | None
    on_snapshot: Callable[[RunSnapshot], object] | None


class _Stage:
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

    def add_chunk(self, t: float, event: ChunkProcessed, horizon: float) -> None:
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
        )

    def average_fill(self, end: float) -> float:
        if self.fill_start is None:
            return 0.0
        area = self.fill_area + self.fill * max(0.0, end - self.fill_time)
        duration = end - self.fill_start
        return min(1.0, max(0.0, area / duration)) if duration > 0 else self.fill


def bottleneck_hint(stage: StageSnapshot) -> str:
    """Return the one-line hint naming ``stage`` as the bottleneck.

    Examples
    --------
    >>> snap = StageSnapshot("clean", "processor", "thread", 4, "running", *[0] * 10,
    ...                      1.0, 0.0, None, None, None, None, None, None, 0.0)
    >>> bottleneck_hint(snap)
    '`clean` is the bottleneck: 100% busy with 4 workers; try workers=8'
    """
    workers = stage.workers
    noun = "worker" if workers == 1 else "workers"
    return (
        f"`{stage.path}` is the bottleneck: {round(stage.busy * 100)}% busy with "
        f"{workers} {noun}; try workers={2 * max(workers, 1)}"
    )


def find_bottleneck(stages: tuple[StageSnapshot, ...]) -> tuple[str | None, str]:
    """Return ``(path, hint)`` of the bottleneck among ``stages``, or ``(None, "")``.

    Producers and stages that have not started are never the bottleneck. A stage qualifies
    when its workers are at least half busy or its input queue was at least half full on
    average; among those the busiest wins (compared at whole percents, the resolution a
    person sees), ties going to the fuller input queue, then to the earlier stage.

    Examples
    --------
    >>> find_bottleneck(())
    (None, '')
    """
    best: StageSnapshot | None = None
    best_key = (-1, -1.0)
    for stage in stages:
        if stage.is_producer or stage.status == "pending":
            continue
        if stage.busy < BOTTLENECK_BUSY and stage.queue_fill < BOTTLENECK_FILL:
            continue
        key = (round(stage.busy * 100), stage.queue_fill)
        if key > best_key:
            best, best_key = stage, key
    if best is None:
        return None, ""
    return best.path, bottleneck_hint(best)


class StatsCollector:
    """Turn events into frozen :class:`RunSnapshot` objects and forward them to observers.

    Parameters
    ----------
    clock : callable, optional
        Monotonic seconds, used to stamp events that carry no time and as the default ``now``
        of :meth:`snapshot`; inject a fake clock in tests.
    wall_clock : callable, optional
        Epoch seconds; read once, to turn monotonic times into wall-clock datetimes.
    window : float, optional
        Seconds of recent chunks behind the live ``busy`` and ``throughput`` (default 2).

    Notes
    -----
    Observer contract (trio's instruments): an observer is any object with an optional
    ``on_event(event)`` and an optional ``on_snapshot(snapshot)``. An observer that raises is
    detached and logged at WARNING on the ``minigun_nb`` logger; the publish goes on, so a
    display never fails a data job. Observers are called outside the collector's lock, so they
    may call :meth:`snapshot`.

    Examples
    --------
    >>> from minigun_nb.observe.events import RunStarted, RunFinished
    >>> stats = StatsCollector()
    >>> class Recorder:
    ...     def __init__(self): self.seen = []
    ...     def on_event(self, event): self.seen.append(type(event).__name__)
    >>> rec = Recorder(); stats.subscribe(rec)
    >>> stats.publish(RunStarted("r1", 0.0, ())); stats.publish(RunFinished(1.0, "done"))
    >>> rec.seen, stats.snapshot().status
    (['RunStarted', 'RunFinished'], 'done')
    """

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        *,
        wall_clock: Callable[[], float] = time.time,
        window: float = 2.0,
    ) -> None:
        if not window > 0:
            raise ValueError(f"window must be positive seconds, got {window!r}")
        self._clock = clock
        # Captured once: monotonic + offset = epoch seconds, immune to later clock changes.
        self._offset = wall_clock() - clock()
        self._window = float(window)
        self._lock = threading.Lock()
        self._observers: tuple[_Subscription, ...] = ()
        self._observers_lock = threading.Lock()
        self._run_id = ""
        self._status = "pending"
        self._started: float | None = None
        self._finished: float | None = None
        self._stages: dict[str, _Stage] = {}
        self._handlers: dict[type, Callable[[Any], None]] = {
            RunStarted: self._run_started,
            StageStarted: self._stage_started,
            ItemsReceived: self._items_received,
            ItemsTaken: self._items_taken,
            ChunkProcessed: self._chunk_processed,
            ItemsCancelled: self._items_cancelled,
            StageFinished: self._stage_finished,
            RunFinished: self._run_finished,
        }

    # -- publishing ---------------------------------------------------------------------------

    def publish(self, event: Event) -> None:
        """Fold ``event`` into the stats and forward it to ``on_event`` observers.

        Thread-safe and cheap (one lock, a few additions); never raises: a fold that fails is
        logged, and the event is still forwarded.

        Examples
        --------
        >>> from minigun_nb.observe.events import RunStarted
        >>> StatsCollector().publish(RunStarted("r1", 0.0, ()))
        """
        handler = self._handlers.get(type(event))
        if handler is not None:
            try:
                with self._lock:
                    handler(event)
            except Exception:  # a bad event must not fail the data job
                logger.warning("minigun_nb: could not fold %r", event, exc_info=True,
                               extra=self._log_extra(event))
        for subscription in self._observers:  # a tuple, replaced on change: no lock needed
            if subscription.on_event is not None:
                try:
                    subscription.on_event(event)
                except Exception as exc:
                    self._detach(subscription, "on_event", exc)

    def notify_snapshot(self, snapshot: RunSnapshot | None = None) -> RunSnapshot:
        """Call ``on_snapshot`` on every observer with ``snapshot`` (a fresh one if None).

        Returns
        -------
        RunSnapshot
            The snapshot delivered, so a display timer needs a single call.

        Examples
        --------
        >>> StatsCollector().notify_snapshot().status
        'pending'
        """
        if snapshot is None:
            snapshot = self.snapshot()
        for subscription in self._observers:
            if subscription.on_snapshot is not None:
                try:
                    subscription.on_snapshot(snapshot)
                except Exception as exc:
                    self._detach(subscription, "on_snapshot", exc)
        return snapshot

    # -- observers ----------------------------------------------------------------------------

    def subscribe(self, observer: object) -> None:
        """Attach ``observer`` (any object with ``on_event`` and/or ``on_snapshot``).

        Examples
        --------
        >>> stats = StatsCollector(); stats.subscribe(object()); len(stats.observers)
        1
        """
        on_event = getattr(observer, "on_event", None)
        on_snapshot = getattr(observer, "on_snapshot", None)
        subscription = _Subscription(
            observer,
            on_event if callable(on_event) else None,
            on_snapshot if callable(on_snapshot) else None,
        )
        with self._observers_lock:
            self._observers = (*self._observers, subscription)

    def unsubscribe(self, observer: object) -> None:
        """Detach ``observer``; a no-op if it is not attached.

        Examples
        --------
        >>> stats = StatsCollector(); o = object(); stats.subscribe(o); stats.unsubscribe(o)
        >>> stats.observers
        ()
        """
        with self._observers_lock:
            self._observers = tuple(s for s in self._observers if s.observer is not observer)

    @property
    def observers(self) -> tuple[object, ...]:
        """The attached observers, in subscription order."""
        return tuple(s.observer for s in self._observers)

    def _detach(self, subscription: _Subscription, method: str, exc: Exception) -> None:
        with self._observers_lock:
            if subscription not in self._observers:
                return  # another thread already detached (and logged) it
            self._observers = tuple(s for s in self._observers if s is not subscription)
        logger.warning(
            "minigun_nb: observer %r raised in %s and was detached: %s: %s",
            subscription.observer,
            method,
            type(exc).__name__,
            exc,
            exc_info=exc,
            extra={"run_id": self._run_id, "stage": None},
        )

    def _log_extra(self, event: object) -> dict[str, object]:
        return {"run_id": self._run_id, "stage": getattr(event, "path", None)}

    # -- snapshots ----------------------------------------------------------------------------

    def snapshot(self, now: float | None = None) -> RunSnapshot:
        """Return the frozen state of the run at ``now`` (the collector's clock by default).

        Cheap: O(stages), percentiles recomputed only for stages with new latencies.
        ``now`` must not go backwards between calls (the recent window is pruned to it).

        Examples
        --------
        >>> StatsCollector().snapshot().stages
        ()
        """
        with self._lock:
            if now is None:
                now = self._clock()
            horizon = self._window
            stages = tuple(stage.snapshot(now, horizon) for stage in self._stages.values())
            started, finished = self._started, self._finished
            run_id, status = self._run_id, self._status
        end = finished if finished is not None else now
        bottleneck, hint = find_bottleneck(stages)
        return RunSnapshot(
            run_id=run_id,
            status=status,
            elapsed_s=0.0 if started is None else max(0.0, end - started),
            stages=stages,
            totals=RunTotals.of(stages),
            bottleneck=bottleneck,
            hint=hint,
            started=self._wall(started),
            finished=self._wall(finished),
        )

    def _wall(self, moment: float | None) -> datetime | None:
        if moment is None:
            return None
        return datetime.fromtimestamp(self._offset + moment, tz=timezone.utc)

    # -- folding (called under self._lock) ----------------------------------------------------

    def _stage(self, path: str) -> _Stage:
        stage = self._stages.get(path)
        if stage is None:
            # An event for a stage the run did not announce: keep its counts rather than drop
            # them, under a placeholder description.
            stage = _Stage(StageInfo(path, "unknown", "unknown", 1, 0))
            self._stages[path] = stage
        return stage

    def _run_started(self, event: RunStarted) -> None:
        self._run_id = event.run_id
        self._status = "running"
        self._started = event.time
        self._finished = None
        self._stages = {info.path: _Stage(info) for info in event.stages}

    def _stage_started(self, event: StageStarted) -> None:
        stage = self._stage(event.path)
        stage.started = event.time
        stage.started_wall = self._wall(event.time)
        if stage.status == "pending":
            stage.status = "running"
        stage.advance_fill(event.time)

    def _items_received(self, event: ItemsReceived) -> None:
        stage = self._stage(event.path)
        stage.advance_fill(self._clock())
        stage.received += event.n
        stage.update_fill()

    def _items_taken(self, event: ItemsTaken) -> None:
        stage = self._stage(event.path)
        stage.advance_fill(self._clock())
        stage.taken += event.n
        stage.update_fill()

    def _items_cancelled(self, event: ItemsCancelled) -> None:
        stage = self._stage(event.path)
        stage.advance_fill(self._clock())
        stage.cancelled += event.n
        stage.cancelled_queued += event.queued
        stage.update_fill()

    def _chunk_processed(self, event: ChunkProcessed) -> None:
        self._stage(event.path).add_chunk(self._clock(), event, self._window)

    def _stage_finished(self, event: StageFinished) -> None:
        stage = self._stage(event.path)
        stage.advance_fill(event.time)
        stage.finished = event.time
        stage.finished_wall = self._wall(event.time)
        stage.status = event.status

    def _run_finished(self, event: RunFinished) -> None:
        self._status = event.status
        self._finished = event.time
        for stage in self._stages.values():
            if stage.finished is not None:
                continue
            # A stage the runtime did not close (a cancel, a failure) ends with the run, so a
            # finished run never shows a "running" stage whose clock keeps ticking.
            if stage.started is not None:
                stage.advance_fill(event.time)
                stage.finished = event.time
                stage.finished_wall = self._wall(event.time)
            stage.status = event.status
