"""Batcher and debatch_item, example by example (they double as documentation)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from minigun_nb.ops import Batcher, BatchItemError, check_debatch_rows, debatch_item

BATCHING_PY = Path(__file__).resolve().parents[2] / "minigun_nb" / "ops" / "batching.py"


def feed(batcher, items, now=0.0):
    """Add every item; return (all outputs, total completed)."""
    outputs, completed = [], 0
    for item in items:
        out, done = batcher.add(item, now)
        outputs += out
        completed += done
    return outputs, completed


def frame(start, stop, **extra):
    return pd.DataFrame({"a": range(start, stop), **extra}, index=range(start, stop))


# -- plain items -----------------------------------------------------------------------


def test_plain_items_become_lists():
    b = Batcher(2)
    assert feed(b, [1, 2, 3]) == ([[1, 2]], 2)
    assert b.flush_all() == ([[3]], 1)


def test_none_and_lists_are_plain_items():
    b = Batcher(2)
    assert feed(b, [None, [1, 2], (3,)]) == ([[None, [1, 2]]], 2)
    assert b.held_items() == [(3,)]


def test_list_mode_never_concatenates_frames():
    b = Batcher(2, mode="list")
    out, done = feed(b, [frame(0, 5), "x"])
    assert done == 2 and len(out) == 1 and isinstance(out[0], list) and out[0][1] == "x"


def test_flush_all_on_empty_batcher_is_a_no_op():
    assert Batcher(3).flush_all() == ([], 0)


# -- DataFrames ------------------------------------------------------------------------


def test_frames_are_cut_exactly_with_the_remainder_carried():
    b = Batcher(4)
    out, done = feed(b, [frame(0, 3), frame(3, 6)])
    assert [len(o) for o in out] == [4] and done == 1 and b.held == 1
    pd.testing.assert_frame_equal(out[0], frame(0, 4))
    pd.testing.assert_frame_equal(b.flush_all()[0][0], frame(4, 6))


def test_one_big_frame_gives_several_full_batches_at_once():
    b = Batcher(3)
    out, done = b.add(frame(0, 10), now=0)
    assert [len(o) for o in out] == [3, 3, 3] and done == 0 and b.held == 1
    assert b.flush_all()[1] == 1


def test_a_frame_of_exactly_size_passes_through_untouched():
    df = frame(0, 3)
    assert Batcher(3).add(df, now=0)[0][0] is df


def test_a_frame_with_no_rows_is_completed_at_once():
    b = Batcher(3)
    assert b.add(frame(0, 0), now=0) == ([], 1)
    assert b.held == 0


def test_series_items_become_a_frame_named_by_series_name():
    rows = [pd.Series({"x": 1, "y": "a"}, name="r1"), pd.Series({"x": 2, "y": "b"}, name="r2")]
    out, _ = feed(Batcher(2), rows)
    expected = pd.DataFrame({"x": [1, 2], "y": ["a", "b"]}, index=["r1", "r2"])
    pd.testing.assert_frame_equal(out[0], expected)


def test_dict_items_become_a_frame_with_frame_true():
    b = Batcher(2, frame=True)
    out, _ = feed(b, [{"x": 1, "y": 2.5}, {"x": 2, "y": 3.5}])
    pd.testing.assert_frame_equal(out[0], pd.DataFrame({"x": [1, 2], "y": [2.5, 3.5]}))


def test_dict_items_stay_lists_without_frame():
    b = Batcher(2)
    assert feed(b, [{"x": 1}, {"x": 2}])[0] == [[{"x": 1}, {"x": 2}]]


# -- refusals: BatchItemError, state unchanged ----------------------------------------


def test_mismatched_columns_name_missing_and_extra_and_leave_the_batch_alone():
    b = Batcher(10)
    b.add(pd.DataFrame({"a": [1], "b": [2]}), now=0)
    with pytest.raises(BatchItemError) as exc:
        b.add(pd.DataFrame({"a": [3], "c": [4]}), now=1)
    assert str(exc.value) == "columns differ from the open batch: missing ['b'], extra ['c']"
    assert b.held == 1
    pd.testing.assert_frame_equal(b.flush_all()[0][0], pd.DataFrame({"a": [1], "b": [2]}))


def test_same_columns_in_another_order_are_aligned():
    b = Batcher(2)
    out, _ = feed(b, [pd.DataFrame({"a": [1], "b": [2]}), pd.DataFrame({"b": [4], "a": [3]})])
    pd.testing.assert_frame_equal(out[0], pd.DataFrame({"a": [1, 3], "b": [2, 4]}, index=[0, 0]))


def test_non_frame_into_a_frame_batch_says_what_was_expected():
    b = Batcher(10)
    b.add(frame(0, 2), now=0)
    with pytest.raises(BatchItemError, match="holds DataFrames; expected a DataFrame, got int"):
        b.add(5, now=1)
    assert b.held == 1


def test_frame_into_a_plain_batch_is_refused():
    b = Batcher(10)
    b.add(5, now=0)
    with pytest.raises(BatchItemError, match="holds plain items .*got DataFrame"):
        b.add(frame(0, 2), now=1)
    assert b.held_items() == [5]


def test_series_and_dicts_are_column_checked_too():
    b = Batcher(10, frame=True)
    b.add({"a": 1, "b": 2}, now=0)
    with pytest.raises(BatchItemError, match=r"missing \['b'\], extra \['z'\]"):
        b.add({"a": 1, "z": 2}, now=0)


def test_key_errors_name_the_key():
    b = Batcher(10, key=lambda item: "k")
    b.add(1, now=0)
    with pytest.raises(BatchItemError, match="open batch for key 'k'"):
        b.add(frame(0, 1), now=0)


def test_rebatch_refuses_scalars():
    with pytest.raises(BatchItemError, match="expects DataFrames, lists or tuples, got int"):
        Batcher(3, mode="rebatch").add(1, now=0)


# -- keys ------------------------------------------------------------------------------


def test_one_open_batch_per_key():
    b = Batcher(2, key=lambda n: n % 2)
    assert feed(b, [1, 2, 3, 4, 5]) == ([[1, 3], [2, 4]], 4)
    assert b.flush_all() == ([[5]], 1)


def test_keyed_frames_are_cut_independently():
    b = Batcher(3, key=lambda df: df["k"].iloc[0])
    out, _ = feed(b, [pd.DataFrame({"k": [k, k]}) for k in "xyx"])
    assert [list(o["k"]) for o in out] == [["x", "x", "x"]]
    assert sorted(len(o) for o in b.flush_all()[0]) == [1, 2]


# -- timeouts --------------------------------------------------------------------------


def test_timeout_flushes_when_the_oldest_item_has_waited_long_enough():
    b = Batcher(3, timeout=5)
    feed(b, [1], now=0), feed(b, [2], now=1)
    assert b.next_deadline() == 5
    assert b.flush_due(4.5) == ([], 0)
    assert b.flush_due(5) == ([[1, 2]], 2)
    assert b.next_deadline() is None


def test_deadline_follows_the_oldest_item_still_held():
    b = Batcher(3, timeout=5)
    b.add(frame(0, 2), now=0)
    b.add(frame(2, 4), now=10)  # emits rows 0..2, keeps row 3 (arrived at 10)
    assert b.next_deadline() == 15


def test_per_key_deadlines_flush_only_the_due_batches():
    b = Batcher(10, timeout=2, key=str.upper)
    b.add("a", now=0), b.add("b", now=1), b.add("a", now=1.5)
    assert b.next_deadline() == 2
    assert b.flush_due(2.5) == ([["a", "a"]], 2)
    assert b.next_deadline() == 3 and b.held_items() == ["b"]


def test_without_timeout_nothing_is_due():
    b = Batcher(3)
    b.add(1, now=0)
    assert b.next_deadline() is None and b.flush_due(1e9) == ([], 0)


# -- rebatch ---------------------------------------------------------------------------


def test_rebatch_cuts_lists_into_exact_chunks():
    b = Batcher(3, mode="rebatch")
    assert feed(b, [[1, 2], (3, 4, 5, 6, 7), []]) == ([[1, 2, 3], [4, 5, 6]], 2)
    assert b.flush_all() == ([[7]], 1)


def test_rebatch_re_chunks_frames():
    b = Batcher(4, mode="rebatch")
    out, _ = feed(b, [frame(0, 3), frame(3, 9)])
    out += b.flush_all()[0]
    assert [len(o) for o in out] == [4, 4, 1]
    pd.testing.assert_frame_equal(pd.concat(out), frame(0, 9))


# -- debatch ---------------------------------------------------------------------------


def test_debatch_list_gives_its_elements_untouched():
    assert debatch_item([1, None, (2,)]) == [1, None, (2,)]
    assert debatch_item(()) == []


def test_debatch_series_rows_keep_values_columns_and_index():
    df = pd.DataFrame({"i": [1, 2**60], "f": [0.5, 1.5], "s": ["a", "b"]}, index=["r", "q"])
    rows = debatch_item(df)
    assert [r.name for r in rows] == ["r", "q"] and list(rows[1].index) == ["i", "f", "s"]
    assert list(rows[1]) == [2**60, 1.5, "b"]  # not cast to float


def test_debatch_series_then_batch_rebuilds_the_frame():
    df = pd.DataFrame({"i": [1, 2, 3], "f": [0.5, 1.5, 2.5]}, index=[7, 8, 9])
    out, _ = feed(Batcher(3), debatch_item(df))
    pd.testing.assert_frame_equal(out[0], df)


def test_debatch_dict_rows_drop_the_index():
    df = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]}, index=[5, 6])
    assert debatch_item(df, rows="dict") == [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]


def test_debatch_n_rows_gives_exact_frames():
    pieces = debatch_item(frame(0, 5), rows=2)
    assert [len(p) for p in pieces] == [2, 2, 1]
    pd.testing.assert_frame_equal(pd.concat(pieces), frame(0, 5))


def test_debatch_empty_frame_gives_nothing():
    assert debatch_item(frame(0, 0)) == [] and debatch_item(frame(0, 0), rows=3) == []


def test_debatch_refuses_other_items():
    with pytest.raises(BatchItemError, match="debatch expects a list, tuple or DataFrame, got int"):
        debatch_item(3)


def test_debatch_dict_refuses_duplicate_columns():
    df = pd.DataFrame([[1, 2]], columns=["a", "a"])
    with pytest.raises(BatchItemError, match="duplicated: \\['a'\\]"):
        debatch_item(df, rows="dict")


@pytest.mark.parametrize("rows", ["rows", 0, -1, True, 1.5, None])
def test_debatch_rows_is_validated(rows):
    with pytest.raises(ValueError, match="rows must be"):
        check_debatch_rows(rows)
    with pytest.raises(ValueError, match="rows must be"):
        debatch_item([1], rows=rows)


# -- constructor validation ------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"size": 0}, "size must be an int >= 1"),
        ({"size": 2.0}, "size must be an int >= 1"),
        ({"size": True}, "size must be an int >= 1"),
        ({"size": 2, "mode": "bulk"}, "mode must be one of"),
        ({"size": 2, "timeout": 0}, "timeout must be None or a finite number"),
        ({"size": 2, "timeout": float("inf")}, "timeout must be None or a finite number"),
        ({"size": 2, "timeout": "1"}, "timeout must be None or a finite number"),
        ({"size": 2, "key": "col"}, "key must be a callable or None"),
        ({"size": 2, "mode": "list", "frame": True}, "frame=True only applies"),
    ],
)
def test_bad_arguments_raise_value_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Batcher(**kwargs)


# -- import hygiene and a size sanity check ---------------------------------------------


def test_importing_batching_does_not_import_pandas():
    # A stub parent package: only ops/ itself is imported, not what minigun_nb/__init__ loads.
    code = (
        "import sys, types\n"
        "stub = types.ModuleType('minigun_nb')\n"
        f"stub.__path__ = [{str(BATCHING_PY.parent.parent)!r}]\n"
        "sys.modules['minigun_nb'] = stub\n"
        "from minigun_nb.ops import batching as m, debatching as d\n"
        "b = m.Batcher(2, frame=True)\n"
        "assert b.add({'x': 1}, 0) == ([], 0) and d.debatch_item((1, 2)) == [1, 2]\n"
        "assert 'pandas' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.timeout(60)
def test_rebatching_a_million_rows_in_small_chunks_completes():
    df = pd.DataFrame({"a": range(1_000_000), "b": 0.5})
    b = Batcher(100_000, mode="rebatch")
    out, done = feed(b, debatch_item(df, rows=1_000))
    assert len(out) == 10 and done == 1_000 and b.held == 0
    pd.testing.assert_frame_equal(pd.concat(out), df)
