"""SPEC §14: a producer (and the ``items=`` feeder) never holds more than one chunk beyond
its downstream queue (issue 15, finding 13)."""

from __future__ import annotations

import itertools
import threading
import time

import pytest

import minigun_nb as mg

pytestmark = pytest.mark.timeout(60)

QUEUE = 100


def settle(count):
    """Wait until ``count()`` stops moving (the puller is blocked by backpressure)."""
    last = -1
    while count() != last:
        last = count()
        time.sleep(0.3)
    return last


@pytest.mark.parametrize("source", ["producer", "items"])
def test_a_fast_source_into_a_blocked_consumer_reads_ahead_one_chunk_at_most(source):
    pulled = itertools.count()
    seen = [0]
    release = threading.Event()

    def numbers():
        for i in range(100_000):
            seen[0] = next(pulled) + 1
            yield i

    def slow(x):
        release.wait(30)

    stages = [mg.consumer(slow, queue_size=QUEUE)]
    if source == "producer":
        pipe = mg.Pipeline([mg.producer(numbers), *stages])
        handle = pipe.start(display="none")
    else:
        pipe = mg.Pipeline(stages)
        handle = pipe.start(items=numbers(), display="none")
    try:
        held = settle(lambda: seen[0])
    finally:
        release.set()
        handle.stop(drain=False)
        handle.wait()
    # the consumer's queue holds at most QUEUE items plus one chunk (of at most QUEUE), its
    # worker one item; the source at most one chunk more
    assert held <= 2 * QUEUE + 1 + QUEUE + 1, held
