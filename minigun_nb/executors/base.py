"""The seam between the runtime and where user code runs: one small Executor protocol.

An executor is made from an :class:`ExecutorSpec` (plain values: it never sees the runtime's
objects), opened with the run's :class:`Job`, takes chunks of items and hands back
:class:`Outcome` records: the chunk's emissions, per-item timings and per-item errors. The
kernel-side driver (:mod:`minigun_nb.runtime`) turns outcomes into the same events, routing and
error rows as a thread worker produces, so every backend has the same semantics.

Examples
--------
>>> oc = Outcome(start=0, n=2, out=[1, 2], done=2)
>>> (oc.n, oc.out, oc.failed)
(2, [1, 2], 0)
>>> ExecutorSpec(path="square", backend="fork", workers=2).workers
2
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

# the cross-process contract lives in the stage-function layer; named here for the backends
from ..stagefn.outcome import ErrorInfo, Job, Outcome, TaskCancelled, WorkerDied

__all__ = ["ErrorInfo", "Executor", "ExecutorSpec", "Job", "Outcome", "TaskCancelled", "WorkerDied",
           "drives_here", "may_drive_here"]

@dataclass(frozen=True)
class ExecutorSpec:
    """What an executor needs to know of its stage and run, given when it is made.

    ``pipeline`` (the pipeline's name) and ``path`` key a process stage's warm pool, so a re-run
    cell finds its workers; ``log_extra`` goes on every log record (it names the run and the
    stage); ``dask_client`` is the pipeline's ``dask_client=`` option.
    """

    path: str
    backend: str
    workers: int = 1
    pipeline: str = ""
    worker_idle_timeout: float = 300.0
    log_extra: Mapping[str, Any] = field(default_factory=dict, compare=False)
    dask_client: Any = field(default=None, compare=False)


_marks = threading.local()


def may_drive_here() -> None:
    """Mark the calling thread as one of an executor's own with nothing else to do: a report
    it makes may go on to route the outcome and submit the next chunk (``reporter_drives``).
    Never for a thread that others wait on (a loky callback thread, the driver itself)."""
    _marks.drives = True


def drives_here() -> bool:
    return getattr(_marks, "drives", False)


class Executor(Protocol):
    """Where a pooled stage's items run: ``Executor(spec)``, then ``open``, ``submit``...,
    ``finish``, ``close``.

    ``submit`` sends a chunk; the executor calls ``report(outcome)`` for the items it finishes
    (once at the end, or several times when it streams, as fork children do) and completes the
    returned future: with None when every item was reported, with :class:`WorkerDied` when the
    worker died first (items not reported were lost), :class:`TaskCancelled` after ``cancel``.

    The traits are class attributes; the driver reads them and nothing else.
    """

    #: tasks in flight per worker (2 hides the round trip of a pool; 1 when a task is a process)
    depth: ClassVar[int]
    #: True when a crash only loses the task that crashed (fork children); False when it loses
    #: every task the dead worker held (a loky pool, a Dask worker), so crashes must be
    #: isolated to be attributed
    isolates_crashes: ClassVar[bool]
    #: the automatic chunk size aims at about this much work per chunk
    target_seconds: ClassVar[float]
    #: True when chunks are pickled on their way (the driver then keeps each task's pickled
    #: size under a bound, using :attr:`item_bytes`)
    moves_bytes: ClassVar[bool]
    #: True when other threads may drive the stage (take and submit chunks; route outcomes
    #: on a thread marked with :func:`may_drive_here`: a link's reader, a fork child's waiter,
    #: threads of the executor's own with nothing else to do), saving a hop to the driver per
    #: chunk. False when reports come from a thread that serves others (an asyncio loop,
    #: Dask's client loop): the driver thread is woken instead
    reporter_drives: ClassVar[bool]
    #: pickled bytes per item so far (items or results, the larger); 0.0 until measured, and
    #: always for a backend that does not move bytes
    item_bytes: float

    def __init__(self, spec: ExecutorSpec) -> None: ...

    def open(self, job: Job) -> None:
        """Prepare for one run of the stage (before the first submit)."""

    def submit(self, items: Sequence[Any], report: Callable[[Outcome], None]) -> Future[None]:
        """Run ``items``; report outcomes; the future ends with the task."""
        ...

    def cancel(self) -> None:
        """Cancel what has not started (and kill what can be killed)."""

    def finish(self) -> list[ErrorInfo]:
        """End of the run for this stage: teardown in the workers; the teardown errors."""
        ...

    def close(self) -> None:
        """Release what the run used (a pool stays warm; a run-scoped cluster is closed)."""
