"""A mergeable, log-bucketed latency histogram.

Buckets are spaced by ``2 ** (1/16)`` from 1 µs to about an hour, plus an underflow and an
overflow bucket. A percentile is reported as the geometric middle of its bucket, clamped to the
observed minimum and maximum, so its relative error is at most :data:`RELATIVE_ERROR`
(about 2.2%) for values inside the range. Counts are kept sparse (bucket index -> count), so a
stage whose latencies cluster costs a handful of dict entries, and merging two histograms is
exact: merging equals one histogram fed with both streams.

Examples
--------
>>> h = LatencyHistogram()
>>> h.add_many([0.010, 0.020, 0.030, 0.040])
>>> h.count
4
>>> abs(h.percentile(50) - 0.020) <= 0.020 * RELATIVE_ERROR
True
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "BUCKETS_PER_OCTAVE",
    "LatencyHistogram",
    "MAX_SECONDS",
    "MIN_SECONDS",
    "N_BUCKETS",
    "OVERFLOW",
    "RELATIVE_ERROR",
    "UNDERFLOW",
    "bucket_bounds",
    "bucket_index",
]

#: Buckets per doubling; 16 gives ~4.4% wide buckets, so ~2.2% error at the geometric middle.
BUCKETS_PER_OCTAVE = 16
#: Lower edge of the first regular bucket, in seconds.
MIN_SECONDS = 1e-6
#: Number of regular buckets: enough to pass one hour.
N_BUCKETS = math.ceil(BUCKETS_PER_OCTAVE * math.log2(3600.0 / MIN_SECONDS))
#: Upper edge of the last regular bucket (about 3770 s).
MAX_SECONDS = MIN_SECONDS * math.pow(2.0, N_BUCKETS / BUCKETS_PER_OCTAVE)
#: Index of the bucket for values below :data:`MIN_SECONDS` (zero and negatives included).
UNDERFLOW = -1
#: Index of the bucket for values at or above :data:`MAX_SECONDS`.
OVERFLOW = N_BUCKETS
#: Worst relative error of :meth:`LatencyHistogram.percentile` for values inside the range.
RELATIVE_ERROR = math.pow(2.0, 1.0 / (2 * BUCKETS_PER_OCTAVE)) - 1.0

# Hoisted so the per-item path is one log2, one multiply and one floor.
_SCALE = float(BUCKETS_PER_OCTAVE)
_LOG2_MIN = math.log2(MIN_SECONDS)


def bucket_index(seconds: float) -> int:
    """Return the bucket a value falls into.

    Parameters
    ----------
    seconds : float
        A latency; values below 1 µs go to :data:`UNDERFLOW`, values past the range to
        :data:`OVERFLOW`.

    Returns
    -------
    int
        ``UNDERFLOW``, ``0 .. N_BUCKETS - 1`` or ``OVERFLOW``.

    Examples
    --------
    >>> bucket_index(0.0) == UNDERFLOW, bucket_index(1e-6), bucket_index(2e-6)
    (True, 0, 16)
    """
    if not seconds >= MIN_SECONDS:  # also catches NaN, which the caller filters out anyway
        return UNDERFLOW
    if seconds >= MAX_SECONDS:
        return OVERFLOW
    index = math.floor((math.log2(seconds) - _LOG2_MIN) * _SCALE)
    # log2 rounding can push a value sitting on the top edge one bucket too far.
    return min(max(index, 0), N_BUCKETS - 1)


def bucket_bounds(index: int) -> tuple[float, float]:
    """Return the ``[low, high)`` edges of a bucket, in seconds.

    Examples
    --------
    >>> bucket_bounds(0)
    (1e-06, 1.0442737824274138e-06)
    >>> bucket_bounds(UNDERFLOW)[1] == MIN_SECONDS
    True
    """
    if index <= UNDERFLOW:
        return (-math.inf, MIN_SECONDS)
    if index >= OVERFLOW:
        return (MAX_SECONDS, math.inf)
    return (
        MIN_SECONDS * math.pow(2.0, index / _SCALE),
        MIN_SECONDS * math.pow(2.0, (index + 1) / _SCALE),
    )


class LatencyHistogram:
    """Counts of latencies in log-spaced buckets; mergeable and compact.

    ``percentile(p)`` uses the nearest-rank definition (the smallest value with at least
    ``p`` percent of the values at or below it, numpy's ``method="inverted_cdf"``) and returns
    the geometric middle of that value's bucket, clamped to the observed min and max. NaN
    values are ignored; negative ones count as zero.

    Examples
    --------
    >>> a = LatencyHistogram.from_values([0.1, 0.2])
    >>> b = LatencyHistogram.from_values([0.3])
    >>> a.merge(b)
    >>> a == LatencyHistogram.from_values([0.1, 0.2, 0.3])
    True
    >>> a.percentile(100)
    0.3
    """

    __slots__ = ("_counts", "_count", "_sum", "_min", "_max")

    def __init__(self) -> None:
        self._counts: dict[int, int] = {}
        self._count = 0
        self._sum = 0.0
        self._min = math.inf
        self._max = -math.inf

    @classmethod
    def from_values(cls, values: Iterable[float]) -> LatencyHistogram:
        """Build a histogram from an iterable of seconds.

        Examples
        --------
        >>> LatencyHistogram.from_values([0.5, 1.5]).count
        2
        """
        hist = cls()
        hist.add_many(values)
        return hist

    # -- feeding ----------------------------------------------------------------------------

    def add(self, seconds: float) -> None:
        """Record one latency.

        Examples
        --------
        >>> h = LatencyHistogram(); h.add(0.25); h.count
        1
        """
        if seconds != seconds:  # NaN: no bucket is right for it, and it would poison min/max
            return
        if seconds < 0.0:
            seconds = 0.0
        index = bucket_index(seconds)
        counts = self._counts
        counts[index] = counts.get(index, 0) + 1
        self._count += 1
        self._sum += seconds
        if seconds < self._min:
            self._min = seconds
        if seconds > self._max:
            self._max = seconds

    def add_many(self, values: Iterable[float]) -> None:
        """Record many latencies (one chunk's worth, typically).

        Examples
        --------
        >>> h = LatencyHistogram(); h.add_many([0.1, 0.2, 0.3]); h.count
        3
        """
        # One pass of comprehensions instead of a method call per value: this runs once per
        # chunk in the runtime's hot path, for up to a thousand values.
        vals = [v for v in values if v == v]  # NaN has no bucket
        if not vals:
            return
        low = min(vals)
        if low < 0.0:
            vals = [v if v >= 0.0 else 0.0 for v in vals]
            low = 0.0
        log2, floor, scale, base, top = math.log2, math.floor, _SCALE, _LOG2_MIN, N_BUCKETS - 1
        indexes = [
            UNDERFLOW if not v >= MIN_SECONDS else OVERFLOW if v >= MAX_SECONDS
            else min(max(floor((log2(v) - base) * scale), 0), top)
            for v in vals
        ]
        counts = self._counts
        for index, n in Counter(indexes).items():
            counts[index] = counts.get(index, 0) + n
        self._count += len(vals)
        self._sum += sum(vals)
        high = max(vals)
        if low < self._min:
            self._min = low
        if high > self._max:
            self._max = high

    def merge(self, other: LatencyHistogram) -> None:
        """Add every count of ``other`` into this histogram (exact).

        Examples
        --------
        >>> h = LatencyHistogram.from_values([0.1]); h.merge(LatencyHistogram.from_values([0.2]))
        >>> h.count
        2
        """
        counts = self._counts
        for index, n in other._counts.items():
            counts[index] = counts.get(index, 0) + n
        self._count += other._count
        self._sum += other._sum
        self._min = min(self._min, other._min)
        self._max = max(self._max, other._max)

    def copy(self) -> LatencyHistogram:
        """Return an independent copy.

        Examples
        --------
        >>> h = LatencyHistogram.from_values([0.1]); c = h.copy(); c.add(0.2)
        >>> h.count, c.count
        (1, 2)
        """
        new = LatencyHistogram()
        new._counts = dict(self._counts)
        new._count = self._count
        new._sum = self._sum
        new._min = self._min
        new._max = self._max
        return new

    # -- reading ----------------------------------------------------------------------------

    @property
    def count(self) -> int:
        """Number of recorded latencies."""
        return self._count

    @property
    def sum(self) -> float:
        """Sum of recorded latencies, in seconds."""
        return self._sum

    @property
    def mean(self) -> float | None:
        """Mean latency in seconds, or None when empty."""
        return self._sum / self._count if self._count else None

    @property
    def min(self) -> float | None:
        """Smallest recorded latency (exact), or None when empty."""
        return self._min if self._count else None

    @property
    def max(self) -> float | None:
        """Largest recorded latency (exact), or None when empty."""
        return self._max if self._count else None

    @property
    def counts(self) -> dict[int, int]:
        """Sparse counts, bucket index -> count, in bucket order (a copy).

        Examples
        --------
        >>> LatencyHistogram.from_values([1e-6, 1e-6, 0.0]).counts
        {-1: 1, 0: 2}
        """
        return {index: self._counts[index] for index in sorted(self._counts)}

    def percentile(self, p: float) -> float | None:
        """Return the ``p``-th percentile in seconds (``0 <= p <= 100``), None when empty.

        Examples
        --------
        >>> h = LatencyHistogram.from_values([0.001] * 99 + [1.0])
        >>> round(h.percentile(50), 4), h.percentile(100)
        (0.001, 1.0)
        """
        return self.percentiles((p,))[0]

    def percentiles(self, ps: Iterable[float]) -> tuple[float | None, ...]:
        """Return several percentiles at once, sorting the buckets only once.

        Examples
        --------
        >>> LatencyHistogram().percentiles([50, 99])
        (None, None)
        """
        wanted = tuple(float(p) for p in ps)
        for p in wanted:
            if not 0.0 <= p <= 100.0:
                raise ValueError(f"percentile must be between 0 and 100, got {p!r}")
        if not self._count:
            return tuple(None for _ in wanted)
        # Nearest rank: the k-th smallest value, k = ceil(p/100 * n), at least 1.
        ranks = [max(1, math.ceil(p / 100.0 * self._count - 1e-9)) for p in wanted]
        order = sorted(range(len(ranks)), key=ranks.__getitem__)
        results: list[float | None] = [None] * len(ranks)
        buckets = iter(sorted(self._counts.items()))
        index, n = next(buckets)
        cumulative = n
        for position in order:
            rank = ranks[position]
            # The smallest and the largest value are known exactly: p0 and p100 are exact.
            if rank == 1:
                results[position] = self._min
                continue
            if rank >= self._count:
                results[position] = self._max
                continue
            while cumulative < rank:
                index, n = next(buckets)
                cumulative += n
            results[position] = self._representative(index)
        return tuple(results)

    def _representative(self, index: int) -> float:
        if index == UNDERFLOW:
            return self._min
        if index == OVERFLOW:
            return self._max
        middle = MIN_SECONDS * math.pow(2.0, (index + 0.5) / _SCALE)
        # Clamping keeps the estimate inside what was observed (and inside its bucket).
        return min(max(middle, self._min), self._max)

    # -- comparing and serialising ------------------------------------------------------------

    def __eq__(self, other: object) -> bool:
        # The float sum depends on the order of additions, so it is left out: two histograms
        # fed the same values in another order (or merged) compare equal.
        if not isinstance(other, LatencyHistogram):
            return NotImplemented
        return (
            self._counts == other._counts
            and self._count == other._count
            and (self._count == 0 or (self._min == other._min and self._max == other._max))
        )

    __hash__ = None  # type: ignore[assignment]  # mutable: not hashable

    def __len__(self) -> int:
        return self._count

    def __repr__(self) -> str:
        if not self._count:
            return "LatencyHistogram(count=0)"
        p50, p99 = self.percentiles((50, 99))
        assert p50 is not None and p99 is not None
        return (
            f"LatencyHistogram(count={self._count}, p50_ms={p50 * 1e3:.3g}, "
            f"p99_ms={p99 * 1e3:.3g}, max_ms={self._max * 1e3:.3g})"
        )

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable form; :meth:`from_dict` reverses it.

        Examples
        --------
        >>> LatencyHistogram.from_values([0.5]).to_dict()["buckets"]
        [[302, 1]]
        """
        return {
            "buckets_per_octave": BUCKETS_PER_OCTAVE,
            "min_seconds": MIN_SECONDS,
            "count": self._count,
            "sum": self._sum,
            # JSON has no infinity; None stands for it (only an ``add(inf)`` produces one).
            "min": None if not self._count or math.isinf(self._min) else self._min,
            "max": None if not self._count or math.isinf(self._max) else self._max,
            "buckets": [[index, n] for index, n in sorted(self._counts.items())],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LatencyHistogram:
        """Rebuild a histogram from :meth:`to_dict` output.

        Examples
        --------
        >>> h = LatencyHistogram.from_values([0.1, 0.2])
        >>> LatencyHistogram.from_dict(h.to_dict()) == h
        True
        """
        if data.get("buckets_per_octave", BUCKETS_PER_OCTAVE) != BUCKETS_PER_OCTAVE:
            raise ValueError("histogram was recorded with a different bucket layout")
        hist = cls()
        hist._counts = {int(index): int(n) for index, n in data.get("buckets", ())}
        hist._count = int(data.get("count", sum(hist._counts.values())))
        hist._sum = float(data.get("sum", 0.0))
        if hist._count:
            low, high = data.get("min"), data.get("max")
            hist._min = float(low) if low is not None else math.inf
            hist._max = float(high) if high is not None else math.inf
        return hist
