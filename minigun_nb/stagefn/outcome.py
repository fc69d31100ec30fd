"""The outcome of a chunk, the job a worker runs, and how an error crosses a process boundary.

:class:`Outcome` is the contract between a worker (a loky worker, a fork child, a Dask worker,
the async loop) and the kernel-side driver: the chunk's emissions, per-item timings and
per-item errors. :class:`Job` is what one stage ships to its workers for one run.

Examples
--------
>>> oc = Outcome(start=0, n=2, out=[1, 2], done=2)
>>> (oc.n, oc.out, oc.failed)
(2, [1, 2], 0)
>>> err = encode_error(3, ValueError("bad"), 2)
>>> (err.index, err.exc_type, err.message, err.attempts)
(3, 'ValueError', 'bad', 2)
>>> type(load_exception(err)).__name__
'ValueError'
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from .calling import RetryPolicy, format_tb, safe_str

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

    ``ends`` says where each item's static emissions end in ``out`` (``ends[j]`` for item
    ``start + j``). It is given only when ``dyn`` is not empty: routes are resolved in the
    kernel, and an item whose route fails there must leave none of its ``out`` behind (a
    failed item leaves nothing downstream, as on a thread). An outcome without ``dyn``
    (the fast path) carries none.
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
    ends: Sequence[int] = ()


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

    @property
    def policy(self) -> RetryPolicy:
        """The job's retry options as one :class:`~.calling.RetryPolicy`."""
        return RetryPolicy(self.retries, self.retry_on, self.backoff)


class Unpicklable(NamedTuple):
    """Stands in for an item that could not be pickled to travel to a worker."""

    message: str


def encode_error(index: int, exc: BaseException, attempts: int) -> ErrorInfo:
    """``exc`` as it travels: its class name, message and traceback text, and the exception
    itself pickled (cloudpickle) when it can be, so the kernel re-raises the very class."""
    try:
        import cloudpickle

        blob: bytes | None = cloudpickle.dumps(exc)
    except BaseException:  # noqa: BLE001 - the kernel gets a stand-in of the same class name
        blob = None
    # a __str__ that raises gives a placeholder message, never a lost row (SPEC §14)
    return ErrorInfo(index, type(exc).__name__, safe_str(exc), format_tb(exc), blob, attempts)


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
