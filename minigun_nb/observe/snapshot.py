"""Frozen snapshots of a run: what every display, ``result.stats`` and ``to_json`` read.

A :class:`RunSnapshot` is built by :meth:`StatsCollector.snapshot
<minigun_nb.observe.stats.StatsCollector.snapshot>`; it never changes afterwards, so a display
can keep it, compare it with the next one, or hand it to another thread.

Examples
--------
>>> snap = RunSnapshot.empty()
>>> snap.status, snap.stages, snap.bottleneck
('pending', (), None)
>>> list(snap.to_frame().columns) == list(STATS_COLUMNS)
True
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, fields
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .histogram import LatencyHistogram

if TYPE_CHECKING:  # pandas is imported only inside to_frame(): importing observe stays light
    import pandas as pd

__all__ = ["STATS_COLUMNS", "RunSnapshot", "RunTotals", "StageSnapshot"]

#: A stage is *stalled* when its oldest item in flight is older than both of these.
STALL_SECONDS = 10.0
STALL_FACTOR = 10.0

#: Columns of ``result.stats`` / :meth:`RunSnapshot.to_frame`, in order (SPEC §12; API).
STATS_COLUMNS: tuple[str, ...] = (
    "kind",
    "backend",
    "workers",
    "status",
    "items_in",
    "items_out",
    "done",
    "filtered",
    "failed",
    "cancelled",
    "retried",
    "in_flight",
    "queue_depth",
    "queue_size",
    "busy",
    "throughput",
    "p50_ms",
    "p90_ms",
    "p95_ms",
    "p99_ms",
    "started",
    "finished",
    "elapsed_s",
)

_INT_COLUMNS = (
    "workers",
    "items_in",
    "items_out",
    "done",
    "filtered",
    "failed",
    "cancelled",
    "retried",
    "in_flight",
    "queue_depth",
    "queue_size",
)
_FLOAT_COLUMNS = ("busy", "throughput", "p50_ms", "p90_ms", "p95_ms", "p99_ms", "elapsed_s")


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


@dataclass(frozen=True, slots=True)
class StageSnapshot:
    """The state of one stage at one moment.

    The first fields are exactly the columns of ``result.stats`` (SPEC §12), prefixed by
    ``path``. Counts follow the conservation law
    ``items_in == done + failed + cancelled + in_flight`` (producers: ``items_in == 0`` and
    ``in_flight == 0``).

    Attributes
    ----------
    status : str
        ``"pending"`` before the stage starts, ``"running"``, then ``"done"``, ``"failed"``,
        ``"stopped"`` or ``"cancelled"``.
    busy : float
        Fraction 0..1 of worker time spent in the stage function: over the last ~2 s while
        running, over the stage's lifetime once finished.
    throughput : float
        Items done per second (items emitted, for a producer): recent while running, overall
        once finished.
    p50_ms, p90_ms, p95_ms, p99_ms : float or None
        Per-item latency percentiles in milliseconds; None when not tracked or no item yet.
    started, finished : datetime or None
        Wall-clock moments (timezone-aware, UTC).
    throughput_overall : float
        ``(done + failed) / elapsed_s`` (items emitted per second for a producer).
    latency : LatencyHistogram or None
        A private copy of the stage's latency histogram; None when untracked or empty.
    queue_fill : float
        Time-weighted average of ``queue_depth / queue_size`` over the stage's life, 0..1.

    Examples
    --------
    >>> from minigun_nb.observe.events import ItemsReceived, RunStarted, StageInfo
    >>> from minigun_nb.observe.stats import StatsCollector
    >>> stats = StatsCollector()
    >>> stats.publish(RunStarted("r1", 0.0, (StageInfo("load", "processor", "thread", 8, 100),)))
    >>> stats.publish(ItemsReceived("load", 5))
    >>> s = stats.snapshot().stage("load")
    >>> s.status, s.items_in, s.in_flight, s.queue_depth
    ('pending', 5, 5, 5)
    """

    path: str
    kind: str
    backend: str
    workers: int
    status: str
    items_in: int
    items_out: int
    done: int
    filtered: int
    failed: int
    cancelled: int
    retried: int
    in_flight: int
    queue_depth: int
    queue_size: int
    busy: float
    throughput: float
    p50_ms: float | None
    p90_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    started: datetime | None
    finished: datetime | None
    elapsed_s: float
    throughput_overall: float = 0.0
    latency: LatencyHistogram | None = None
    queue_fill: float = 0.0
    oldest_s: float | None = None

    @property
    def stalled(self) -> bool:
        """True when the oldest item in flight is older than both 10 s and 10 × p99.

        A stage with no latency yet (nothing finished) is judged on the 10 s alone.

        Examples
        --------
        >>> snap = StageSnapshot("a", "processor", "thread", 1, "running", *[0] * 10,
        ...                      0.0, 0.0, None, None, None, 5.0, None, None, 0.0, oldest_s=60.0)
        >>> snap.stalled
        True
        """
        oldest = self.oldest_s
        if oldest is None or oldest <= STALL_SECONDS:
            return False
        return self.p99_ms is None or oldest > STALL_FACTOR * self.p99_ms / 1e3

    @property
    def is_producer(self) -> bool:
        """True for a producer stage (no input queue; never reported as the bottleneck)."""
        return self.kind == "producer"

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict of every field (datetimes as ISO 8601 strings).

        Examples
        --------
        >>> import json
        >>> snap = StageSnapshot("a", "processor", "thread", 1, "pending", *[0] * 10,
        ...                      0.0, 0.0, None, None, None, None, None, None, 0.0)
        >>> json.loads(json.dumps(snap.to_dict()))["status"]
        'pending'
        """
        data: dict[str, Any] = {}
        for field in fields(self):
            data[field.name] = getattr(self, field.name)
        data["started"] = _iso(self.started)
        data["finished"] = _iso(self.finished)
        data["latency"] = None if self.latency is None else self.latency.to_dict()
        return data


@dataclass(frozen=True, slots=True)
class RunTotals:
    """Counts summed over every stage of a run.

    Examples
    --------
    >>> RunTotals().failed
    0
    """

    items_in: int = 0
    items_out: int = 0
    done: int = 0
    filtered: int = 0
    failed: int = 0
    cancelled: int = 0
    retried: int = 0
    in_flight: int = 0

    @classmethod
    def of(cls, stages: tuple[StageSnapshot, ...]) -> RunTotals:
        """Sum the counts of ``stages``.

        Examples
        --------
        >>> RunTotals.of(()).done
        0
        """
        return cls(
            items_in=sum(s.items_in for s in stages),
            items_out=sum(s.items_out for s in stages),
            done=sum(s.done for s in stages),
            filtered=sum(s.filtered for s in stages),
            failed=sum(s.failed for s in stages),
            cancelled=sum(s.cancelled for s in stages),
            retried=sum(s.retried for s in stages),
            in_flight=sum(s.in_flight for s in stages),
        )

    def to_dict(self) -> dict[str, int]:
        """Return the totals as a plain dict.

        Examples
        --------
        >>> RunTotals(done=3).to_dict()["done"]
        3
        """
        return {field.name: getattr(self, field.name) for field in fields(self)}


@dataclass(frozen=True, slots=True)
class RunSnapshot:
    """The state of a whole run at one moment.

    Attributes
    ----------
    run_id : str
        The run's id ("" before the run starts).
    status : str
        ``"pending"``, ``"running"``, then ``"done"``, ``"failed"``, ``"stopped"`` or
        ``"cancelled"``.
    elapsed_s : float
        Seconds since the run started (until it finished).
    stages : tuple of StageSnapshot
        In the order the run announced them.
    totals : RunTotals
        Counts summed over the stages.
    bottleneck : str or None
        Path of the stage whose workers are busiest while its input queue is full, if any.
    hint : str
        One line about the bottleneck ("" when there is none).
    started, finished : datetime or None
        Wall-clock moments of the run (timezone-aware, UTC).

    Examples
    --------
    >>> RunSnapshot.empty().hint
    ''
    """

    run_id: str
    status: str
    elapsed_s: float
    stages: tuple[StageSnapshot, ...]
    totals: RunTotals
    bottleneck: str | None
    hint: str
    started: datetime | None = None
    finished: datetime | None = None
    pipeline: str = ""
    edges: tuple[tuple[str, str, str], ...] = ()
    total: int | None = None

    @classmethod
    def empty(cls) -> RunSnapshot:
        """A snapshot of a run that has not started.

        Examples
        --------
        >>> RunSnapshot.empty().run_id
        ''
        """
        return cls("", "pending", 0.0, (), RunTotals(), None, "")

    def stage(self, path: str) -> StageSnapshot:
        """Return the snapshot of the stage at ``path``.

        Raises
        ------
        KeyError
            When no stage has that path; the message lists the known paths.

        Examples
        --------
        >>> RunSnapshot.empty().stage("nope")
        Traceback (most recent call last):
        ...
        KeyError: "no stage 'nope'; known stages: (none)"
        """
        for stage in self.stages:
            if stage.path == path:
                return stage
        known = ", ".join(stage.path for stage in self.stages) or "(none)"
        raise KeyError(f"no stage {path!r}; known stages: {known}")

    @property
    def paths(self) -> tuple[str, ...]:
        """Stage paths in order."""
        return tuple(stage.path for stage in self.stages)

    def __iter__(self) -> Iterator[StageSnapshot]:
        return iter(self.stages)

    def __len__(self) -> int:
        return len(self.stages)

    def to_frame(self) -> pd.DataFrame:
        """Return ``result.stats``: one row per stage, index ``stage``, :data:`STATS_COLUMNS`.

        Counts are int64, fractions, rates and milliseconds float64 (NaN when missing),
        ``started``/``finished`` UTC datetimes (NaT when missing).

        Examples
        --------
        >>> frame = RunSnapshot.empty().to_frame()
        >>> frame.index.name, len(frame)
        ('stage', 0)
        """
        import pandas as pd  # lazily: importing minigun_nb.observe must not import pandas

        nan = float("nan")
        data: dict[str, Any] = {}
        for column in STATS_COLUMNS:
            values = [getattr(stage, column) for stage in self.stages]
            if column in _FLOAT_COLUMNS:
                values = [nan if value is None else float(value) for value in values]
                data[column] = pd.array(values, dtype="float64")
            elif column in _INT_COLUMNS:
                data[column] = pd.array(values, dtype="int64")
            elif column in ("started", "finished"):
                # One unit whatever pandas infers (it picks s/us from the values, pandas >= 2).
                data[column] = pd.to_datetime(values, utc=True).astype("datetime64[ns, UTC]")
            else:
                data[column] = values
        index = pd.Index([stage.path for stage in self.stages], name="stage", dtype=object)
        return pd.DataFrame(data, index=index, columns=list(STATS_COLUMNS))

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict (what ``result.to_json()`` writes).

        Examples
        --------
        >>> import json
        >>> json.loads(json.dumps(RunSnapshot.empty().to_dict()))["stages"]
        []
        """
        return {
            "run_id": self.run_id,
            "status": self.status,
            "elapsed_s": self.elapsed_s,
            "started": _iso(self.started),
            "finished": _iso(self.finished),
            "bottleneck": self.bottleneck,
            "hint": self.hint,
            "totals": self.totals.to_dict(),
            "stages": [stage.to_dict() for stage in self.stages],
        }

    def summary(self) -> str:
        """Return the fixed-width text table of :func:`~minigun_nb.observe.summary.summary_text`.

        Examples
        --------
        >>> print(RunSnapshot.empty().summary().splitlines()[0])
        stage  status  in  out  failed  filtered  busy %  items/s  p50 ms  p99 ms
        """
        from .summary import summary_text  # summary imports this module; break the cycle

        return summary_text(self)
