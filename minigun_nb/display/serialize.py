"""Snapshots to the live widget's synced traits (SPEC §13; the shapes are in docs/displays.md).

Pure functions from a :class:`~minigun_nb.observe.RunSnapshot` (and the run's error records)
to JSON values: no widget library is imported here, so the serializer is tested kernel-free
and writes the fixture that the front end's JS tests read.
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from ..observe.snapshot import STATS_COLUMNS

__all__ = [
    "ERRORS_SHOWN",
    "MESSAGE_LIMIT",
    "REPR_LIMIT",
    "TRACEBACKS_KEPT",
    "TRACEBACK_LIMIT",
    "ErrorRows",
    "cut",
    "json_value",
    "errors_trait",
    "items_left",
    "run_trait",
    "stage_stats_json",
    "stats_trait",
]

#: at most this many error rows go to the page, the most recent ones
ERRORS_SHOWN = 200
#: a traceback longer than this is cut (a 10 MB exception message must not reach the page)
TRACEBACK_LIMIT = 20_000
#: tracebacks are kept for the last rows and the first row of each (stage, exc_type)
TRACEBACKS_KEPT = 20
MESSAGE_LIMIT = 300
REPR_LIMIT = 200


def json_value(value: Any) -> Any:
    """A stats value as JSON: NaN/inf -> None, datetimes ISO 8601, numpy scalars unwrapped."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, int):
        return int(value)
    if isinstance(value, _dt.datetime):
        return value.isoformat()
    item = getattr(value, "item", None)  # a numpy scalar
    return json_value(item()) if callable(item) else str(value)


def cut(text: Any, limit: int) -> Any:
    """``text`` cut to ``limit`` characters (an ellipsis marks the cut); None stays None."""
    if isinstance(text, str) and len(text) > limit:
        return text[: limit - 1] + "…"
    return text


def stage_stats_json(stage: Any) -> dict[str, Any]:
    """One stage's ``result.stats`` columns as JSON values, plus ``oldest_s`` and ``stalled``.

    NaN and infinities become None, datetimes ISO 8601 strings.

    Examples
    --------
    >>> import minigun_nb as mg
    >>> result = mg.Pipeline([mg.processor(abs, name="abs")]).run(items=[-1], display="none")
    >>> row = stage_stats_json(result.snapshot.stage("abs"))
    >>> row["done"], row["p50_ms"] is None or row["p50_ms"] >= 0, row["stalled"]
    (1, True, False)
    """
    row = {column: json_value(getattr(stage, column)) for column in STATS_COLUMNS}
    row["oldest_s"] = json_value(stage.oldest_s)
    row["stalled"] = bool(stage.stalled)
    return row


def stats_trait(snapshot: Any, peek: Callable[[str], str | None] | None = None,
                active: Iterable[str] = ()) -> dict[str, dict[str, Any]]:
    """The ``stats`` trait: stage path → columns, ``oldest_s``, ``stalled``, ``peek``, ``active``."""
    active = set(active)
    out: dict[str, dict[str, Any]] = {}
    for stage in snapshot.stages:
        row = stage_stats_json(stage)
        row["peek"] = None if peek is None else peek(stage.path)
        row["active"] = stage.path in active
        out[stage.path] = row
    return out


def items_left(snapshot: Any) -> int:
    """Items still queued or in flight in the run's non-producer stages (what a drain waits for)."""
    return sum(s.queue_depth + s.in_flight for s in snapshot.stages if not s.is_producer)


def run_trait(snapshot: Any, *, status: str | None = None, errors_total: int = 0,
              notice: str | None = None) -> dict[str, Any]:
    """The ``run`` trait. ``status`` overrides the snapshot's (``"stopping"`` after a Stop)."""
    status = status or snapshot.status
    if status == "pending":
        status = "running"
    totals = snapshot.totals.to_dict()
    return {
        "run_id": snapshot.run_id,
        "pipeline": snapshot.pipeline,
        "status": status,
        "elapsed_s": json_value(round(snapshot.elapsed_s, 3)),
        "bottleneck": snapshot.bottleneck,
        "hint": snapshot.hint,
        "errors_total": int(errors_total),
        "totals": totals,
        "total": snapshot.total,
        "left": items_left(snapshot) if status == "stopping" else None,
        "notice": notice,
    }


class ErrorRows:
    """The ``errors`` trait, kept up to date incrementally from the run's error records.

    Each refresh looks only at the records added since the last one (to learn the first row
    of each (stage, exc_type), whose traceback is kept) and builds rows for the last
    :data:`ERRORS_SHOWN` records, reusing the rows it built before: a run with 100,000
    failed items costs a refresh no more than one with 200.
    """

    def __init__(self, short_repr: Callable[[Any], str]) -> None:
        self.short_repr = short_repr
        self.scanned = 0
        self.first_of_kind: set[int] = set()
        self._kinds: set[tuple[str, str]] = set()
        self._rows: dict[int, dict[str, Any]] = {}

    def trait(self, records: Sequence[Any]) -> list[dict[str, Any]]:
        total = len(records)
        for index in range(self.scanned, total):
            rec = records[index]
            key = (rec.stage, rec.exc_type)
            if key not in self._kinds:
                self._kinds.add(key)
                self.first_of_kind.add(index)
        self.scanned = total
        start = max(0, total - ERRORS_SHOWN)
        keep_tb_from = total - TRACEBACKS_KEPT
        rows: list[dict[str, Any]] = []
        built: dict[int, dict[str, Any]] = {}
        for index in range(start, total):
            row = self._rows.get(index)
            if row is None:
                row = self._row(index, records[index])
            built[index] = row
            keep_tb = index >= keep_tb_from or index in self.first_of_kind
            rows.append(row if keep_tb else {**row, "traceback": None})
        self._rows = built
        return rows

    def _row(self, index: int, rec: Any) -> dict[str, Any]:
        when = rec.time
        row = getattr(rec, "row", None)  # the record's own item_repr: as result.errors says
        item_repr = row()["item_repr"] if callable(row) else self.short_repr(rec.item)
        return {
            "id": index,
            "stage": rec.stage,
            "item_repr": cut(item_repr, REPR_LIMIT),
            "exc_type": rec.exc_type,
            "message": cut(str(rec.message), MESSAGE_LIMIT),
            "traceback": cut(rec.traceback, TRACEBACK_LIMIT),
            "attempts": int(rec.attempts),
            "worker": None if rec.worker is None else str(rec.worker),
            "time": _dt.datetime.fromtimestamp(when, tz=_dt.timezone.utc).isoformat()
            if isinstance(when, (int, float)) else json_value(when),
        }


def errors_trait(records: Sequence[Any], short_repr: Callable[[Any], str]) -> list[dict[str, Any]]:
    """The ``errors`` trait from the run's error records (oldest first, ``id`` = row index).

    ``records`` are the run's :class:`ErrorRecord` objects (``stage``, ``item``,
    ``exc_type``, ``message``, ``traceback``, ``attempts``, ``worker``, ``time``); only the
    last :data:`ERRORS_SHOWN` are sent. Tracebacks are sent for the last
    :data:`TRACEBACKS_KEPT` rows and for the first row of each (stage, exc_type), cut to
    :data:`TRACEBACK_LIMIT` characters.
    """
    return ErrorRows(short_repr).trait(records)
