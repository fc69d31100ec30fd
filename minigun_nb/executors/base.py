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

import pickle
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

#: exit code of a worker or fork child whose watchdog ended an item that overran ``timeout``
TIMEOUT_EXIT = 113


class ErrorInfo(NamedTuple):
    """One failed item as it crosses a process boundary (index relative to the task)."""

    index: int
    exc_type: str
    message: str
    traceback: str
    blob: bytes | None  # the pickled exception when it could be pickled
    attempts: int


class Outcome(NamedTuple):
    """What a worker reports for the items ``[start, start + n)`` of one task.

    ``out`` holds every static emission in order; ``dyn`` holds ``(index, name, item)`` for
    dynamic routes of the items that succeeded; ``lat`` one duration per item (empty when
    latency is not tracked). ``setup_error`` means the worker could not serve at all (its
    ``after_fork``/``setup`` failed): the items were not processed. ``hook_errors`` are
    teardown failures (no item). ``busy`` is the time spent in the stage function.
    """

    start: int = 0
    n: int = 0
    out: Sequence[Any] = ()
    dyn: Sequence[tuple[int, str, Any]] = ()
    done: int = 0
    failed: int = 0
    filtered: int = 0
    retried: int = 0
    busy: float = 0.0
    lat: Sequence[float] = ()
    errors: Sequence[ErrorInfo] = ()
    worker: str = ""
    setup_error: ErrorInfo | None = None
    hook_errors: Sequence[ErrorInfo] = ()
    #: seconds the task cost besides the function (moving the items and results), so the
    #: automatic chunk size accounts for big items
    cost: float = 0.0


class WorkerDied(Exception):
    """The process running a task died (``os._exit``, a signal, out of memory).

    ``timeout`` is True when the worker's own watchdog ended it because an item overran the
    stage's ``timeout``.
    """

    def __init__(self, message: str, timeout: bool = False) -> None:
        super().__init__(message)
        self.timeout = timeout


class TaskCancelled(Exception):
    """The task was cancelled before it ran (a cancelling stop)."""


@dataclass(frozen=True)
class Job:
    """What one stage ships to its workers for one run (pickled once, with cloudpickle).

    Everything is pickled together so that exception classes in ``retry_on`` stay the very
    classes the function raises, even when both are defined in a notebook.
    """

    token: str  # unique per (run, stage): workers cache the unpickled job under it
    run_token: str  # unique per run: after_fork runs once per run in each worker
    path: str
    fn: Callable[..., Any]
    setup: Callable[[], Any] | None = None
    teardown: Callable[..., Any] | None = None
    after_fork: tuple[Callable[[], Any], ...] = ()
    retries: int = 0
    retry_on: tuple[type[BaseException], ...] = (Exception,)
    backoff: float = 0.0
    timeout: float | None = None
    track: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


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


# -- serialisation helpers shared by the backends ----------------------------------------------
class Unpicklable(NamedTuple):
    """Stands in for an item that could not be pickled to travel to a worker."""

    message: str


def _by_reference_only(data: bytes) -> bool:
    """Whether plain pickle stored a class or function by a name the worker cannot import:
    one defined in ``__main__`` (a notebook cell, a script) or in a module registered with
    ``cloudpickle.register_pickle_by_value``. Such data must go by value (cloudpickle).
    A payload that merely contains the text takes the slower path, harmlessly."""
    if b"__main__" in data:
        return True
    cp = sys.modules.get("cloudpickle.cloudpickle")
    for name in getattr(cp, "_PICKLE_BY_VALUE_MODULES", ()):
        if name.encode() in data:
            return True
    return False


def dumps(obj: Any) -> bytes:
    """pickle (fast) unless the object needs cloudpickle (lambdas, classes defined in a
    notebook: by value, since the worker cannot import them by name)."""
    try:
        data = pickle.dumps(obj, protocol=5)
        if not _by_reference_only(data):
            return data
    except Exception:  # noqa: BLE001 - any pickling failure: try the general pickler
        pass
    import cloudpickle

    return cloudpickle.dumps(obj, protocol=5)


#: pickled data: plain bytes, or (bytes, buffers) with large binary buffers (numpy arrays,
#: DataFrame blocks) kept out of band, so they are copied once on the way, not three times
Payload = Any


def dumps_oob(obj: Any) -> tuple[bytes, list[pickle.PickleBuffer]]:
    """Protocol-5 pickle with out-of-band buffers (cloudpickle when :func:`dumps` would)."""
    bufs: list[pickle.PickleBuffer] = []
    try:
        data = pickle.dumps(obj, protocol=5, buffer_callback=bufs.append)
        if not _by_reference_only(data):
            return data, bufs
    except Exception:  # noqa: BLE001 - lambdas, classes defined in a notebook
        pass
    import cloudpickle

    bufs = []
    return cloudpickle.dumps(obj, protocol=5, buffer_callback=bufs.append), bufs


def pack(obj: Any, oob: bool) -> Payload:
    return dumps_oob(obj) if oob else dumps(obj)


def unpack(payload: Payload) -> Any:
    if isinstance(payload, tuple):
        meta, bufs = payload
        return pickle.loads(meta, buffers=bufs)
    return pickle.loads(payload)


def payload_size(payload: Payload) -> int:
    if isinstance(payload, tuple):
        meta, bufs = payload
        if not bufs:
            return len(meta)
        return len(meta) + sum(memoryview(b).nbytes for b in bufs)
    return len(payload)


def dump_items(items: Sequence[Any], oob: bool = False) -> Payload:
    """Pickle a chunk of items; an item that cannot be pickled is replaced by a stand-in."""
    try:
        return pack(list(items), oob)
    except Exception:  # noqa: BLE001 - find the culprits, keep the rest
        fixed = []
        for item in items:
            try:
                dumps(item)
                fixed.append(item)
            except Exception as exc:  # noqa: BLE001
                fixed.append(
                    Unpicklable(
                        f"item cannot be pickled to send it to a worker process "
                        f"({type(exc).__name__}: {exc})"
                    )
                )
        return pack(fixed, oob)


_standins: dict[str, type[Exception]] = {}


class RemoteTraceback(Exception):
    """The worker's traceback, chained as the cause of an exception rebuilt in the kernel
    (as ``concurrent.futures`` does), so a printed ``StageError`` shows the user's line."""

    def __init__(self, tb: str) -> None:
        super().__init__(tb)
        self.tb = tb

    def __str__(self) -> str:
        return f'\n"""\n{self.tb.rstrip()}\n"""'


def load_exception(err: ErrorInfo) -> BaseException:
    """The remote exception when it could travel, else a stand-in of the same class name."""
    if err.blob is not None:
        try:
            exc = pickle.loads(err.blob)
            if isinstance(exc, BaseException):
                return exc
        except Exception:  # noqa: BLE001 - the class may not exist in the kernel
            pass
    cls = _standins.get(err.exc_type)
    if cls is None:
        cls = type(err.exc_type, (Exception,), {"__module__": "minigun_nb.remote"})
        _standins[err.exc_type] = cls
    return cls(err.message)
