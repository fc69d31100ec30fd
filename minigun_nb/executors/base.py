"""The seam between the runtime and where user code runs: one small Executor protocol.

An executor takes a chunk of items and hands back :class:`Outcome` records: the chunk's
emissions, per-item timings and per-item errors. The kernel-side driver
(:mod:`minigun_nb.runtime.remote`) turns outcomes into the same events, routing and error rows
as a thread worker produces, so every backend has the same semantics.

Examples
--------
>>> oc = Outcome(start=0, n=2, out=[1, 2], done=2)
>>> (oc.n, oc.out, oc.failed)
(2, [1, 2], 0)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any, Protocol

# the cross-process contract lives in the stage-function layer; named here for the backends
from ..stagefn.outcome import (
    TIMEOUT_EXIT,
    ErrorInfo,
    Job,
    Outcome,
    RemoteTraceback,
    TaskCancelled,
    Unpicklable,
    WorkerDied,
    load_exception,
)

__all__ = [
    "TIMEOUT_EXIT",
    "ErrorInfo",
    "Executor",
    "Job",
    "Outcome",
    "RemoteTraceback",
    "TaskCancelled",
    "Unpicklable",
    "WorkerDied",
    "load_exception",
]

class Executor(Protocol):
    """Where a remote stage's items run.

    ``submit`` sends a chunk; the executor calls ``report(outcome)`` for the items it finishes
    (once at the end, or several times when it streams, as fork children do) and completes the
    returned future: with None when every item was reported, with :class:`WorkerDied` when the
    worker died first (items not reported were lost), :class:`TaskCancelled` after ``cancel``.
    """

    #: tasks in flight per worker (2 hides the round trip of a pool; 1 when a task is a process)
    depth: int
    #: True when a crash only loses the task that crashed (fork children); False when it loses
    #: every task the dead worker held (a loky pool, a Dask worker), so crashes must be
    #: isolated to be attributed
    isolates_crashes: bool
    #: the automatic chunk size aims at about this much work per chunk
    target_seconds: float

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
