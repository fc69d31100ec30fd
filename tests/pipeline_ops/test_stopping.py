"""What an operator holds when the stream ends or the run is stopped (SPEC sections 3 and 12).

End of stream and a draining stop flush the held partial batch (its items are ``done``); a
cancel (``stop(drain=False)``) counts them ``cancelled`` and lists them in
``result.cancelled_items``.
"""

from __future__ import annotations

import threading
import time

import pandas as pd
import pytest

import minigun_nb as mg

from ._helpers import assert_conserved, sample_frame, wait_until

pytestmark = pytest.mark.timeout(60)


def endless_pipeline(name, released):
    """A producer that counts until the run stops, into a batch too big to ever fill."""
    pipe = mg.Pipeline(name)

    @pipe.producer
    def ticks():
        i = 0
        while not released.is_set():
            yield i
            i += 1
            time.sleep(0.005)

    pipe.batch(1_000_000)
    return pipe


def batch_stats(handle):
    return handle.stats.loc["batch"]


def test_the_final_partial_batch_is_flushed_at_end_of_stream():
    pipe = mg.Pipeline("tail")
    pipe.rebatch(4)
    result = pipe.run(items=[sample_frame(10)], display="none")

    assert [len(b) for b in result.outputs] == [4, 4, 2]


def test_a_draining_stop_emits_the_held_partial_batch():
    released = threading.Event()
    pipe = endless_pipeline("drain", released)
    handle = pipe.start(display="none")
    try:
        wait_until(lambda: batch_stats(handle).items_in >= 5)
        handle.stop(drain=True)
    finally:
        released.set()
    result = handle.wait(timeout=20)

    assert result.stopped and result.ok
    (held,) = result.outputs  # flushed although it never reached size
    assert held == list(range(len(held))) and len(held) >= 5
    stats = result.stats.loc["batch"]
    assert (stats.done, stats.cancelled) == (len(held), 0)
    assert result.cancelled_items == []
    assert_conserved(result, "batch")


def test_a_cancelling_stop_counts_the_held_items_cancelled():
    released = threading.Event()
    pipe = endless_pipeline("cancel", released)
    handle = pipe.start(display="none")
    try:
        wait_until(lambda: batch_stats(handle).items_in >= 5)
        handle.stop(drain=False)
    finally:
        released.set()
    result = handle.wait(timeout=20)

    assert result.stopped and not result.ok
    assert result.outputs == []
    stats = result.stats.loc["batch"]
    assert stats.done == 0 and stats.cancelled == stats.items_in >= 5
    assert sorted(result.cancelled_items) == list(range(stats.items_in))
    assert_conserved(result, "batch")


def test_a_cancelled_frame_rebatch_lists_the_frames_it_held():
    released = threading.Event()
    pipe = mg.Pipeline("cancel_frames")
    chunks = [sample_frame(10, 10 * i) for i in range(3)]

    @pipe.producer
    def read():
        yield from chunks
        yield None  # a marker on which the gate below keeps the stream open

    @pipe.processor(chunk_size=1)  # one item per chunk: each frame is passed on at once
    def gate(item):
        if item is None:
            released.wait(10)
            return None
        return item

    pipe.rebatch(1000)
    handle = pipe.start(display="none")
    try:
        wait_until(lambda: handle.stats.loc["rebatch"].items_in == 3)
        handle.stop(drain=False)
    finally:
        released.set()
    result = handle.wait(timeout=20)

    assert result.stats.loc["rebatch"].cancelled == 3
    held = [x for x in result.cancelled_items if isinstance(x, pd.DataFrame)]
    pd.testing.assert_frame_equal(pd.concat(held), pd.concat(chunks))
    assert_conserved(result, "gate", "rebatch")
