"""The latency histogram: log buckets, exact merges, percentiles within one bucket's error."""

from __future__ import annotations

import json
import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minigun_nb.observe.histogram import (
    MAX_SECONDS,
    MIN_SECONDS,
    N_BUCKETS,
    OVERFLOW,
    RELATIVE_ERROR,
    UNDERFLOW,
    LatencyHistogram,
    bucket_bounds,
    bucket_index,
)

# Latencies inside the histogram's range, spread over every order of magnitude.
in_range = st.floats(min_value=MIN_SECONDS, max_value=3600.0, allow_nan=False)
latency_lists = st.lists(in_range, min_size=1, max_size=300)
any_latency = st.one_of(
    in_range,
    st.floats(min_value=0.0, max_value=MIN_SECONDS, exclude_max=True),
    st.floats(min_value=MAX_SECONDS, max_value=1e7),
)
# Percentiles in steps of 0.1, so the reference rank can be computed exactly.
percentile_values = st.integers(min_value=0, max_value=1000).map(lambda tenths: tenths / 10)


def nearest_rank(values: list[float], p: float) -> float:
    """The reference percentile, nearest rank (numpy's ``method="inverted_cdf"``), exactly.

    The rank is computed with fractions: a float ``p / 100 * n`` such as ``0.07 * 100`` lands
    a hair above 7 and would pick the 8th value.
    """
    rank = max(1, math.ceil(Fraction(round(p * 10), 1000) * len(values)))
    return float(np.sort(values)[rank - 1])


def test_the_reference_agrees_with_numpy() -> None:
    values = [float(v) for v in range(1, 201)]
    for p in (0.0, 1.0, 25.0, 50.0, 90.0, 99.5, 100.0):
        assert nearest_rank(values, p) == np.percentile(values, p, method="inverted_cdf")


# -- layout -----------------------------------------------------------------------------------


def test_buckets_cover_one_microsecond_to_past_an_hour() -> None:
    assert bucket_index(MIN_SECONDS) == 0
    assert bucket_index(3600.0) == N_BUCKETS - 1
    assert 3600.0 < MAX_SECONDS < 3600.0 * 1.05
    assert bucket_index(0.0) == UNDERFLOW
    assert bucket_index(MIN_SECONDS / 2) == UNDERFLOW
    assert bucket_index(MAX_SECONDS) == OVERFLOW
    assert bucket_index(math.inf) == OVERFLOW


def test_relative_error_is_about_two_percent() -> None:
    assert RELATIVE_ERROR == pytest.approx(0.0219, abs=1e-4)


@given(in_range)
def test_every_value_falls_inside_its_bucket(value: float) -> None:
    low, high = bucket_bounds(bucket_index(value))
    # log2 may round a value sitting on an edge into the neighbour: allow one ulp-ish slack.
    assert low * (1 - 1e-12) <= value <= high * (1 + 1e-12)


# -- counting ----------------------------------------------------------------------------------


def test_an_empty_histogram_has_no_percentiles() -> None:
    hist = LatencyHistogram()
    assert hist.count == 0
    assert hist.percentile(50) is None
    assert hist.percentiles([50, 99]) == (None, None)
    assert hist.mean is None and hist.min is None and hist.max is None
    assert hist.counts == {}


def test_counts_are_sparse_and_in_bucket_order() -> None:
    hist = LatencyHistogram.from_values([0.5, 0.001, 0.5, 0.0])
    assert hist.counts == {UNDERFLOW: 1, bucket_index(0.001): 1, bucket_index(0.5): 2}
    assert hist.count == len(hist) == 4
    assert hist.sum == pytest.approx(1.001)
    assert hist.min == 0.0 and hist.max == 0.5


def test_nan_is_ignored_and_negatives_count_as_zero() -> None:
    hist = LatencyHistogram.from_values([math.nan, -1.0, 0.25])
    assert hist.count == 2
    assert hist.min == 0.0
    assert hist.percentile(0) == 0.0


def test_p0_and_p100_are_the_exact_min_and_max() -> None:
    hist = LatencyHistogram.from_values([0.0123, 0.5, 0.987654])
    assert hist.percentile(0) == 0.0123
    assert hist.percentile(100) == 0.987654


def test_a_bad_percentile_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="between 0 and 100"):
        LatencyHistogram.from_values([0.1]).percentile(101)


def test_percentiles_of_a_skewed_stream() -> None:
    # 990 fast items (1 ms) and 10 slow ones (1 s): p99 is still fast, p99.9+ is slow.
    hist = LatencyHistogram.from_values([0.001] * 990 + [1.0] * 10)
    p50, p99, p999 = hist.percentiles([50, 99, 99.9])
    assert p50 == pytest.approx(0.001, rel=RELATIVE_ERROR)
    assert p99 == pytest.approx(0.001, rel=RELATIVE_ERROR)
    assert p999 == pytest.approx(1.0, rel=RELATIVE_ERROR)


def test_copy_is_independent() -> None:
    hist = LatencyHistogram.from_values([0.1])
    copy = hist.copy()
    copy.add(0.2)
    assert (hist.count, copy.count) == (1, 2)
    assert hist != copy


def test_histograms_are_not_hashable() -> None:
    with pytest.raises(TypeError):
        hash(LatencyHistogram())


def test_to_dict_round_trips_through_json() -> None:
    hist = LatencyHistogram.from_values([0.0, 0.002, 0.002, 12.5, 1e6])
    data = json.loads(json.dumps(hist.to_dict()))
    back = LatencyHistogram.from_dict(data)
    assert back == hist
    assert back.percentiles([0, 50, 100]) == hist.percentiles([0, 50, 100])


def test_repr_shows_count_and_percentiles() -> None:
    assert repr(LatencyHistogram()) == "LatencyHistogram(count=0)"
    assert repr(LatencyHistogram.from_values([0.002])).startswith(
        "LatencyHistogram(count=1, p50_ms=2"
    )


# -- properties --------------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(latency_lists, percentile_values)
def test_percentile_is_within_one_bucket_of_the_exact_value(values: list[float], p: float) -> None:
    exact = nearest_rank(values, p)
    estimate = LatencyHistogram.from_values(values).percentile(p)
    assert estimate is not None
    assert abs(estimate - exact) <= exact * RELATIVE_ERROR * (1 + 1e-9)


@settings(max_examples=100, deadline=None)
@given(st.lists(any_latency, min_size=1, max_size=200), percentile_values)
def test_out_of_range_values_report_the_observed_extremes(values: list[float], p: float) -> None:
    hist = LatencyHistogram.from_values(values)
    estimate = hist.percentile(p)
    assert estimate is not None
    assert min(values) <= estimate <= max(values)
    exact = nearest_rank(values, p)
    if MIN_SECONDS <= exact < MAX_SECONDS:
        assert abs(estimate - exact) <= exact * RELATIVE_ERROR * (1 + 1e-9)
    elif exact < MIN_SECONDS:
        assert abs(estimate - exact) < MIN_SECONDS  # underflow: off by at most 1 µs


@settings(max_examples=150, deadline=None)
@given(st.lists(any_latency, max_size=200), st.lists(any_latency, max_size=200))
def test_merging_equals_one_histogram_fed_both_streams(a: list[float], b: list[float]) -> None:
    left = LatencyHistogram.from_values(a)
    left.merge(LatencyHistogram.from_values(b))
    both = LatencyHistogram.from_values(a + b)
    assert left == both
    assert left.counts == both.counts
    assert left.sum == pytest.approx(both.sum)
    ps = [0, 1, 25, 50, 90, 99, 100]
    assert left.percentiles(ps) == both.percentiles(ps)


@settings(max_examples=50, deadline=None)
@given(latency_lists)
def test_mean_and_count_match_the_statistics_module(values: list[float]) -> None:
    import statistics

    hist = LatencyHistogram.from_values(values)
    assert hist.count == len(values)
    assert hist.mean == pytest.approx(statistics.fmean(values))
    assert hist.min == min(values) and hist.max == max(values)
