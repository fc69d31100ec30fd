"""``@pipe.accumulator``: a user function over lists of items (SPEC sections 1 and 4).

When the function raises on a batch, every input item of that batch is a failed item with its
own error row; the row's ``item`` is that input item (not the list), so
``result.failed_items(stage)`` re-drives exactly the items of the failed batches, and the
stage's ``failed`` count equals its number of error rows.
"""

from __future__ import annotations

import os
import time

import pytest

import minigun_nb as mg

from ._helpers import assert_conserved

pytestmark = pytest.mark.timeout(60)


def test_accumulator_sums_lists_of_items():
    pipe = mg.Pipeline("sums")

    @pipe.accumulator(size=4)
    def total(items):
        return sum(items)

    result = pipe.run(items=range(10), display="none")

    assert result.outputs == [0 + 1 + 2 + 3, 4 + 5 + 6 + 7, 8 + 9]
    stats = result.stats.loc["total"]
    assert (stats.items_in, stats.done, stats.items_out) == (10, 10, 3)


def test_an_accumulator_that_returns_none_counts_its_items_filtered():
    saved = []
    pipe = mg.Pipeline("sink")

    @pipe.accumulator(size=3)
    def save(rows):
        saved.append(list(rows))  # e.g. one INSERT per batch; nothing to emit

    result = pipe.run(items=range(7), display="none")

    assert saved == [[0, 1, 2], [3, 4, 5], [6]]
    stats = result.stats.loc["save"]
    assert (stats.done, stats.filtered, stats.items_out) == (7, 7, 0)


def test_accumulator_runs_in_the_kernel_process():
    pids = []
    pipe = mg.Pipeline("where")

    @pipe.accumulator(size=2)
    def record(items):
        pids.append(os.getpid())

    pipe.run(items=range(4), display="none")
    assert pids == [os.getpid(), os.getpid()]


def test_accumulator_may_yield_several_outputs():
    pipe = mg.Pipeline("pairs")

    @pipe.accumulator(size=3)
    def pairs(items):
        yield from zip(items, items[1:], strict=False)

    result = pipe.run(items=range(6), display="none")
    assert result.outputs == [(0, 1), (1, 2), (3, 4), (4, 5)]


def test_a_failing_batch_fails_each_of_its_items():
    pipe = mg.Pipeline("failing")

    @pipe.accumulator(size=4)
    def total(items):
        if 13 in items:
            raise ValueError("13 is unlucky")
        return sum(items)

    @pipe.consumer
    def save(n):
        return n

    result = pipe.run(items=range(20), display="none")

    assert sorted(result.outputs) == [6, 22, 38, 70]  # the batch [12..15] is missing
    errors = result.errors
    assert errors["stage"].tolist() == ["total"] * 4
    assert errors["item"].tolist() == [12, 13, 14, 15]  # one row per input item
    assert set(errors["message"]) == {"13 is unlucky"}
    assert result.failed_items("total") == [12, 13, 14, 15]
    stats = result.stats.loc["total"]
    assert (stats.done, stats.failed) == (16, 4)
    assert_conserved(result, "total", "save")


def test_a_failed_batch_emits_nothing_even_what_it_sent_before_raising():
    pipe = mg.Pipeline("partial")

    @pipe.accumulator(size=2)
    def explode(items, output):
        output.emit(("started", items))
        if items == [2, 3]:
            raise RuntimeError("half way")
        output.emit(("done", items))

    result = pipe.run(items=range(4), display="none")

    assert result.outputs == [("started", [0, 1]), ("done", [0, 1])]
    assert result.failed_items("explode") == [2, 3]


def test_accumulator_retries_a_failing_batch():
    calls = []
    pipe = mg.Pipeline("flaky")

    @pipe.accumulator(size=3, retries=2)
    def flaky(items):
        calls.append(list(items))
        if len(calls) < 3:
            raise ConnectionError("try again")
        return sum(items)

    result = pipe.run(items=[1, 2, 3], display="none")

    assert result.outputs == [6] and result.errors.empty
    assert calls == [[1, 2, 3]] * 3


def test_accumulator_timeout_flushes_a_partial_list():
    events = []
    pipe = mg.Pipeline("acc_timeout")

    @pipe.producer
    def slow():
        yield "a"
        time.sleep(0.5)  # 10x the timeout
        events.append("producer resumed")
        yield "b"

    @pipe.accumulator(size=100, timeout=0.05)
    def collect(items):
        events.append(list(items))

    pipe.run(display="none")
    assert events == [["a"], "producer resumed", ["b"]]


def test_accumulator_setup_resources_are_injected():
    torn_down = []
    pipe = mg.Pipeline("resources")

    @pipe.accumulator(
        size=2, setup=lambda: {"offset": 100}, teardown=lambda offset: torn_down.append(offset)
    )
    def shifted(items, offset):
        return [x + offset for x in items]

    result = pipe.run(items=range(3), display="none")
    assert result.outputs == [[100, 101], [102]]
    assert torn_down == [100]


def test_accumulator_whose_setup_fails_records_it_and_the_run_ends():
    pipe = mg.Pipeline("no_setup")

    def broken():
        raise OSError("no database")

    @pipe.accumulator(size=2, setup=broken)
    def save(items):
        return items

    result = pipe.run(items=range(3), display="none")

    assert result.outputs == []
    assert result.errors["exc_type"].tolist() == ["OSError"]
    assert result.failed_items("save") == []  # the row concerns no item
    assert result.stats.loc["save", "status"] == "failed"
    assert not result.ok
    assert_conserved(result, "save")


def test_on_error_raise_stops_the_run_with_a_stage_error():
    pipe = mg.Pipeline("strict")

    @pipe.accumulator(size=2, on_error="raise")
    def total(items):
        raise ValueError("bad batch")

    with pytest.raises(mg.StageError) as info:
        pipe.run(items=range(4), display="none")
    assert info.value.stage == "total"
    assert info.value.item == 0  # the first input item of the failed batch
