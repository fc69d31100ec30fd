"""What each operator emits, by input shape (SPEC sections 4 and 12 "pandas")."""

from __future__ import annotations

import pandas as pd
import pytest

import minigun_nb as mg

from ._helpers import assert_conserved, sample_frame

pytestmark = pytest.mark.timeout(60)


def people():
    return pd.DataFrame(
        {
            "name": ["ada", "bob", "cy", "di", "ed"],
            "age": [36, 41, 29, 52, 33],
            "score": [1.5, 2.0, 3.25, 4.0, 0.5],
        },
        index=pd.Index([10, 11, 12, 13, 14], name="id"),
    )


def test_batch_of_plain_items_gives_lists():
    pipe = mg.Pipeline("plain")
    pipe.batch(4)
    result = pipe.run(items=range(10), display="none")

    assert result.outputs == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]  # final partial batch flushed
    assert_conserved(result, "batch")


def test_lists_tuples_and_none_are_plain_items_too():
    pipe = mg.Pipeline("plain_shapes")
    pipe.batch(2)
    result = pipe.run(items=[None, [1, 2], (3,)], display="none")

    assert result.outputs == [[None, [1, 2]], [(3,)]]


def test_debatch_gives_rows_as_series_named_by_their_index():
    df = people()
    pipe = mg.Pipeline("rows")
    pipe.debatch()  # rows="series" by default
    result = pipe.run(items=[df], display="none")

    rows = result.outputs
    assert all(isinstance(r, pd.Series) for r in rows)
    assert [r.name for r in rows] == [10, 11, 12, 13, 14]
    assert rows[1].to_dict() == {"name": "bob", "age": 41, "score": 2.0}
    assert type(rows[1]["age"]) is not float  # mixed dtypes: values are never cast


def test_series_rows_batch_back_into_a_frame():
    df = people()
    pipe = mg.Pipeline("series_roundtrip")
    pipe.debatch()
    pipe.batch(2)
    result = pipe.run(items=[df], display="none")

    assert all(isinstance(b, pd.DataFrame) for b in result.outputs)
    assert [len(b) for b in result.outputs] == [2, 2, 1]
    back = pd.concat(result.outputs)
    # values, columns and index are kept; dtypes are re-inferred (here: the same ones)
    pd.testing.assert_frame_equal(back, df, check_names=False)


def test_series_items_from_a_producer_become_a_frame():
    pipe = mg.Pipeline("series")

    @pipe.producer
    def readings():
        for i in range(3):
            yield pd.Series({"sensor": f"s{i}", "value": i * 1.5}, name=f"t{i}")

    pipe.batch(10)
    result = pipe.run(display="none")

    (frame,) = result.outputs
    assert list(frame.index) == ["t0", "t1", "t2"]
    assert list(frame.columns) == ["sensor", "value"]
    assert frame["value"].tolist() == [0.0, 1.5, 3.0]


def test_debatch_rows_dict_gives_dicts_and_drops_the_index():
    df = people()
    pipe = mg.Pipeline("dicts")
    pipe.debatch(rows="dict")
    result = pipe.run(items=[df], display="none")

    assert result.outputs == df.to_dict(orient="records")


def test_dicts_batch_into_a_frame_with_frame_true():
    df = people()
    pipe = mg.Pipeline("dict_roundtrip")
    pipe.debatch(rows="dict")
    pipe.batch(3, frame=True)
    result = pipe.run(items=[df], display="none")

    assert all(isinstance(b, pd.DataFrame) for b in result.outputs)
    back = pd.concat(result.outputs, ignore_index=True)
    pd.testing.assert_frame_equal(back, df.reset_index(drop=True))


def test_dicts_without_frame_true_stay_lists_of_dicts():
    records = [{"a": 1}, {"a": 2}, {"a": 3}]
    pipe = mg.Pipeline("dict_lists")
    pipe.batch(2)
    result = pipe.run(items=records, display="none")

    assert result.outputs == [[{"a": 1}, {"a": 2}], [{"a": 3}]]


def test_debatch_of_lists_and_tuples_gives_their_elements():
    pipe = mg.Pipeline("flatten")
    pipe.debatch()
    result = pipe.run(items=[[1, 2], (3, None), []], display="none")

    assert result.outputs == [1, 2, 3, None]
    stats = result.stats.loc["debatch"]
    assert (stats.done, stats.filtered, stats.items_out) == (3, 1, 4)  # [] emitted nothing


def test_debatch_rows_n_splits_each_frame_on_its_own():
    chunks = [sample_frame(5), sample_frame(3, 5)]
    pipe = mg.Pipeline("split")
    pipe.debatch(rows=2)
    result = pipe.run(items=chunks, display="none")

    assert [len(f) for f in result.outputs] == [2, 2, 1, 2, 1]  # never across frames
    pd.testing.assert_frame_equal(pd.concat(result.outputs), pd.concat(chunks))


def test_standalone_operators_compose():
    df = sample_frame(50)
    pipe = mg.debatch(rows=7) | mg.rebatch(20)
    result = pipe.run(items=[df], display="none")
    pd.testing.assert_frame_equal(pd.concat(result.outputs), df)

    listed = mg.Pipeline([mg.debatch(), mg.batch(3), mg.batch(2)])
    assert [s.name for s in listed.stages] == ["debatch", "batch", "batch_2"]
    result = listed.run(items=[[1, 2, 3, 4, 5, 6, 7]], display="none")
    assert result.outputs == [[[1, 2, 3], [4, 5, 6]], [[7]]]


def test_debatch_of_a_big_frame_to_dicts_keeps_every_row_in_order():
    df = sample_frame(25_000)  # converted a slice at a time, lazily
    pipe = mg.Pipeline("many_dicts")
    pipe.debatch(rows="dict")
    pipe.batch(10_000, frame=True)
    result = pipe.run(items=[df], display="none")

    back = pd.concat(result.outputs, ignore_index=True)
    pd.testing.assert_frame_equal(
        back, df.reset_index(drop=True), check_categorical=False, check_dtype=False
    )
    assert back.to_dict(orient="records") == df.to_dict(orient="records")


def test_debatch_into_a_small_queue_delivers_every_piece_in_order():
    seen = []
    pipe = mg.Pipeline("bounded")
    pipe.debatch(rows=1, queue_size=10)

    @pipe.processor(queue_size=10)
    def slow(row):
        seen.append(row.index[0])
        return None

    df = sample_frame(300)
    result = pipe.run(items=[df], display="none")
    assert seen == list(range(300))  # every one-row frame, in order (backpressure)
    assert result.stats.loc["debatch", "items_out"] == 300
