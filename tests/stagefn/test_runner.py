"""The per-item step (:func:`run_item`) and the chunk runner of a worker (:class:`PreparedJob`),
driven directly, in this process."""

from __future__ import annotations

import pickle

import pytest

import minigun_nb as mg
from minigun_nb.stagefn.calling import Control, RetryPolicy, retry_delay
from minigun_nb.stagefn.outcome import Job, Unpicklable, load_exception
from minigun_nb.stagefn.runner import Collected, PreparedJob, run_item
from minigun_nb.stagefn.wire import dump_outcome, unpack

pytestmark = pytest.mark.timeout(30)


def _step(fn, item, policy=RetryPolicy(), sleeps=None):
    col = Collected()
    result = run_item(fn, item, 0, col, policy,
                      sleep=(sleeps.append if sleeps is not None else lambda s: None))
    return result, col.out, col.dyn


def test_a_value_a_generator_and_mg_to_are_collected():
    def gen(x):
        yield x
        yield mg.to("side", x * 10)
        yield x + 1

    (attempts, exc, emitted), out, dyn = _step(gen, 1)
    assert (attempts, exc, emitted) == (1, None, True)
    assert out == [1, 2] and dyn == [(0, "side", 10)]
    (_, _, emitted), out, _ = _step(lambda x: None, 1)
    assert not emitted and out == []
    (_, _, emitted), _, dyn = _step(lambda x: mg.to("a", x), 5)
    assert emitted and dyn == [(0, "a", 5)]


def test_a_retried_item_keeps_only_its_last_attempts_emissions():
    calls = []

    def flaky(x):
        calls.append(x)
        yield f"try{len(calls)}"
        if len(calls) < 3:
            raise ValueError("again")

    sleeps: list[float] = []
    (attempts, exc, emitted), out, _ = _step(flaky, 1, RetryPolicy(3, (ValueError,), 0.1),
                                              sleeps)
    assert (attempts, exc, emitted) == (3, None, True)
    assert out == ["try3"]
    assert len(sleeps) == 2 and 0.05 <= sleeps[0] <= 0.15 and 0.1 <= sleeps[1] <= 0.3


def test_an_item_that_keeps_failing_leaves_nothing_behind():
    def bad(x):
        yield "partial"
        raise KeyError(x)

    (attempts, exc, emitted), out, dyn = _step(bad, 7, RetryPolicy(2, (KeyError,)))
    assert attempts == 3 and isinstance(exc, KeyError) and not emitted
    assert out == [] and dyn == []
    # an exception outside retry_on is not retried
    (attempts, exc, _), _, _ = _step(bad, 7, RetryPolicy(2, (ValueError,)))
    assert attempts == 1 and isinstance(exc, KeyError)


def test_the_runtimes_control_signals_pass_through():
    class Stop(Control):
        pass

    def stop(x):
        raise Stop()

    with pytest.raises(Stop):
        _step(stop, 1, RetryPolicy(5))


def test_retry_delay_grows_and_is_off_at_zero():
    assert retry_delay(0, 4) == 0.0
    for attempt in (1, 2, 3):
        d = retry_delay(1.0, attempt)
        assert 0.5 * 2 ** (attempt - 1) <= d <= 1.5 * 2 ** (attempt - 1)


def _job(fn, **kw):
    return Job(token="t", run_token="r", path="s", fn=fn, **kw)


def _prepared(fn, **kw):
    prep = PreparedJob(_job(fn, **kw))
    assert prep.ensure() is None
    return prep


def test_the_fast_and_the_general_loop_agree():
    def f(x):
        if x == 3:
            raise ValueError("three")
        if x % 2:
            return None
        return x

    fast = _prepared(f)
    general = _prepared(f, retries=1, retry_on=(KeyError,))
    assert fast.fast and not general.fast
    a, _ = fast.run(list(range(6)))
    b, _ = general.run(list(range(6)))
    for oc in (a, b):
        assert list(oc.out) == [0, 2, 4]
        assert (oc.done, oc.failed, oc.filtered) == (5, 1, 2)
        assert [e.index for e in oc.errors] == [3]
        assert isinstance(load_exception(oc.errors[0]), ValueError)


def test_output_emissions_count_and_a_failed_attempt_takes_them_back():
    tries = {}

    def f(x, output):
        output.emit(x)
        output.to("audit").emit(-x)
        tries[x] = tries.get(x, 0) + 1
        if x == 1 and tries[x] < 2:
            raise ValueError("once")

    prep = _prepared(f, retries=1)
    oc, ends = prep.run([0, 1])
    assert list(oc.out) == [0, 1] and list(oc.dyn) == [(0, "audit", 0), (1, "audit", -1)]
    assert (oc.done, oc.retried, oc.filtered) == (2, 1, 0)
    assert ends == [1, 2]


def test_a_stand_in_for_an_unpicklable_item_is_that_items_pickling_error():
    prep = _prepared(lambda x: x, retries=3)
    oc, _ = prep.run([1, Unpicklable("no"), 3], maybe_bad=True)
    assert list(oc.out) == [1, 3]
    assert [(e.index, e.exc_type, e.attempts) for e in oc.errors] == [(1, "PicklingError", 1)]


def test_a_result_that_cannot_be_pickled_fails_only_its_item():
    import threading

    prep = _prepared(lambda x: threading.Lock() if x == 1 else x)
    oc, layout = prep.run([0, 1, 2])
    back = unpack(dump_outcome(oc, layout))
    assert list(back.out) == [0, 2]
    assert (back.done, back.failed) == (2, 1)
    assert [(e.index, e.exc_type) for e in back.errors] == [(1, "PicklingError")]
    assert pickle.loads(pickle.dumps(back)) == back


def test_a_streaming_run_hands_segments_to_its_sink():
    import time

    segments = []
    prep = _prepared(lambda x: time.sleep(0.003) or x)
    prep.run(list(range(10)), sink=lambda oc, ends: segments.append(oc))
    assert len(segments) > 1
    assert [x for oc in segments for x in oc.out] == list(range(10))
    assert sum(oc.n for oc in segments) == 10
    assert [oc.start for oc in segments] == sorted(oc.start for oc in segments)


def test_after_a_plain_chunk_untimed_chunks_call_through_map_with_the_same_results():
    """A worker that has seen a whole chunk of plain values calls the next untimed chunks
    through ``map`` (``map_items``): the same outputs, filtered items and error indices as the
    per-item loop; a generator showing up later is still collected, and the worker goes back
    to the per-item loop."""
    import types

    def f(x):
        if x == 3:
            raise ValueError("three")
        if x == 7:
            raise StopIteration  # ends a map early: must still fail only its item
        if x == 9:
            return (v for v in (x, -x))
        if x % 2:
            return None
        return x

    prep = _prepared(f, track=False)
    warm, _ = prep.run([0, 2, 4])
    assert list(warm.out) == [0, 2, 4] and prep.plain
    oc, _ = prep.run(list(range(8)))
    assert list(oc.out) == [0, 2, 4, 6]
    assert (oc.done, oc.failed, oc.filtered) == (6, 2, 2)
    assert [e.index for e in oc.errors] == [3, 7]
    assert prep.plain
    oc, (nones, multi) = prep.run(list(range(8, 12)))
    assert list(oc.out) == [8, 9, -9, 10]
    assert multi == {1: 2} and nones == [3]
    assert not prep.plain  # a generator came back: per item again
    assert not isinstance(oc.out, types.GeneratorType)
