"""Bad input to operators: clear errors that name the stage, and the run goes on
(SPEC sections 4, 5 and 12). Definition errors are raised before anything runs."""

from __future__ import annotations

import pandas as pd
import pytest

import minigun_nb as mg

from ._helpers import assert_conserved, sample_frame

pytestmark = pytest.mark.timeout(60)


def test_a_frame_with_other_columns_fails_that_frame_only():
    good_a = pd.DataFrame({"x": [1, 2], "y": [0.1, 0.2]})
    odd = pd.DataFrame({"x": [3], "z": ["?"]})
    good_b = pd.DataFrame({"x": [4], "y": [0.4]})
    pipe = mg.Pipeline("columns")
    pipe.batch(100)
    result = pipe.run(items=[good_a, odd, good_b], display="none")

    (out,) = result.outputs  # the open batch is unaffected, the run continues
    pd.testing.assert_frame_equal(out, pd.concat([good_a, good_b]))
    (row,) = result.errors.itertuples()
    assert row.stage == "batch" and row.exc_type == "BatchItemError"
    assert "missing ['y']" in row.message and "extra ['z']" in row.message
    assert row.item is odd
    stats = result.stats.loc["batch"]
    assert (stats.done, stats.failed) == (2, 1)
    assert_conserved(result, "batch")


def test_rebatch_reports_the_columns_too_and_keeps_going():
    pipe = mg.Pipeline("rebatch_columns")
    pipe.rebatch(3)
    frames = [sample_frame(2), sample_frame(2, 2)[["x", "y"]], sample_frame(2, 4)]
    result = pipe.run(items=frames, display="none")

    assert [len(b) for b in result.outputs] == [3, 1]
    assert "missing ['tag']" in result.errors.loc[0, "message"]
    assert result.errors.loc[0, "stage"] == "rebatch"


def test_the_same_columns_in_another_order_are_aligned():
    a = pd.DataFrame({"x": [1], "y": [2]})
    b = pd.DataFrame({"y": [4], "x": [3]})
    pipe = mg.Pipeline("aligned")
    pipe.batch(10)
    result = pipe.run(items=[a, b], display="none")

    assert result.errors.empty
    assert result.outputs[0].to_dict("list") == {"x": [1, 3], "y": [2, 4]}


def test_a_non_frame_item_into_a_frame_batch_is_an_error_row():
    pipe = mg.Pipeline("kinds")
    pipe.batch(100)
    result = pipe.run(items=[sample_frame(3), "not a frame", sample_frame(2, 3)], display="none")

    assert len(result.outputs) == 1 and len(result.outputs[0]) == 5
    (row,) = result.errors.itertuples()
    assert row.stage == "batch" and row.item == "not a frame"
    assert "DataFrame" in row.message and "str" in row.message
    assert_conserved(result, "batch")


def test_rebatch_refuses_items_it_cannot_slice():
    pipe = mg.Pipeline("rebatch_kinds")
    pipe.rebatch(2)
    result = pipe.run(items=[[1, 2, 3], 42, [4]], display="none")

    assert result.outputs == [[1, 2], [3, 4]]
    assert result.failed_items("rebatch") == [42]


def test_debatch_refuses_what_it_cannot_split():
    pipe = mg.Pipeline("debatch_kinds")
    pipe.debatch(rows="dict")
    dup = pd.DataFrame([[1, 2]], columns=["a", "a"])
    result = pipe.run(items=[7, dup, [8]], display="none")

    assert result.outputs == [8]
    assert result.failed_items("debatch") == [7, dup]
    assert "duplicated" in result.errors.loc[1, "message"]
    assert_conserved(result, "debatch")


@pytest.mark.parametrize("size", [0, -5, 2.5, True, None])
def test_invalid_sizes_are_definition_errors_naming_the_stage(size):
    pipe = mg.Pipeline("bad")
    with pytest.raises(mg.DefinitionError, match=r"stage 'batch'.*size="):
        pipe.batch(size)
    with pytest.raises(mg.DefinitionError, match=r"stage 'chunks'.*size="):
        pipe.rebatch(size, name="chunks")
    with pytest.raises(mg.DefinitionError, match=r"stage 'batch'.*size="):
        mg.batch(size)
    with pytest.raises(mg.DefinitionError, match=r"stage 'total'.*size="):

        @pipe.accumulator(size=size)
        def total(items):
            return sum(items)

    assert pipe.stages == []  # nothing was added


@pytest.mark.parametrize("rows", [0, -1, "rows", 1.5])
def test_invalid_debatch_rows_are_definition_errors(rows):
    with pytest.raises(mg.DefinitionError, match=r"stage 'debatch'.*rows="):
        mg.Pipeline("bad").debatch(rows=rows)


def test_a_route_function_that_fails_on_a_batch_fails_its_items():
    pipe = mg.Pipeline("routing")
    pipe.producer(lambda: range(6), name="numbers")

    def pick(batch):
        if 4 in batch:
            raise LookupError("no route for 4")
        return "low" if batch[0] < 2 else "high"

    pipe.batch(2, to=["low", "high"], route=pick)
    pipe.processor(lambda b: ("low", b), name="low", from_="batch")
    pipe.processor(lambda b: ("high", b), name="high", from_="batch")
    result = pipe.run(display="none")

    assert sorted(result.outputs) == [("high", [2, 3]), ("low", [0, 1])]
    assert result.failed_items("batch") == [4, 5]  # the inputs of the batch that failed
    assert_conserved(result, "batch", "low", "high")


def test_conservation_holds_for_every_operator_of_a_messy_run():
    pipe = mg.Pipeline("messy")
    pipe.debatch(rows=3)

    @pipe.processor
    def drop_some(frame):
        if frame.index[0] % 9 == 0:
            raise ValueError("unlucky chunk")
        return frame

    pipe.batch(5)

    @pipe.accumulator(size=2)
    def sizes(frames):
        if len(frames[0]) == 1:
            raise ValueError("too small")
        return [len(f) for f in frames]

    result = pipe.run(items=[sample_frame(40), "junk", sample_frame(20, 40)], display="none")

    assert not result.errors.empty
    assert_conserved(result, "debatch", "drop_some", "batch", "sizes")
    stats = result.stats
    assert stats.loc["debatch", "failed"] == 1  # "junk"
    assert stats.loc["sizes", "failed"] == len(result.failed_items("sizes"))
