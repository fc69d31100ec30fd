"""Batching logic behind ``pipe.batch``, ``pipe.rebatch`` and ``@pipe.accumulator`` (``debatch``
is in :mod:`.debatching`).

Everything here is pure, synchronous and single-threaded: the runtime calls a
:class:`Batcher` from the one thread that runs an operator stage, passes the
current monotonic time in explicitly (``now``) and does its own locking and
sleeping (using :meth:`Batcher.next_deadline`).  Nothing here reads a clock.

pandas is never imported at module import time.  An item can only be a
DataFrame or a Series if pandas has already been imported by whoever built it,
so type checks look pandas up in ``sys.modules``; pandas is imported lazily
only to build frames (Series or dict batches) or concatenate pieces.

Accounting
----------
Every method that can emit returns ``(outputs, completed)``: the batches
ready now, in order, and how many *input* items became completed by the call.
An input item is completed when everything it contributed has been emitted (a
frame split across two output batches completes when its last row leaves).
Over any sequence of calls ``sum(completed) + held == accepted adds``; an item
refused with :class:`BatchItemError` is not accepted and changes nothing.

With ``origins=True`` the batcher also says *which* input items each output
completed (:attr:`Batcher.last_origins`), so the runtime can turn an output it
could not deliver into error rows for exactly those inputs.
"""

from __future__ import annotations

import heapq
import itertools
import math
import numbers
from collections import deque
from collections.abc import Callable, Hashable
from typing import Any

from .items import BatchItemError, loaded_pandas, type_name

__all__ = [
    "MODES",
    "BatchItemError",
    "Batcher",
]

#: Known ``Batcher`` modes: ``pipe.batch``, ``pipe.rebatch``, ``@pipe.accumulator``.
MODES = ("batch", "rebatch", "list")

# Kinds of open batch.  The first item of an open batch fixes its kind.
_FRAME = "frame"  # DataFrames, concatenated; size counts rows
_SERIES = "series"  # Series, one row each, built into a DataFrame
_DICT = "dict"  # dicts with frame=True, one row each, built into a DataFrame
_PLAIN = "plain"  # anything else, one unit each, emitted as a list
_SEQ = "seq"  # rebatch of lists/tuples: elements concatenated and cut
_TABULAR = (_FRAME, _SERIES, _DICT)


class _Entry:
    """One accepted input item inside an open batch; ``[start, stop)`` is still held."""

    __slots__ = ("piece", "start", "stop", "total", "origin", "t")

    def __init__(self, piece: Any, n: int, origin: Any, t: float) -> None:
        self.piece = piece  # what gets sliced (a re-ordered frame, possibly)
        self.start = 0
        self.stop = n
        self.total = n
        self.origin = origin  # the item as the caller passed it
        self.t = t  # arrival time


class _Open:
    """The open batch of one key."""

    __slots__ = ("kind", "columns", "entries", "rows", "key")

    def __init__(self, kind: str, columns: Any, key: Hashable) -> None:
        self.kind = kind
        self.columns = columns  # pandas Index (frame, series) or tuple of keys (dict)
        self.entries: deque[_Entry] = deque()
        self.rows = 0  # units held: rows, elements or items
        self.key = key


class Batcher:
    """Group a stream of items into batches; one mechanism for three operators.

    Parameters
    ----------
    size : int
        Maximum units per output batch (``>= 1``).  Units are rows for
        DataFrames, elements for lists in ``rebatch`` mode, items otherwise.
    mode : {"batch", "rebatch", "list"}
        ``"batch"`` (``pipe.batch``): plain items give lists; DataFrames are
        concatenated and cut exactly at ``size`` rows, the remainder carried
        over; Series give a DataFrame (one row each, named by the Series'
        ``.name``); dicts give a DataFrame when ``frame=True``, else lists.
        ``"rebatch"`` (``pipe.rebatch``): DataFrames, or lists/tuples, are
        re-chunked into chunks of exactly ``size`` rows/elements (the last
        may be short).  ``"list"`` (``@pipe.accumulator``): always lists of
        up to ``size`` items, whatever they are.
    timeout : float or None
        Seconds a partial batch may wait, counted from the arrival of its
        oldest held item; see :meth:`flush_due`.  ``None``: no timeout.
    key : callable or None
        ``key(item)`` selects one open batch per key; each key's batch is cut
        and flushed on its own.  Exceptions from ``key`` propagate unchanged
        (and the batcher is unchanged).
    frame : bool
        ``mode="batch"`` only: dict items become DataFrame batches.
    origins : bool
        Track, for every output of the latest :meth:`add`, :meth:`flush_due`
        or :meth:`flush_all` call, the input items it completed (as passed to
        :meth:`add`), in :attr:`last_origins`.  Off by default.

    Raises
    ------
    ValueError
        For an invalid argument (the definition layer names the stage).

    Notes
    -----
    A batch never mixes kinds: the first item of an open batch fixes it (frame,
    Series, dict with ``frame=True``, or plain); an item of another kind, or a
    frame/Series/dict whose columns differ from the open batch's, raises
    :class:`BatchItemError` and leaves the batcher unchanged.  The same columns
    in another order are aligned to the open batch's order.  A DataFrame (or,
    in ``rebatch`` mode, a list) with no rows is completed immediately.
    """

    def __init__(
        self,
        size: int,
        *,
        mode: str = "batch",
        timeout: float | None = None,
        key: Callable[[Any], Hashable] | None = None,
        frame: bool = False,
        origins: bool = False,
    ) -> None:
        if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size < 1:
            raise ValueError(f"size must be an int >= 1, got {size!r}")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(map(repr, MODES))}, got {mode!r}")
        if timeout is not None:
            if (
                isinstance(timeout, bool)
                or not isinstance(timeout, numbers.Real)
                or not math.isfinite(timeout)
                or timeout <= 0
            ):
                raise ValueError(
                    f"timeout must be None or a finite number of seconds > 0, got {timeout!r}"
                )
            timeout = float(timeout)
        if key is not None and not callable(key):
            raise ValueError(f"key must be a callable or None, got {type_name(key)}")
        if not isinstance(frame, bool):
            raise ValueError(f"frame must be True or False, got {frame!r}")
        if frame and mode != "batch":
            raise ValueError(f"frame=True only applies to mode='batch', not mode={mode!r}")
        self.size = int(size)
        self.mode = mode
        self.timeout: float | None = timeout
        self.key = key
        self.frame = frame
        self._open: dict[Hashable, _Open] = {}
        self._held = 0
        # Lazy min-heap of (deadline, seq, key, open batch, front entry); stale rows are
        # skipped when they surface and the heap is rebuilt if it gets too big.
        self._heap: list[tuple[float, int, Hashable, _Open, _Entry]] = []
        self._seq = itertools.count()
        self._track = bool(origins)
        #: with ``origins=True``: one list per output of the latest add/flush call, the input
        #: items that output completed (``sum(map(len, ...))`` may be less than ``completed``:
        #: an empty frame completes without any output)
        self.last_origins: list[list] = []

    def __repr__(self) -> str:
        return (
            f"Batcher(size={self.size}, mode={self.mode!r}, timeout={self.timeout!r}, "
            f"open={len(self._open)}, held={self._held})"
        )

    # -- public API -----------------------------------------------------------------

    @property
    def held(self) -> int:
        """Number of input items absorbed but not yet completed."""
        return self._held

    def held_items(self) -> list:
        """The input items counted by :attr:`held` (for cancel accounting), oldest first per key."""
        return [e.origin for st in self._open.values() for e in st.entries]

    def add(self, item: Any, now: float) -> tuple[list, int]:
        """Absorb one item and return the batches it completes.

        Parameters
        ----------
        item : Any
            The incoming item.
        now : float
            Current monotonic time, in seconds (the item's arrival time).

        Returns
        -------
        tuple of (list, int)
            Output batches ready now, in order, and the number of input items
            completed by this call.

        Raises
        ------
        BatchItemError
            If the item cannot join its open batch (kind or columns differ) or
            the mode does not accept it; the batcher is unchanged.
        """
        kind, n, columns = self._classify(item)
        k = None if self.key is None else self.key(item)
        if self._track:
            self.last_origins = []
        st = self._open.get(k)
        piece = item
        if st is not None:
            piece = self._fit(st, kind, columns, item)
        if n == 0:
            return [], 1
        front = None
        if st is None:
            st = self._open[k] = _Open(kind, columns, k)
        else:
            front = st.entries[0]
        st.entries.append(_Entry(piece, n, item, now))
        st.rows += n
        self._held += 1
        outputs: list = []
        completed = 0
        while st.rows >= self.size:
            out, done = self._take(st, self.size)
            outputs.append(out)
            completed += done
        if st.rows == 0:
            del self._open[k]
        elif st.entries[0] is not front:
            self._schedule(st)
        self._held -= completed
        return outputs, completed

    def next_deadline(self) -> float | None:
        """Earliest time at which :meth:`flush_due` will emit something, or None.

        The deadline of an open batch is ``t + timeout`` where ``t`` is the
        arrival time of its oldest held item.
        """
        if self.timeout is None:
            return None
        heap = self._heap
        while heap:
            if self._live(heap[0]):
                return heap[0][0]
            heapq.heappop(heap)
        return None

    def flush_due(self, now: float) -> tuple[list, int]:
        """Emit every open partial batch whose deadline (see :meth:`next_deadline`) is ``<= now``.

        Batches are emitted oldest deadline first.  Without a timeout this
        emits nothing.
        """
        outputs: list = []
        completed = 0
        if self._track:
            self.last_origins = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            row = heapq.heappop(heap)
            if not self._live(row):
                continue
            st = row[3]
            out, done = self._take(st, st.rows)
            del self._open[st.key]
            outputs.append(out)
            completed += done
        self._held -= completed
        return outputs, completed

    def flush_all(self) -> tuple[list, int]:
        """Emit every open partial batch (end of stream or a draining stop), oldest first."""
        outputs: list = []
        completed = 0
        if self._track:
            self.last_origins = []
        for st in sorted(self._open.values(), key=lambda s: s.entries[0].t):
            out, done = self._take(st, st.rows)
            outputs.append(out)
            completed += done
        self._open.clear()
        self._heap.clear()
        self._held -= completed
        return outputs, completed

    # -- internals --------------------------------------------------------------------

    def _classify(self, item: Any) -> tuple[str, int, Any]:
        """Return ``(kind, units, columns)`` for an incoming item, or raise BatchItemError."""
        if self.mode == "list":
            return _PLAIN, 1, None
        pd = loaded_pandas()
        if pd is not None and isinstance(item, pd.DataFrame):
            return _FRAME, len(item), item.columns
        if self.mode == "rebatch":
            if isinstance(item, (list, tuple)):
                return _SEQ, len(item), None
            raise BatchItemError(
                f"rebatch expects DataFrames, lists or tuples, got {type_name(item)}"
            )
        if pd is not None and isinstance(item, pd.Series):
            return _SERIES, 1, item.index
        if self.frame and isinstance(item, dict):
            return _DICT, 1, tuple(item)
        return _PLAIN, 1, None

    def _describe(self, kind: str) -> tuple[str, str]:
        """(what an open batch of ``kind`` holds, what it expects) for error messages."""
        if kind == _PLAIN:
            others = "a DataFrame, Series or dict" if self.frame else "a DataFrame or Series"
            return "plain items (batched as lists)", f"a plain item (not {others})"
        return {
            _FRAME: ("DataFrames", "a DataFrame"),
            _SERIES: ("Series (batched as a DataFrame)", "a Series"),
            _DICT: ("dicts (batched as a DataFrame, frame=True)", "a dict"),
            _SEQ: ("list elements", "a list or tuple"),
        }[kind]

    def _where(self, st: _Open) -> str:
        return "the open batch" if self.key is None else f"the open batch for key {st.key!r}"

    def _fit(self, st: _Open, kind: str, columns: Any, item: Any) -> Any:
        """Check ``item`` can join ``st``; return the piece to hold (columns aligned)."""
        if kind != st.kind:
            holds, expected = self._describe(st.kind)
            raise BatchItemError(
                f"{self._where(st)} holds {holds}; expected {expected}, got {type_name(item)}"
            )
        if kind not in _TABULAR:
            return item
        if kind == _DICT:
            if columns == st.columns or set(columns) == set(st.columns):
                return item  # the DataFrame constructor aligns dict keys by name
        elif columns.equals(st.columns):
            return item
        expected = list(st.columns)
        got = list(columns)
        got_set, expected_set = set(got), set(expected)
        missing = [c for c in expected if c not in got_set]
        extra = [c for c in got if c not in expected_set]
        if missing or extra:
            raise BatchItemError(
                f"columns differ from {self._where(st)}: missing {missing!r}, extra {extra!r}"
            )
        if len(got_set) != len(got) or len(expected_set) != len(expected):
            raise BatchItemError(
                f"columns differ from {self._where(st)}: same names in another order or "
                f"multiplicity (open batch {expected!r}, got {got!r})"
            )
        if kind == _FRAME:
            return item.reindex(columns=st.columns)
        return item.reindex(st.columns)  # a Series: align its index to the batch's columns

    def _schedule(self, st: _Open) -> None:
        """Record the deadline of ``st``'s (new) oldest item."""
        if self.timeout is None:
            return
        front = st.entries[0]
        heap = self._heap
        if len(heap) > 64 and len(heap) > 4 * len(self._open):
            heap = self._heap = [
                (s.entries[0].t + self.timeout, next(self._seq), s.key, s, s.entries[0])
                for s in self._open.values()
                if s is not st
            ]
            heapq.heapify(heap)
        heapq.heappush(heap, (front.t + self.timeout, next(self._seq), st.key, st, front))

    def _live(self, row: tuple[float, int, Hashable, _Open, _Entry]) -> bool:
        st = row[3]
        return self._open.get(row[2]) is st and st.entries[0] is row[4]

    def _take(self, st: _Open, k: int) -> tuple[Any, int]:
        """Remove the first ``k`` units of ``st``; return (the built batch, items completed)."""
        kind = st.kind
        entries = st.entries
        pieces = []
        done = 0
        remaining = k
        origins: list | None = None
        if self._track:
            origins = []
            self.last_origins.append(origins)
        while remaining:
            e = entries[0]
            avail = e.stop - e.start
            if avail <= remaining:
                stop = e.stop
                entries.popleft()
                done += 1
                remaining -= avail
                if origins is not None:
                    origins.append(e.origin)
            else:
                stop = e.start + remaining
                remaining = 0
            if kind == _FRAME:
                whole = e.start == 0 and stop == e.total
                pieces.append(e.piece if whole else e.piece.iloc[e.start : stop])
            elif kind == _SEQ:
                pieces.append((e.piece, e.start, stop))
            else:
                pieces.append(e.piece)
            e.start = stop
        st.rows -= k
        return _build(kind, pieces), done


def _build(kind: str, pieces: list) -> Any:
    """Turn the pieces of one output batch into the batch."""
    if kind == _PLAIN:
        return pieces
    if kind == _SEQ:
        out: list = []
        for seq, start, stop in pieces:
            out.extend(seq if start == 0 and stop == len(seq) else seq[start:stop])
        return out
    if kind == _FRAME:
        if len(pieces) == 1:
            return pieces[0]
        import pandas as pd

        return pd.concat(pieces)
    import pandas as pd

    # Series (named rows) or dicts: one row each; dtypes are re-inferred.
    return pd.DataFrame(pieces).infer_objects()
