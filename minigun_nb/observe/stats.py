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
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any, NamedTuple, Protocol, runtime_checkable

from ._state import StageState
from .bottleneck import BOTTLENECK_BUSY, BOTTLENECK_FILL, bottleneck_hint, find_bottleneck
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
        self._stages: dict[str, StageState] = {}
        self._pipeline = ""
        self._edges: tuple[tuple[str, str, str], ...] = ()
        self._total: int | None = None
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
                logger.warning(
                    "minigun_nb: could not fold %r",
                    event,
                    exc_info=True,
                    extra=self._log_extra(event),
                )
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
        stalled = [stage for stage in stages if stage.stalled]
        if stalled:
            worst = max(stalled, key=lambda stage: stage.oldest_s or 0.0)
            p99 = "" if worst.p99_ms is None else f", p99 {worst.p99_ms / 1e3:.2g} s"
            hint = (f"`{worst.path}` looks stalled: its oldest item has been in flight for "
                    f"{worst.oldest_s:.0f} s{p99}. " + hint).strip()
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
            pipeline=self._pipeline,
            edges=self._edges,
            total=self._total,
        )

    def _wall(self, moment: float | None) -> datetime | None:
        if moment is None:
            return None
        return datetime.fromtimestamp(self._offset + moment, tz=timezone.utc)

    # -- folding (called under self._lock) ----------------------------------------------------

    def _stage(self, path: str) -> StageState:
        stage = self._stages.get(path)
        if stage is None:
            # An event for a stage the run did not announce: keep its counts rather than drop
            # them, under a placeholder description.
            stage = StageState(StageInfo(path, "unknown", "unknown", 1, 0))
            self._stages[path] = stage
        return stage

    def _run_started(self, event: RunStarted) -> None:
        self._run_id = event.run_id
        self._status = "running"
        self._started = event.time
        self._finished = None
        self._stages = {info.path: StageState(info) for info in event.stages}
        self._pipeline, self._edges, self._total = event.pipeline, event.edges, event.total

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
        stage.took(self._clock(), event.n, event.token)
        stage.update_fill()

    def _items_cancelled(self, event: ItemsCancelled) -> None:
        stage = self._stage(event.path)
        stage.advance_fill(self._clock())
        stage.cancelled += event.n
        stage.cancelled_queued += event.queued
        stage.settle(event.n - event.queued)
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
