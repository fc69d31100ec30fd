"""Property tests: exact frame round trips and the accounting invariant."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minigun_nb.ops import Batcher, BatchItemError, debatch_item

SETTINGS = settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@st.composite
def frames(draw, max_rows=60):
    """A frame with categorical, tz-aware datetime, nullable Int64, float and string columns."""
    n = draw(st.integers(0, max_rows))
    ints = st.lists(st.integers(-(2**40), 2**40), min_size=n, max_size=n)
    seconds = st.lists(st.integers(-(2**33), 2**33), min_size=n, max_size=n)
    maybe = st.lists(st.booleans(), min_size=n, max_size=n)
    cat = draw(st.lists(st.sampled_from(["x", "y", "z", None]), min_size=n, max_size=n))
    stamps = pd.to_datetime(draw(seconds), unit="s", utc=True).tz_convert("Europe/Paris")
    nat = np.array(draw(maybe), dtype=bool)
    nullable = [v if keep else None for v, keep in zip(draw(ints), draw(maybe), strict=True)]
    floats = draw(st.lists(st.floats(allow_nan=True, allow_infinity=False), min_size=n, max_size=n))
    df = pd.DataFrame(
        {
            "cat": pd.Categorical(cat, categories=["x", "y", "z"]),
            "when": stamps.where(~nat),
            "n": pd.array(nullable, dtype="Int64"),
            "f": floats,
            "s": draw(st.lists(st.one_of(st.none(), st.text(max_size=4)), min_size=n, max_size=n)),
        }
    )
    index = draw(st.sampled_from(["range", "shuffled", "labels"]))
    if index == "shuffled":
        df.index = np.random.default_rng(n).permutation(n) + 100
    elif index == "labels":
        df.index = [f"r{i}" for i in range(n)]
    return df


@st.composite
def chunked(draw):
    """(frame, list of consecutive iloc chunks covering it, empty chunks allowed)."""
    df = draw(frames())
    cuts = sorted(draw(st.lists(st.integers(0, len(df)), max_size=8)))
    bounds = [0, *cuts, len(df)]
    return df, [df.iloc[a:b] for a, b in pairwise(bounds)]


def run(batcher, items):
    """Feed items at increasing times, then flush; check accounting all along."""
    outputs, completed = [], 0
    for t, item in enumerate(items):
        out, done = batcher.add(item, float(t))
        outputs += out
        completed += done
        assert completed + batcher.held == t + 1
        assert len(batcher.held_items()) == batcher.held
    out, done = batcher.flush_all()
    outputs += out
    assert completed + done == len(items) and batcher.held == 0
    return outputs


def assert_exact(outputs, inputs, size):
    """Outputs are full chunks (the last may be short) that concatenate to the inputs."""
    total = sum(len(i) for i in inputs)
    assert [len(o) for o in outputs[:-1]] == [size] * (len(outputs) - 1)
    assert all(0 < len(o) <= size for o in outputs)
    if total == 0:
        assert outputs == []
    else:
        pd.testing.assert_frame_equal(pd.concat(outputs), pd.concat(inputs))


@SETTINGS
@given(chunked(), st.integers(1, 25))
def test_batch_over_frames_is_exact(data, size):
    df, chunks = data
    outputs = run(Batcher(size), chunks)
    assert_exact(outputs, chunks, size)
    if len(df):
        pd.testing.assert_frame_equal(pd.concat(outputs), df)


@SETTINGS
@given(chunked(), st.integers(1, 25))
def test_rebatch_is_exact(data, size):
    _, chunks = data
    assert_exact(run(Batcher(size, mode="rebatch"), chunks), chunks, size)


@SETTINGS
@given(chunked(), st.integers(1, 25), st.integers(1, 25))
def test_debatch_rows_then_batch_round_trips(data, rows, size):
    df, chunks = data
    pieces = [p for chunk in chunks for p in debatch_item(chunk, rows=rows)]
    assert all(0 < len(p) <= rows for p in pieces)
    outputs = run(Batcher(size), pieces)
    assert_exact(outputs, chunks, size)


@SETTINGS
@given(st.lists(st.lists(st.integers(), max_size=12), max_size=10), st.integers(1, 7))
def test_rebatch_of_lists_is_exact(lists, size):
    outputs = run(Batcher(size, mode="rebatch"), lists)
    assert [x for o in outputs for x in o] == [x for chunk in lists for x in chunk]
    assert all(len(o) == size for o in outputs[:-1]) and all(0 < len(o) <= size for o in outputs)


@SETTINGS
@given(frames(max_rows=12))
def test_debatch_series_and_dict_keep_values_columns_and_index(df):
    as_series = debatch_item(df)
    as_dicts = debatch_item(df, rows="dict")
    assert [s.name for s in as_series] == list(df.index)
    for i, (s, d) in enumerate(zip(as_series, as_dicts, strict=True)):
        assert list(s.index) == list(df.columns) == list(d)
        for col in df.columns:
            expected = df[col].iloc[i]
            for got in (s[col], d[col]):
                assert (pd.isna(got) and pd.isna(expected)) or got == expected


# Operations for the accounting property: (op, argument).
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("plain"), st.integers(0, 3)),
        st.tuples(st.just("frame"), st.integers(0, 9)),
        st.tuples(st.just("other_columns"), st.integers(0, 3)),
        st.tuples(st.just("tick"), st.floats(0, 3)),
        st.tuples(st.just("flush_due"), st.just(0)),
        st.tuples(st.just("flush_all"), st.just(0)),
    ),
    max_size=40,
)


@SETTINGS
@given(
    OPS,
    st.integers(1, 6),
    st.sampled_from(["batch", "rebatch", "list"]),
    st.sampled_from([None, 1.0, 2.5]),
    st.booleans(),
)
def test_completed_plus_held_equals_accepted(ops, size, mode, timeout, keyed):
    key = (lambda item: len(item) % 2 if isinstance(item, pd.DataFrame) else 0) if keyed else None
    b = Batcher(size, mode=mode, timeout=timeout, key=key)
    now, accepted, completed, units = 0.0, 0, 0, 0
    for op, arg in ops:
        if op == "tick":
            now += arg
            continue
        if op == "flush_due":
            deadline = b.next_deadline()
            out, done = b.flush_due(now)
            assert (deadline is not None and deadline <= now) == bool(out)
        elif op == "flush_all":
            out, done = b.flush_all()
            assert b.held == 0
        else:
            if op == "plain":
                item = list(range(arg))
            elif op == "frame":
                item = pd.DataFrame({"a": range(arg)})
            else:
                item = pd.DataFrame({"b": range(arg)})
            try:
                out, done = b.add(item, now)
            except BatchItemError:
                continue
            accepted += 1
            units += 1 if mode != "rebatch" else len(item)
        completed += done
        assert all(len(o) <= size for o in out)
        if mode == "rebatch":
            units -= sum(len(o) for o in out)
        assert completed + b.held == accepted
        assert len(b.held_items()) == b.held
    completed += b.flush_all()[1]
    assert completed == accepted and b.held == 0 and b.next_deadline() is None


@pytest.mark.timeout(60)
def test_wide_key_space_keeps_deadline_queries_cheap():
    b = Batcher(1_000, timeout=10.0, key=lambda i: i % 5_000)
    for i in range(50_000):
        b.add(i, float(i))
        b.next_deadline()
    assert b.held == 50_000 and b.next_deadline() == 10.0
    out, done = b.flush_due(10.0)
    assert out == [list(range(0, 50_000, 5_000))] and done == 10


def test_stale_deadlines_do_not_pile_up():
    b = Batcher(2, timeout=1.0)
    for i in range(1_000):
        b.add(i, float(i))
    assert len(b._heap) <= 65  # rebuilt from the open batches when mostly stale
    assert b.next_deadline() is None
