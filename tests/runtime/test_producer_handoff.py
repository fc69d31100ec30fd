"""The producer's hand-off (runtime/producer.Handoff): a generator is pulled in batches that
run in C and shipped from its own thread; a watcher ships what waits while the generator
blocks; a batch is never bigger than the receiver takes at a time (issue 12)."""

from __future__ import annotations

import threading
import time

import pytest

import minigun_nb as mg

from ._helpers import assert_conserved

pytestmark = pytest.mark.timeout(60)

BURST = 3000  # fast enough that the batches grow to full chunks before the pause


@pytest.mark.parametrize("source", ["yield", "emit", "items"])
def test_a_burst_then_a_blocked_generator_ships_the_burst_while_it_blocks(source):
    """The generator yields a burst (its batches grow to whole chunks), then blocks until the
    consumer has seen every item of the burst: the items pulled in the batch that the
    pause interrupts must leave without waiting for the generator."""
    got = []
    all_seen = threading.Event()
    waited = []

    def burst():
        yield from range(BURST)
        waited.append(all_seen.wait(20))  # False: the burst stayed behind the pause
        yield BURST

    def emitter(output):
        for i in range(BURST):
            output.emit(i)
        waited.append(all_seen.wait(20))
        output.emit(BURST)

    def sink(x):
        got.append(x)
        if len(got) == BURST:
            all_seen.set()

    if source == "items":
        pipe = mg.Pipeline([mg.consumer(sink)])
        result = pipe.run(items=burst(), display="none")
    else:
        pipe = mg.Pipeline([mg.producer(burst if source == "yield" else emitter,
                                        name="source"), mg.consumer(sink)])
        result = pipe.run(display="none")
    assert waited == [True], "the burst did not reach the consumer while the source blocked"
    assert got == list(range(BURST + 1))
    assert_conserved(result)


def test_a_fast_generator_before_a_slow_consumer_holds_less_than_a_chunk_of_its_own():
    """SPEC §12 bounds the queue at queue_size plus one chunk; the producer adds only the
    small batches the slow consumer takes at a time, not a chunk of queue_size of its own
    (W6 of bench/bench_workloads.py measures the memory of the same shape)."""
    qs = 100
    lock = threading.Lock()
    counts = {"produced": 0, "consumed": 0, "max_gap": 0}

    def flood():
        for i in range(3000):
            with lock:
                counts["produced"] += 1
                counts["max_gap"] = max(counts["max_gap"],
                                        counts["produced"] - counts["consumed"])
            yield i

    def slow(x):
        time.sleep(0.0005)
        with lock:
            counts["consumed"] += 1

    result = mg.Pipeline([mg.producer(flood), mg.consumer(slow)], queue_size=qs).run(
        display="none")
    assert counts["consumed"] == 3000
    assert_conserved(result)
    # queue (qs) + the chunk a put may add + the consumer's chunk + the producer's batch: the
    # last three are what a worker takes in ~2 ms (a few items here), each far below qs
    assert counts["max_gap"] <= qs + qs // 2, counts


def test_a_stop_ends_a_fast_generator_mid_batch():
    """A stop clears the running batch's pulls: the generator ends before its next item and
    its finally block runs, whatever the batch size had grown to."""
    pulled = [0]
    closed = threading.Event()

    def endless():
        try:
            while True:
                pulled[0] += 1
                yield pulled[0]
        finally:
            closed.set()

    handle = mg.Pipeline([mg.producer(endless), mg.consumer(lambda x: None, name="sink")]
                         ).start(display="none")
    while pulled[0] < 50_000:
        time.sleep(0.01)
    handle.stop()
    result = handle.wait(timeout=30)
    assert closed.is_set()
    assert result.stopped
    assert_conserved(result)
    assert int(result.stats.loc["sink", "done"]) == pulled[0]  # a draining stop: all delivered


@pytest.mark.parametrize("make", ["mg.to", "unpickled", "copied", "output.to"])
def test_a_routed_value_is_routed_however_it_was_made(make, monkeypatch):
    """A producer's batch is searched for ``mg.to`` values only once one was made in this
    process: every way of making one counts (stagefn.output.MADE)."""
    import copy
    import pickle

    from minigun_nb.stagefn import output as output_module

    blob = pickle.dumps(mg.to("b", -1))
    template = mg.to("b", -2)
    monkeypatch.setattr(output_module, "MADE", output_module.MADE)
    output_module.MADE.clear()  # as in a fresh process that never made one

    def source():
        yield 1
        if make == "mg.to":
            yield mg.to("b", -1)
        elif make == "unpickled":
            yield pickle.loads(blob)
        elif make == "copied":
            yield copy.copy(template)._replace(item=-1)
        yield 2

    def emitting(output):
        output.emit(1)
        output.to("b").emit(-1)
        output.emit(2)

    pipe = mg.Pipeline("routed")
    pipe.producer(emitting if make == "output.to" else source, name="src")
    pipe.processor(lambda x: x, name="a")
    pipe.processor(lambda x: x, name="b", dynamic=True)
    result = pipe.run(display="none")
    assert sorted(result.outputs_by_stage.get("b", [])) == [-1]
    assert -1 not in result.outputs_by_stage.get("a", [])
    assert_conserved(result)
    assert output_module.MADE  # the run saw it made


def test_a_generator_that_also_emits_from_another_thread_loses_nothing():
    """``output.emit`` from a thread of the producer's own while its generator yields: the
    end of the source is told by the batch's probe ticket, not by counting the list (which
    the other thread changes), so no full batch is taken for the end (review finding; the
    race that cut the source short showed in some runs of this shape, not in all)."""
    import sys

    n = 200_000
    got = []
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible: the race shows

    def gen(output):
        stop = threading.Event()

        def other():
            while not stop.is_set():
                output.emit(("side", 0))

        t = threading.Thread(target=other)
        t.start()
        try:
            yield from range(n)
        finally:
            stop.set()
            t.join()

    def sink(x):
        if not isinstance(x, tuple):
            got.append(x)

    try:
        result = mg.Pipeline([mg.producer(gen), mg.consumer(sink)]).run(display="none")
    finally:
        sys.setswitchinterval(old)
    assert len(got) == n
    assert result.stats.loc["gen", "status"] == "done"
    assert_conserved(result)


def test_a_generator_emitting_between_two_yields_holds_no_more_than_a_chunk():
    """What ``output.emit`` adds while the generator runs between two yields is shipped (and
    dropped from the hand-off's list) as it goes, not kept until the next yield."""
    held = [0]
    handoffs = []

    def gen(output):
        yield -1
        for i in range(20_000):
            output.emit(i)
            if i % 500 == 0 and handoffs:
                held[0] = max(held[0], len(handoffs[0].queue))
        yield -2

    from minigun_nb.runtime import producer as producer_module

    real = producer_module.Courier.__init__

    def spy(self, st):
        real(self, st)
        handoffs.append(self)

    pipe = mg.Pipeline([mg.producer(gen), mg.consumer(lambda x: None, name="sink")],
                       queue_size=100)
    try:
        producer_module.Courier.__init__ = spy
        result = pipe.run(display="none")
    finally:
        producer_module.Courier.__init__ = real
    assert int(result.stats.loc["sink", "done"]) == 20_002
    assert handoffs and held[0] <= 100, held
