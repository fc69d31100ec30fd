"""Small frozen records that the runtime publishes about a run.

Events carry counts and timings, never payloads: they are cheap to build, safe to hand to any
observer, and nothing of an item can leak into a display or a log through them. The runtime
publishes them only in the kernel process and aggregates counters per chunk (not per item)
before publishing, so the event rate stays far below the item rate.

``time`` fields are :func:`time.monotonic` seconds. Events without a ``time`` field are stamped
by the :class:`~minigun_nb.observe.stats.StatsCollector` with its clock when published.

Examples
--------
>>> from minigun_nb.observe.events import ChunkProcessed
>>> ChunkProcessed("clean", done=10, failed=0, filtered=2, emitted=8, retried=0, busy_s=0.5)
ChunkProcessed(path='clean', done=10, failed=0, filtered=2, emitted=8, retried=0, busy_s=0.5, latencies=(), token=0)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

__all__ = [
    "ChunkProcessed",
    "Event",
    "ItemsCancelled",
    "ItemsReceived",
    "ItemsTaken",
    "RunFinished",
    "RunStarted",
    "StageFinished",
    "StageInfo",
    "StageStarted",
]


@dataclass(frozen=True, slots=True)
class StageInfo:
    """The static description of one stage, as announced in :class:`RunStarted`.

    Parameters
    ----------
    path : str
        Stage path relative to the pipeline that runs (``"inner/load"`` for a nested stage).
    kind : str
        ``"producer"``, ``"processor"``, ``"consumer"``, ``"accumulator"``, ``"batch"`` ...
        Only ``"producer"`` is treated specially (no input queue, never the bottleneck).
    backend : str
        ``"thread"``, ``"process"``, ``"fork"``, ``"async"``, ``"inline"`` or ``"dask"``.
    workers : int
        Concurrent calls the stage may make.
    queue_size : int
        Capacity of the stage's input queue, in items (0 for producers).
    track_latency : bool
        Whether per-item latencies are folded into a histogram.

    Examples
    --------
    >>> StageInfo("clean", "processor", "process", workers=4, queue_size=1000).track_latency
    True
    """

    path: str
    kind: str
    backend: str
    workers: int
    queue_size: int
    track_latency: bool = True


@dataclass(frozen=True, slots=True)
class RunStarted:
    """A run began; ``stages`` fixes the order of stages in every snapshot.

    Examples
    --------
    >>> RunStarted("r1", 0.0, (StageInfo("gen", "producer", "thread", 1, 0),)).run_id
    'r1'
    """

    run_id: str
    time: float
    stages: tuple[StageInfo, ...]
    #: the pipeline's name, its edges ``(source, target, kind)`` and the number of items of a
    #: sized ``items=`` (None when unknown): what a display needs from the first snapshot on
    pipeline: str = ""
    edges: tuple[tuple[str, str, str], ...] = ()
    total: int | None = None


@dataclass(frozen=True, slots=True)
class StageStarted:
    """A stage's workers started.

    Examples
    --------
    >>> StageStarted("clean", 1.5).path
    'clean'
    """

    path: str
    time: float


@dataclass(frozen=True, slots=True)
class ItemsReceived:
    """``n`` items entered the stage's input queue (they count as ``items_in``).

    Examples
    --------
    >>> ItemsReceived("clean", 100).n
    100
    """

    path: str
    n: int


@dataclass(frozen=True, slots=True)
class ItemsTaken:
    """``n`` items left the stage's input queue into its workers.

    Examples
    --------
    >>> ItemsTaken("clean", 100).n
    100
    """

    path: str
    n: int
    #: identifies the take (e.g. the id of the chunk) so that the ChunkProcessed that ends
    #: it can say so: the age of the oldest item in flight is then exact with many workers
    token: int = 0


@dataclass(frozen=True, slots=True)
class ChunkProcessed:
    """A chunk finished in a stage.

    Parameters
    ----------
    path : str
        The stage.
    done : int
        Items processed (emitting any number of outputs).
    failed : int
        Items that ended as errors (rows of the error table).
    filtered : int
        The subset of ``done`` that emitted nothing.
    emitted : int
        Outputs emitted (``items_out``); a producer reports ``done=0, emitted=k``.
    retried : int
        Retry attempts made for the chunk's items.
    busy_s : float
        Worker seconds spent in the stage function for this chunk.
    latencies : tuple of float
        Per-item seconds of the ``done`` and ``failed`` items (may be empty).

    Examples
    --------
    >>> ChunkProcessed("gen", done=0, failed=0, filtered=0, emitted=5, retried=0, busy_s=0.1).emitted
    5
    """

    path: str
    done: int
    failed: int
    filtered: int
    emitted: int
    retried: int
    busy_s: float
    latencies: tuple[float, ...] = ()
    #: the ``token`` of the ItemsTaken whose items this chunk settles (0: unknown)
    token: int = 0


@dataclass(frozen=True, slots=True)
class ItemsCancelled:
    """``n`` items of a stage were cancelled, ``queued`` of them still in its input queue.

    Examples
    --------
    >>> ItemsCancelled("clean", 7, queued=5).queued
    5
    """

    path: str
    n: int
    queued: int = 0


@dataclass(frozen=True, slots=True)
class StageFinished:
    """A stage ended; ``status`` is ``"done"``, ``"failed"``, ``"stopped"`` or ``"cancelled"``.

    Examples
    --------
    >>> StageFinished("clean", 9.0, "done").status
    'done'
    """

    path: str
    time: float
    status: str


@dataclass(frozen=True, slots=True)
class RunFinished:
    """The run ended; ``status`` is ``"done"``, ``"failed"``, ``"stopped"`` or ``"cancelled"``.

    Examples
    --------
    >>> RunFinished(10.0, "done").status
    'done'
    """

    time: float
    status: str


#: Any event the runtime publishes.
Event = Union[
    RunStarted,
    StageStarted,
    ItemsReceived,
    ItemsTaken,
    ChunkProcessed,
    ItemsCancelled,
    StageFinished,
    RunFinished,
]
