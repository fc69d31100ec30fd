"""The crash policy of a pooled stage: which spans of a chunk go to the executor next, and what
becomes of the items a task ended without reporting.

A task whose worker died is not the items' fault at first: a crashed multi-item task is re-run
item by item, uncounted. A single-item task that crashes counts against its item when the crash
can be attributed to it (fork children die alone; a loky or Dask worker that dies loses every
task it holds, so those items are re-run *isolated*, one at a time with nothing else in
flight). An item that crashes ``crash_retries`` times is a ``WorkerCrashed`` error row. A worker
ended by its ``timeout`` watchdog records ``TimeoutError``. Items of a cancelled task, or of any
task once the stage stops (a cancelled run, a failed setup), are cancelled.

:class:`CrashPolicy` takes what it needs explicitly (two executor traits, two options and two
callbacks), so it runs without a stage or a run.

Examples
--------
>>> failed, cancelled = [], []
>>> policy = CrashPolicy(
...     isolates_crashes=True, crash_retries=1, timeout=None,
...     fail=lambda c, lo, hi, exc, n: failed.append((lo, hi, type(exc).__name__, n)),
...     cancel=lambda c, lo, hi: cancelled.append((lo, hi)),
... )
>>> chunk = Chunk(["a", "b", "c"], seq=0)
>>> policy.add(chunk)
>>> [span] = policy.due(in_flight=0, max_tasks=4)
>>> policy.ended(span, WorkerDied("killed"))  # a whole chunk crashed: re-run one by one
>>> spans = policy.due(in_flight=0, max_tasks=4)
>>> [(s.lo, s.hi) for s in spans]
[(0, 1), (1, 2), (2, 3)]
>>> policy.ended(spans[1], WorkerDied("killed"))  # "b" alone killed its worker
>>> failed
[(1, 2, 'WorkerCrashed', 1)]
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import WorkerCrashed
from ..stagefn.outcome import TaskCancelled, WorkerDied

log = logging.getLogger("minigun_nb")


class Chunk:
    """Items taken together from the channel; closed when every item is resolved."""

    __slots__ = ("items", "seq", "left", "pieces", "crashes", "closed")

    def __init__(self, items: list[Any], seq: int) -> None:
        self.items = items
        self.seq = seq
        self.left = len(items)  # items not resolved yet
        self.pieces: list[tuple[int, Callable[[], None]]] = []  # held for ordered release
        self.crashes: dict[int, int] = {}  # item index -> crashes counted against it
        self.closed = False


class Span:
    """Items ``[lo, hi)`` of a chunk sent to the executor as one task."""

    __slots__ = ("chunk", "lo", "hi", "isolated", "next")

    def __init__(self, chunk: Chunk, lo: int, hi: int, isolated: bool = False) -> None:
        self.chunk = chunk
        self.lo = lo
        self.hi = hi
        self.isolated = isolated  # runs with nothing else in flight
        self.next = 0  # items [lo, lo + next) have been reported


#: ``fail(chunk, lo, hi, exc, attempts)``: items ``[lo, hi)`` of ``chunk`` are error rows
FailRange = Callable[[Chunk, int, int, BaseException, int], None]
#: ``cancel(chunk, lo, hi)``: items ``[lo, hi)`` of ``chunk`` are cancelled
CancelRange = Callable[[Chunk, int, int], None]


class CrashPolicy:
    """The spans waiting for the executor, and the rules for a task's unreported items.

    ``isolates_crashes`` is the executor's trait (a crash loses only the task that crashed);
    ``crash_retries`` and ``timeout`` are the stage's options. ``fail`` and ``cancel`` resolve
    items; the policy never resolves an item any other way, so every item of a chunk ends in
    exactly one of: reported by the executor, ``fail``, ``cancel``.
    """

    def __init__(
        self,
        *,
        isolates_crashes: bool,
        crash_retries: int,
        timeout: float | None,
        fail: FailRange,
        cancel: CancelRange,
        path: str = "",
        log_extra: Mapping[str, Any] | None = None,
    ) -> None:
        self.isolates_crashes = isolates_crashes
        self.crash_retries = crash_retries
        self.timeout = timeout
        self.fail = fail
        self.cancel = cancel
        self.path = path
        self.log_extra = log_extra
        self.ready: deque[Span] = deque()
        self.isolated: deque[Span] = deque()  # suspects of a pool crash, run one at a time

    def add(self, chunk: Chunk) -> None:
        """A chunk taken from the channel goes to the executor as one task."""
        self.ready.append(Span(chunk, 0, len(chunk.items)))

    def waiting(self) -> bool:
        return bool(self.ready or self.isolated)

    def due(self, in_flight: int, max_tasks: int, stopping: bool = False) -> list[Span]:
        """The spans to submit now, with ``in_flight`` tasks running and room for
        ``max_tasks``. When ``stopping``, every waiting span is cancelled instead."""
        if stopping:
            while self.ready or self.isolated:
                s = (self.ready or self.isolated).popleft()
                self.cancel(s.chunk, s.lo, s.hi)
            return []
        if self.isolated:  # suspects of a pool crash run alone, so a crash names its item
            return [self.isolated.popleft()] if in_flight == 0 else []
        out: list[Span] = []
        while self.ready and in_flight + len(out) < max_tasks:
            out.append(self.ready.popleft())
        return out

    def ended(self, span: Span, exc: BaseException | None, stopping: bool = False) -> None:
        """The task of ``span`` ended with ``exc`` (None: ended cleanly): resolve the items it
        did not report (``[span.lo + span.next, span.hi)``)."""
        c = span.chunk
        lo, hi = span.lo + span.next, span.hi
        if lo >= hi:
            return
        if exc is None:
            exc = RuntimeError("internal: the executor ended a task without reporting its items")
        if isinstance(exc, TaskCancelled) or stopping:
            self.cancel(c, lo, hi)
        elif isinstance(exc, WorkerDied):
            self.crashed(span, lo, hi, exc)
        else:
            self.fail(c, lo, hi, exc, 1)

    def crashed(self, span: Span, lo: int, hi: int, exc: WorkerDied) -> None:
        """The worker died before reporting items ``[lo, hi)`` of ``span``."""
        c = span.chunk
        isolates = self.isolates_crashes
        log.debug(
            "worker died in %s (%d items unreported): %s", self.path, hi - lo, exc,
            extra=self.log_extra,
        )
        if span.hi - span.lo > 1:
            # a whole chunk crashed: not the items' fault yet; re-run them one by one
            self.ready.extend(Span(c, i, i + 1) for i in range(lo, hi))
            return
        if not (isolates or span.isolated):
            self.isolated.append(Span(c, lo, hi, isolated=True))  # a suspect
            return
        if exc.timeout:
            self.fail(c, lo, hi, TimeoutError(f"item took longer than timeout={self.timeout} s"), 1)
            return
        n = c.crashes[lo] = c.crashes.get(lo, 0) + 1
        if n >= max(1, self.crash_retries):
            msg = f"the worker process died {n} time(s) while processing this item ({exc})"
            self.fail(c, lo, hi, WorkerCrashed(msg), n)
        elif isolates:
            self.ready.append(Span(c, lo, hi))
        else:
            self.isolated.append(Span(c, lo, hi, isolated=True))
