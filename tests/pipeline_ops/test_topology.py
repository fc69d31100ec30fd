"""Operators wherever a stage can go: nested pipelines, after fan-in, after an ordered
multi-worker stage, as a dynamic route target (SPEC sections 2 and 4)."""

from __future__ import annotations

import random
import time

import pandas as pd
import pytest

import minigun_nb as mg

from ._helpers import assert_conserved, sample_frame

pytestmark = pytest.mark.timeout(60)


def test_operators_inside_a_nested_pipeline():
    df = sample_frame(90)
    pipe = mg.Pipeline("outer")

    @pipe.producer
    def read():
        yield df

    with pipe.pipeline("chunking"):
        pipe.debatch(rows=8)
        pipe.rebatch(20)

    @pipe.processor
    def count(frame):
        return len(frame)

    assert [tuple(e)[:2] for e in pipe.edges] == [
        ("read", "chunking/debatch"),
        ("chunking/debatch", "chunking/rebatch"),
        ("chunking/rebatch", "count"),
    ]
    result = pipe.run(display="none")

    assert result.outputs == [20, 20, 20, 20, 10]
    assert_conserved(result, "chunking/debatch", "chunking/rebatch", "count")


def test_a_nested_pipeline_of_standalone_operators_added_with_add():
    inner = mg.Pipeline("regroup", [mg.debatch(), mg.batch(3)])
    pipe = mg.Pipeline("outer")

    @pipe.producer
    def lists():
        yield [1, 2]
        yield [3, 4, 5, 6]

    pipe.add(inner)
    result = pipe.run(display="none")
    assert result.outputs == [[1, 2, 3], [4, 5, 6]]
    assert result.outputs_by_stage == {"regroup/batch": [[1, 2, 3], [4, 5, 6]]}


def test_batch_after_fan_in_gets_both_producers():
    pipe = mg.Pipeline("fan_in")

    @pipe.producer
    def evens():
        yield from range(0, 20, 2)

    @pipe.producer
    def odds():
        yield from range(1, 20, 2)

    pipe.batch(6)  # both producers feed the next stage
    result = pipe.run(display="none")

    batches = result.outputs
    assert sorted(x for b in batches for x in b) == list(range(20))
    assert [len(b) for b in batches] == [6, 6, 6, 2]
    for b in batches:  # each producer's items keep their order
        evens_in_b = [x for x in b if x % 2 == 0]
        assert evens_in_b == sorted(evens_in_b)
    assert_conserved(result, "batch")


def test_rebatch_after_fan_in_of_frames():
    left, right = sample_frame(35), sample_frame(45, 1000)
    pipe = mg.Pipeline("fan_in_frames")
    pipe.producer(lambda: [left], name="left")
    pipe.producer(lambda: [right], name="right")
    pipe.rebatch(16)
    result = pipe.run(display="none")

    assert [len(b) for b in result.outputs] == [16] * 5
    combined = pd.concat(result.outputs).sort_index()
    pd.testing.assert_frame_equal(combined, pd.concat([left, right]))


def jitter(item):
    time.sleep(random.random() * 0.002)
    return item


def test_ordered_upstream_with_four_workers_keeps_order_through_batch():
    pipe = mg.Pipeline("ordered")
    pipe.processor(jitter, workers=4, ordered=True, name="slow")
    pipe.batch(7)
    result = pipe.run(items=range(200), display="none")

    assert [x for b in result.outputs for x in b] == list(range(200))
    assert all(len(b) == 7 for b in result.outputs[:-1])


def test_ordered_upstream_with_four_workers_keeps_frames_exact_through_rebatch():
    df = sample_frame(1200)
    pipe = mg.Pipeline("ordered_frames")
    pipe.debatch(rows=30)

    @pipe.processor(workers=4, ordered=True)
    def enrich(chunk):
        time.sleep(random.random() * 0.002)
        return chunk.assign(z=chunk.x * 2)

    pipe.rebatch(100)
    result = pipe.run(items=[df], display="none")

    pd.testing.assert_frame_equal(pd.concat(result.outputs), df.assign(z=df.x * 2))


def test_a_dynamic_batch_stage_flushes_when_its_senders_are_done():
    pipe = mg.Pipeline("dynamic")

    @pipe.producer
    def route():
        for i in range(10):
            yield mg.to("bucket", i)

    pipe.batch(4, name="bucket", dynamic=True)
    handle = pipe.start(display="none")
    result = handle.wait(timeout=20)  # a held partial batch must not keep the run open

    assert result.outputs == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert_conserved(result, "bucket")
