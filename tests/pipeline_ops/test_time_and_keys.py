"""Flushing on time (``timeout=``) and per key (``key=``) (SPEC section 4).

No assertion here depends on the wall clock being tighter than ten times the timeout: the
timeout test proves its point by the *order* of events (the partial batch is delivered while
the producer is still asleep), not by measuring how long the flush took.
"""

from __future__ import annotations

import threading
import time

import pandas as pd
import pytest

import minigun_nb as mg

from ._helpers import assert_conserved, sample_frame

pytestmark = pytest.mark.timeout(60)


def test_timeout_flushes_a_partial_batch_while_the_producer_is_slow():
    events = []  # appended from two threads; list.append is atomic
    pipe = mg.Pipeline("slow")

    @pipe.producer
    def trickle():
        yield 1
        yield 2
        yield 3
        time.sleep(1.0)  # 10x the timeout: the batch must not wait for the next item
        events.append("producer resumed")
        yield 4
        yield 5

    pipe.batch(100, timeout=0.1)

    @pipe.consumer
    def sink(batch):
        events.append(batch)

    result = pipe.run(display="none")

    assert events == [[1, 2, 3], "producer resumed", [4, 5]]
    assert result.outputs == []  # the consumer is terminal but returns None
    assert_conserved(result, "batch", "sink")


def test_timeout_counts_from_the_oldest_item_of_the_batch():
    gate = threading.Event()
    events = []
    pipe = mg.Pipeline("oldest")

    @pipe.producer
    def burst():
        yield "a"
        gate.wait(10)  # until the first batch has been delivered
        events.append("producer resumed")
        yield "b"

    pipe.batch(10, timeout=0.05)

    @pipe.consumer
    def sink(batch):
        events.append(batch)
        gate.set()

    pipe.run(display="none")

    assert events == [["a"], "producer resumed", ["b"]]


def test_timeout_flushes_frame_batches_too():
    first, second = sample_frame(3), sample_frame(2, 3)
    events = []
    pipe = mg.Pipeline("slow_frames")

    @pipe.producer
    def read():
        yield first
        time.sleep(0.5)
        events.append("producer resumed")
        yield second

    pipe.batch(1000, timeout=0.05)

    @pipe.consumer
    def sink(frame):
        events.append(len(frame))

    pipe.run(display="none")

    assert events == [3, "producer resumed", 2]


def test_an_infinite_timeout_means_no_timeout():
    pipe = mg.Pipeline("forever")
    pipe.batch(3, timeout=float("inf"))
    result = pipe.run(items=range(5), display="none")
    assert result.outputs == [[0, 1, 2], [3, 4]]


def test_per_key_batches():
    pipe = mg.Pipeline("keys")
    pipe.batch(2, key=lambda x: x % 3)
    result = pipe.run(items=range(12), display="none")

    batches = result.outputs
    assert sorted(x for b in batches for x in b) == list(range(12))
    assert all(len(b) == 2 for b in batches)
    for b in batches:  # one open batch per key: a batch never mixes keys
        assert len({x % 3 for x in b}) == 1
    by_key = {k: [x for b in batches if b[0] % 3 == k for x in b] for k in range(3)}
    assert by_key == {k: list(range(k, 12, 3)) for k in range(3)}  # order kept per key


def test_per_key_final_partial_batches_are_all_flushed():
    pipe = mg.Pipeline("keys_partial")
    pipe.batch(10, key=lambda word: word[0])
    result = pipe.run(items=["apple", "avocado", "banana", "cherry", "blueberry"], display="none")

    # flushed at end of stream, oldest first
    assert result.outputs == [["apple", "avocado"], ["banana", "blueberry"], ["cherry"]]


def test_per_key_frame_batches():
    pipe = mg.Pipeline("keyed_frames")
    pipe.batch(4, key=lambda df: str(df["tag"].iloc[0]))
    chunks = [pd.DataFrame({"tag": [t, t], "v": [i, i + 1]}) for i, t in enumerate("abab")]
    result = pipe.run(items=chunks, display="none")

    assert [sorted(set(b["tag"])) for b in result.outputs] == [["a"], ["b"]]
    assert [b["v"].tolist() for b in result.outputs] == [[0, 1, 2, 3], [1, 2, 3, 4]]


def test_a_key_function_that_raises_fails_only_that_item():
    pipe = mg.Pipeline("bad_key")
    pipe.batch(4, key=lambda x: 10 // x)  # ZeroDivisionError for 0
    result = pipe.run(items=[1, 0, 1, 1, 1], display="none")

    assert result.outputs == [[1, 1, 1, 1]]
    errors = result.errors
    assert errors["stage"].tolist() == ["batch"]
    assert errors["exc_type"].tolist() == ["ZeroDivisionError"]
    assert result.failed_items("batch") == [0]
    assert_conserved(result, "batch")


def test_timeout_sees_every_item_yielded_before_the_producer_blocks():
    events = []
    pipe = mg.Pipeline("slow5")

    @pipe.producer
    def trickle():
        yield from range(5)
        time.sleep(1.0)
        events.append("producer resumed")
        yield 5

    pipe.batch(100, timeout=0.1)

    @pipe.consumer
    def sink(batch):
        events.append(batch)

    pipe.run(display="none")

    assert events == [[0, 1, 2, 3, 4], "producer resumed", [5]]
