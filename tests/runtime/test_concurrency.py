"""``workers=N`` gives N concurrent calls; queues bound memory; ``max_threads`` caps workers.

Concurrency is measured with barriers and counters, never with timings.
"""

from __future__ import annotations

import threading
import time
import warnings

import pytest

import minigun_nb as mg

from ._helpers import MaxConcurrent, assert_conserved

pytestmark = pytest.mark.timeout(30)


@pytest.mark.parametrize("workers", [1, 3, 8])
def test_workers_n_gives_n_concurrent_calls(workers):
    """Ruby regression: thread pools of N ran with ONE thread."""
    barrier = threading.Barrier(workers, timeout=10)
    gauge = MaxConcurrent()

    @mg.processor(workers=workers)
    def meet(x):
        with gauge:
            barrier.wait()  # breaks (an error row) unless N calls are in flight together
            return x

    result = mg.Pipeline([meet]).run(items=range(4 * workers), display="none")
    assert result.errors.empty, result.errors["exc_type"].tolist()
    assert sorted(result.outputs) == list(range(4 * workers))
    assert gauge.max == workers
    assert result.stats.loc["meet", "workers"] == workers


def test_workers_in_a_context_block_and_as_pipeline_default():
    gauge = MaxConcurrent()
    barrier = threading.Barrier(3, timeout=10)

    def meet(x):
        with gauge:
            barrier.wait()
        return x

    pipe = mg.Pipeline("ctx", workers=2)
    with pipe.threads(3):
        pipe.processor(meet, name="meet")
    pipe.processor(lambda x: x, name="after")
    result = pipe.run(items=range(9), display="none")
    assert gauge.max == 3
    assert result.stats.loc["after", "workers"] == 2


def _sample_in_flight(handle, paths, stop):
    peaks = dict.fromkeys(paths, 0)
    while not stop.is_set():
        snap = handle.snapshot
        for p in paths:
            peaks[p] = max(peaks[p], snap.stage(p).in_flight)
        time.sleep(0.001)
    return peaks


def test_backpressure_bound_holds_through_chained_stages():
    """A fast producer feeding a slow consumer through two stages with queue_size=10: items in
    flight per stage never exceed queue_size + one chunk + its workers' chunks, and the
    producer never runs far ahead of the consumer."""
    qs = 10
    lock = threading.Lock()
    counts = {"produced": 0, "consumed": 0, "max_gap": 0}

    pipe = mg.Pipeline("bounded", queue_size=qs)

    @pipe.producer
    def flood():
        for i in range(1500):
            with lock:
                counts["produced"] += 1
                counts["max_gap"] = max(counts["max_gap"],
                                        counts["produced"] - counts["consumed"])
            yield i

    pipe.processor(lambda x: x, name="middle", workers=2)

    @pipe.consumer
    def slow(x):
        time.sleep(0.0002)
        with lock:
            counts["consumed"] += 1

    handle = pipe.start(display="none")
    stop = threading.Event()
    peaks: dict[str, int] = {}
    sampler = threading.Thread(
        target=lambda: peaks.update(_sample_in_flight(handle, ["middle", "slow"], stop)),
        daemon=True)  # a failing wait must not leave pytest waiting for it at exit
    sampler.start()
    try:
        result = handle.wait(timeout=25)
    finally:
        stop.set()
        sampler.join(timeout=10)

    assert counts["consumed"] == 1500
    assert_conserved(result)
    chunk = qs  # a chunk never exceeds the receiving stage's queue_size
    for path, workers in (("middle", 2), ("slow", 1)):
        bound = qs + chunk + workers * chunk
        assert peaks[path] <= bound, (path, peaks[path], bound)
    # the producer's batch (at most a chunk, pulled or waiting for room) + two stages
    # (queue + chunk + workers' chunks each)
    producer = chunk
    assert counts["max_gap"] <= producer + (qs + chunk + 2 * chunk) + (qs + chunk + chunk)
    assert counts["max_gap"] < 150  # nowhere near the 1500 items of the run


def test_max_threads_caps_workers_with_a_warning_per_stage():
    pipe = mg.Pipeline("capped", max_threads=4)
    pipe.producer(lambda: range(50), name="gen")
    pipe.processor(lambda x: x + 1, name="a", workers=8)
    pipe.processor(lambda x: x * 2, name="b", workers=8)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = pipe.run(display="none")
    capacity = [w for w in caught if issubclass(w.category, mg.CapacityWarning)]
    assert len(capacity) == 2
    assert "'a'" in str(capacity[0].message) and "'b'" in str(capacity[1].message)
    assert "max_threads=4" in str(capacity[0].message)
    assert capacity[0].filename == __file__  # points at the user's run() call
    workers = result.stats["workers"]
    assert workers["a"] >= 1 and workers["b"] >= 1
    assert workers["a"] + workers["b"] <= 4
    assert workers["gen"] == 1  # producers are not counted
    assert sorted(result.outputs) == [(x + 1) * 2 for x in range(50)]


def test_max_threads_counts_only_thread_stages_and_uncapped_requests_do_not_warn():
    pipe = mg.Pipeline("fits", max_threads=4)
    pipe.producer(lambda: range(5), name="gen")
    pipe.processor(lambda x: x, name="a", workers=2)
    pipe.processor(lambda x: x, name="b", workers=2)
    pipe.batch(2)
    with warnings.catch_warnings():
        warnings.simplefilter("error", mg.CapacityWarning)
        result = pipe.run(display="none")
    assert sorted(x for batch in result.outputs for x in batch) == list(range(5))
