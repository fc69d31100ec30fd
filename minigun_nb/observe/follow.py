"""A display's own timer: read snapshots of a run, at most 10 times a second, adaptively.

The runtime never calls a display. A display is *followed*: a :class:`Follower` thread reads
the run's snapshot on its own timer and hands it to the display's ``on_snapshot``; when the
run has ended it delivers the final snapshot and then ``on_end(result)``, once each. A display
that raises is detached (no further calls) and logged; the run is never affected.

The timer is adaptive: every ``fast`` seconds (0.1) at first and whenever something changed
since the last refresh, backing off by half again up to ``slow`` seconds (1.0) while nothing
changes, so an idle display of a long, slow run costs next to nothing.

Examples
--------
>>> import threading
>>> from minigun_nb.observe import StatsCollector
>>> stats, ended = StatsCollector(), threading.Event()
>>> class Show:
...     def __init__(self): self.seen = []
...     def on_snapshot(self, snapshot): self.seen.append(snapshot.status)
...     def on_end(self, result): self.seen.append(result)
>>> show = Show()
>>> follower = Follower(show, stats.snapshot, ended, lambda: "the result")
>>> follower.start(); ended.set(); follower.join(5)
>>> show.seen[-2:]
['pending', 'the result']
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from .snapshot import RunSnapshot

__all__ = ["FAST_SECONDS", "SLOW_SECONDS", "Follower"]

logger = logging.getLogger("minigun_nb")

#: the quickest refresh (10 Hz) and the slowest one while nothing changes
FAST_SECONDS = 0.1
SLOW_SECONDS = 1.0


def _signature(snapshot: RunSnapshot) -> tuple[Any, ...]:
    """What must differ between two snapshots for a refresh to show something new."""
    return (
        snapshot.status,
        tuple(
            (s.status, s.items_in, s.items_out, s.done, s.failed, s.cancelled, s.queue_depth,
             s.in_flight)
            for s in snapshot.stages
        ),
    )


class Follower(threading.Thread):
    """Follow one run for one display (a daemon thread; see the module docstring).

    Parameters
    ----------
    display : object
        Has ``on_snapshot(snapshot)`` and/or ``on_end(result)`` (both optional).
    snapshot : callable
        Returns the run's current :class:`RunSnapshot`.
    ended : threading.Event
        Set once the run's result exists.
    result : callable
        Returns the run's result (called once, after ``ended`` is set).
    fast, slow : float
        The refresh interval's bounds in seconds (``fast`` ≥ 0.1: at most 10 Hz).
    log_extra : dict, optional
        ``run_id`` and ``stage`` for the log record of a display that raises.
    """

    def __init__(
        self,
        display: object,
        snapshot: Callable[[], RunSnapshot],
        ended: threading.Event,
        result: Callable[[], Any],
        *,
        fast: float = FAST_SECONDS,
        slow: float = SLOW_SECONDS,
        log_extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(daemon=True, name=f"mg-display-{type(display).__name__}")
        self.display = display
        self._snapshot = snapshot
        self._ended = ended
        self._result = result
        self.fast = max(FAST_SECONDS, float(fast))
        self.slow = max(self.fast, float(slow))
        self._extra = log_extra or {"run_id": None, "stage": None}
        self.detached = False
        #: set when the display has had its final snapshot and ``on_end``
        self.finished = threading.Event()
        self.refreshes = 0

    def run(self) -> None:
        try:
            self._follow()
        finally:
            self.finished.set()

    def _follow(self) -> None:
        interval = self.fast
        last: tuple[Any, ...] | None = None
        while not self._ended.wait(interval):
            snapshot = self._snapshot()
            signature = _signature(snapshot)
            if signature != last:
                last, interval = signature, self.fast
                if not self._call("on_snapshot", snapshot):
                    return
            else:  # nothing moved: look less often, but never less than once a `slow`
                interval = min(self.slow, interval * 1.5)
        try:
            result = self._result()
        except BaseException:  # noqa: BLE001 - the run's own error; the display shows the end
            result = None
        self._call("on_snapshot", self._snapshot())
        if result is not None:
            self._call("on_end", result)

    def _call(self, method: str, arg: Any) -> bool:
        """Call ``display.method(arg)``; False (and detached, logged) if it raised."""
        if self.detached:
            return False
        fn = getattr(self.display, method, None)
        if not callable(fn):
            return True
        try:
            fn(arg)
        except BaseException as exc:  # noqa: BLE001 - a display never fails a data job
            self.detached = True
            logger.warning(
                "minigun_nb: display %r raised in %s and was detached: %s: %s",
                self.display, method, type(exc).__name__, exc, exc_info=exc, extra=self._extra,
            )
            return False
        if method == "on_snapshot":
            self.refreshes += 1
        return True
