"""Exact round trips of DataFrames through operator stages (SPEC sections 4 and 12).

Frames that go through ``debatch(rows=N)`` and ``batch(n)``, ``rebatch(n)`` or ``batch(n)``
over frames come out, concatenated, exactly as they went in (index, columns, dtypes,
categoricals, time zones, nullable integers) whenever order is kept.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import minigun_nb as mg

from ._helpers import assert_conserved, sample_frame

pytestmark = pytest.mark.timeout(60)


def run_frames(pipe, **kwargs):
    result = pipe.run(display="none", **kwargs)
    assert result.ok and result.errors.empty, result.errors
    return result


def test_debatch_then_batch_reproduces_the_frame():
    df = sample_frame(1000)
    pipe = mg.Pipeline("roundtrip")
    pipe.debatch(rows=64)  # 1000 rows -> 15 frames of 64 and one of 40
    pipe.batch(250)  # ... cut again at exactly 250 rows
    result = run_frames(pipe, items=[df])

    assert [len(b) for b in result.outputs] == [250, 250, 250, 250]
    pd.testing.assert_frame_equal(pd.concat(result.outputs), df)
    assert_conserved(result, "debatch", "batch")


def test_a_producer_of_frame_chunks_through_rebatch():
    chunks = [sample_frame(n, start) for n, start in [(7, 0), (30, 7), (1, 37), (62, 38)]]
    pipe = mg.Pipeline("chunks")

    @pipe.producer
    def read():
        yield from chunks

    pipe.rebatch(25)
    result = run_frames(pipe)

    assert [len(b) for b in result.outputs] == [25, 25, 25, 25]
    pd.testing.assert_frame_equal(pd.concat(result.outputs), pd.concat(chunks))


def test_batch_over_frames_cuts_exactly_and_carries_the_remainder():
    chunks = [sample_frame(40, 40 * i) for i in range(5)]  # 200 rows
    pipe = mg.Pipeline("cut")
    pipe.batch(70)
    result = run_frames(pipe, items=chunks)

    # never overshoots: 70, 70, then the final partial batch
    assert [len(b) for b in result.outputs] == [70, 70, 60]
    pd.testing.assert_frame_equal(pd.concat(result.outputs), pd.concat(chunks))
    assert result.stats.loc["batch", "done"] == 5


def test_a_dataframe_as_items_is_fed_in_row_chunks():
    df = sample_frame(2500)
    pipe = mg.Pipeline("items_frame")
    pipe.rebatch(1000)
    result = run_frames(pipe, items=df)  # items= accepts a DataFrame itself

    assert [len(b) for b in result.outputs] == [1000, 1000, 500]
    pd.testing.assert_frame_equal(pd.concat(result.outputs), df)


def test_rebatch_of_lists_concatenates_and_cuts():
    pipe = mg.Pipeline("lists")
    pipe.rebatch(4)
    result = run_frames(pipe, items=[[1, 2, 3], [4], [], [5, 6, 7, 8, 9]])

    assert result.outputs == [[1, 2, 3, 4], [5, 6, 7, 8], [9]]
    assert_conserved(result, "rebatch")


def test_a_thread_stage_between_debatch_and_rebatch_keeps_the_frame():
    df = sample_frame(3000)
    pipe = mg.Pipeline("vectorised")
    pipe.debatch(rows=100)

    @pipe.processor
    def scale(chunk):
        return chunk.assign(z=chunk.x * 2 + chunk.y)

    pipe.rebatch(1000)
    result = run_frames(pipe, items=[df])

    pd.testing.assert_frame_equal(pd.concat(result.outputs), df.assign(z=df.x * 2 + df.y))
    assert_conserved(result, "debatch", "scale", "rebatch")


# -- property: random frames, random chunkings ------------------------------------------


@st.composite
def frames(draw, max_rows=80):
    """A non-empty frame with categorical, tz-aware datetime, nullable Int64 and float columns,
    and a shuffled integer index."""
    n = draw(st.integers(1, max_rows))
    cat = draw(st.lists(st.sampled_from(["x", "y", "z", None]), min_size=n, max_size=n))
    seconds = draw(st.lists(st.integers(-(2**33), 2**33), min_size=n, max_size=n))
    ints = draw(st.lists(st.none() | st.integers(-(2**40), 2**40), min_size=n, max_size=n))
    floats = draw(st.lists(st.floats(allow_nan=True, allow_infinity=False), min_size=n, max_size=n))
    order = draw(st.permutations(range(n)))
    return pd.DataFrame(
        {
            "cat": pd.Categorical(cat, categories=["x", "y", "z"]),
            "when": pd.to_datetime(seconds, unit="s", utc=True).tz_convert("America/Lima"),
            "n": pd.array(ints, dtype="Int64"),
            "f": np.array(floats, dtype="float64"),
        },
        index=pd.Index(order, dtype="int64"),
    )


PROPERTY = settings(
    max_examples=25, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)


@PROPERTY
@given(df=frames(), n_rows=st.integers(1, 30), size=st.integers(1, 50))
def test_property_debatch_then_batch_is_exact(df, n_rows, size):
    pipe = mg.Pipeline("prop_batch")
    pipe.debatch(rows=n_rows)
    pipe.batch(size)
    result = run_frames(pipe, items=[df])

    assert all(len(b) == size for b in result.outputs[:-1])
    assert 1 <= len(result.outputs[-1]) <= size
    pd.testing.assert_frame_equal(pd.concat(result.outputs), df)


@PROPERTY
@given(df=frames(), cuts=st.lists(st.integers(0, 80), max_size=5), size=st.integers(1, 50))
def test_property_any_rebatch_is_exact(df, cuts, size):
    bounds = sorted({0, len(df), *(c for c in cuts if c < len(df))})
    chunks = [
        df.iloc[a:b] for a, b in zip(bounds, bounds[1:], strict=False)
    ]  # random, uneven chunking
    pipe = mg.Pipeline("prop_rebatch")
    pipe.rebatch(size)
    result = run_frames(pipe, items=chunks)

    assert all(len(b) == size for b in result.outputs[:-1])
    pd.testing.assert_frame_equal(pd.concat(result.outputs), df)
