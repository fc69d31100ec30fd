"""The thread side of the per-item step: :func:`minigun_nb.stagefn.runner.run_item` with the
worker's :class:`~.emitter.Emitter` as its sink (``Emitter.mark``/``take_back``/``since``/
``collect``), or an accumulator's :class:`AccumulatorSink` in front of it.

``run_item`` is the same step the worker processes and the async loop run (call, drain a
generator, ``mg.to``, retry with backoff, take back a failed attempt's emissions). What the
thread side adds is here: the emissions leave through the Emitter (so a long generator streams
and a cancel stops it at its next yield, SPEC §14), a routing failure is never retried (the
function would send to the same place again), and the run's cancel ends an item's attempts.

Examples
--------
>>> from minigun_nb.stagefn.calling import ItemCancelled
>>> class Run:
...     cancelled = False
>>> policy = RunRetryPolicy(2, (ValueError,), 0.0, run=Run())
>>> policy.retries_after(ValueError(), 1), policy.retries_after(RoutingError(), 1)
(True, False)
>>> policy.run.cancelled = True
>>> try:
...     policy.retries_after(ValueError(), 1)
... except ItemCancelled:
...     print("cancelled, not failed")
cancelled, not failed
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from types import GeneratorType
from typing import TYPE_CHECKING, Any

from ..stagefn.calling import ItemCancelled, RetryPolicy
from ..stagefn.output import Routed
from .emitter import ROUTING_ERRORS, RoutingError

if TYPE_CHECKING:
    from .emitter import Emitter
    from .run import Run

perf = time.perf_counter

__all__ = ["AccumulatorSink", "RoutingError", "RunRetryPolicy", "stage_policy", "wait_backoff"]


@dataclass(frozen=True, slots=True)
class RunRetryPolicy(RetryPolicy):
    """A stage's retry options inside a run: a routing failure is not retried, and an item
    whose retry is due once the run is cancelled is cancelled (``cancel_ends=True``, a worker
    stage: :class:`ItemCancelled` is raised) or just not retried (an accumulator's batch)."""

    run: Any = None
    cancel_ends: bool = True

    def retries_after(self, exc: BaseException, attempt: int) -> bool:
        if not (attempt <= self.retries and isinstance(exc, self.retry_on)) or isinstance(
                exc, ROUTING_ERRORS):
            return False
        if self.run.cancelled:
            if self.cancel_ends:
                raise ItemCancelled  # the run's cancel, not the item, ended its attempts
            return False
        return True


def stage_policy(run: Run, options: Any, cancel_ends: bool = True) -> RunRetryPolicy:
    """The retry policy of a stage's options (``retry_on`` is a tuple once resolved)."""
    retry_on = options.get("retry_on")
    if retry_on is None:  # not given: every Exception; an empty tuple retries nothing
        retry_on = (Exception,)
    elif not isinstance(retry_on, tuple):
        retry_on = (retry_on,)
    return RunRetryPolicy(int(options.get("retries") or 0), retry_on,
                          float(options.get("backoff") or 0.0), run, cancel_ends)


def wait_backoff(run: Run, seconds: float) -> None:
    """A retry's backoff, cut short by a cancel of the run (then the item is cancelled)."""
    end = perf() + seconds
    while not run.cancelled:
        left = end - perf()
        if left <= 0:
            return
        time.sleep(min(left, 0.05))
    raise ItemCancelled


class AccumulatorSink:
    """The sink of an accumulator call: what it emits waits in ``staged`` until the call has
    returned, then dynamic routes are delivered first (an unknown or finished target fails
    the batch before any static output has left) and static outputs after them."""

    __slots__ = ("em", "staged", "emitted", "out_mark", "flush_mark")

    def __init__(self, em: Emitter) -> None:
        self.em = em
        self.staged: list[tuple[str | None, Any]] = []
        self.emitted = 0
        self.out_mark = self.flush_mark = 0

    def emit(self, x: Any) -> None:
        self.staged.append((None, x))

    def send(self, name: str, x: Any) -> None:
        self.staged.append((name, x))

    def mark(self) -> None:
        self.staged.clear()
        self.emitted = 0
        self.out_mark, self.flush_mark = len(self.em.out), self.em.flushes

    def take_back(self, mark: Any = None) -> None:
        self.staged.clear()
        self.em.discard_item_emissions(self.out_mark, self.flush_mark)

    def since(self, mark: Any = None) -> bool:
        return self.emitted > 0

    def collect(self, i: int, r: Any) -> None:
        staged = self.staged
        if r is not None:
            for v in (r if type(r) is GeneratorType else (r,)):
                if type(v) is Routed:
                    staged.append((v.target, v.item))
                else:
                    staged.append((None, v))
        self.emitted = len(staged)
        em = self.em
        dynamic = [(name, x) for name, x in staged if name is not None]
        if dynamic:
            for target, x in dynamic:
                em.send(target, x)
            em.flush_dynamic()
        for name, x in staged:
            if name is None:
                em.emit(x)
        staged.clear()
