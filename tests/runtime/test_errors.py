"""Item errors: collect or raise, retries, retry_on, backoff, timeouts, re-driving failures."""

from __future__ import annotations

import threading

import pytest

import minigun_nb as mg
from minigun_nb.runtime import stagerun

from ._helpers import assert_conserved

pytestmark = pytest.mark.timeout(30)


def one_stage(fn, **options) -> mg.Pipeline:
    return mg.Pipeline([mg.processor(fn, name="f", **options)])


def test_collect_is_the_default_the_run_goes_on():
    def picky(x):
        if x % 4 == 0:
            raise ValueError(f"no {x}")
        return x

    result = one_stage(picky, workers=2).run(items=range(20), display="none")
    assert result.ok
    assert sorted(result.outputs) == [x for x in range(20) if x % 4]
    assert sorted(result.errors["item"]) == [0, 4, 8, 12, 16]
    assert result.stats.loc["f", "failed"] == 5  # Ruby regression: the counter never moved
    assert result.snapshot.totals.failed == 5
    assert_conserved(result)


def test_on_error_raise_stops_the_run_with_a_stage_error():
    after = []
    pipe = mg.Pipeline("strict")
    pipe.after_run(after.append)
    pipe.producer(lambda: range(1000), name="gen")

    with pipe.pipeline("inner"):

        @pipe.processor(on_error="raise")
        def check(x):
            if x == 7:
                raise KeyError("seven")
            return x

    with pytest.raises(mg.StageError) as info:
        pipe.run(display="none")
    err = info.value
    assert err.stage == "inner/check" and err.item == 7
    assert isinstance(err.__cause__, KeyError) and err.__cause__.args == ("seven",)
    assert "KeyError" in err.remote_traceback and "check" in err.remote_traceback
    assert "inner/check" in str(err)
    # after_run still fired once, with the failed result
    assert len(after) == 1 and after[0].ok is False and after[0].status == "failed"
    assert_conserved(after[0])


def test_wait_returns_the_failed_result_that_run_would_raise():
    pipe = mg.Pipeline([mg.processor(lambda x: 1 / x, name="invert", on_error="raise")])

    result = pipe.start(items=[1, 0, 2], display="none").wait()

    assert result.ok is False and result.status == "failed"
    assert isinstance(result.error, mg.StageError) and result.error.stage == "invert"
    assert isinstance(result.error.__cause__, ZeroDivisionError)
    assert pipe.run(items=[1, 2], display="none").error is None


def test_retries_count_and_attempts_column():
    lock = threading.Lock()
    calls: dict[int, int] = {}

    def flaky(x):
        with lock:
            calls[x] = calls.get(x, 0) + 1
            n = calls[x]
        if n <= 2:  # fails twice, then works
            raise ConnectionError(f"try {n}")
        return x

    result = one_stage(flaky, retries=2, workers=2).run(items=range(10), display="none")
    assert sorted(result.outputs) == list(range(10))
    assert result.errors.empty
    stats = result.stats.loc["f"]
    assert (stats.done, stats.failed, stats.retried) == (10, 0, 20)
    assert_conserved(result)


def test_exhausted_retries_record_all_attempts():
    def always(x):
        raise ValueError("never")

    result = one_stage(always, retries=2).run(items=[1, 2], display="none")
    assert list(result.errors["attempts"]) == [3, 3]
    assert result.stats.loc["f", "retried"] == 4
    assert result.stats.loc["f", "failed"] == 2


def test_retry_on_limits_what_is_retried():
    attempts = []

    def wrong_type(x):
        attempts.append(x)
        raise TypeError("not retried")

    result = one_stage(wrong_type, retries=3, retry_on=(ValueError,)).run(items=[1], display="none")
    assert attempts == [1]
    assert list(result.errors["attempts"]) == [1]
    assert result.stats.loc["f", "retried"] == 0


def test_a_retried_generator_does_not_emit_twice():
    seen = set()

    def half_then_fail(x):
        yield ("first", x)
        if x not in seen:
            seen.add(x)
            raise ValueError("once")
        yield ("second", x)

    result = one_stage(half_then_fail, retries=1).run(items=range(5), display="none")
    assert sorted(result.outputs) == sorted((k, x) for k in ("first", "second") for x in range(5))
    assert result.stats.loc["f", "items_out"] == 10


def test_backoff_is_exponential_with_jitter(monkeypatch):
    delays = []
    # the backoff wait (cut short by a cancel of the run) records what it was asked for
    monkeypatch.setattr(stagerun, "_sleep_unless_cancelled",
                        lambda run, seconds: delays.append(seconds))

    def always(x):
        raise ValueError("down")

    result = one_stage(always, retries=3, backoff=0.5).run(items=[1], display="none")
    assert result.stats.loc["f", "retried"] == 3
    assert len(delays) == 3
    for attempt, delay in enumerate(delays, start=1):
        base = 0.5 * 2 ** (attempt - 1)
        assert 0.5 * base <= delay <= 1.5 * base


def test_timeout_records_a_timeout_error_and_abandons_the_stuck_call():
    release = threading.Event()
    returned = threading.Event()

    def sometimes_stuck(x):
        if x == 3:
            release.wait(5)  # "sleeps 5 s"
            returned.set()
        return x

    try:
        result = one_stage(sometimes_stuck, timeout=0.2).run(items=range(6), display="none")
        assert not returned.is_set()  # the run ended while the stuck call was still running
    finally:
        release.set()
    assert sorted(result.outputs) == [0, 1, 2, 4, 5]
    row = result.errors.iloc[0]
    assert (row["item"], row["exc_type"]) == (3, "TimeoutError")
    assert "timeout=0.2" in row["message"]
    assert_conserved(result)


def test_failed_items_can_be_re_driven():
    broken = {3, 5}

    def fragile(x):
        if x in broken:
            raise RuntimeError("flaky backend")
        return x * 10

    pipe = one_stage(fragile)
    first = pipe.run(items=range(8), display="none")
    assert sorted(first.failed_items("f")) == [3, 5]
    assert sorted(first.failed_items()) == [3, 5]
    broken.clear()
    second = pipe.run(items=first.failed_items("f"), display="none")
    assert sorted(second.outputs) == [30, 50]
    assert second.errors.empty


def test_failed_items_by_nested_path_or_name():
    pipe = mg.Pipeline("outer")
    with pipe.pipeline("inner"):
        pipe.processor(lambda x: 1 / x, name="invert")
    result = pipe.run(items=[0, 1, 2], display="none")
    assert result.failed_items("inner/invert") == [0]
    assert result.failed_items("invert") == [0]


def test_a_failing_producer_is_recorded_and_the_rest_drains():
    pipe = mg.Pipeline("broken_source")

    @pipe.producer
    def source():
        yield from range(5)
        raise OSError("disk gone")

    pipe.processor(lambda x: x * 2, name="double", workers=2)
    result = pipe.run(display="none")
    assert sorted(result.outputs) == [0, 2, 4, 6, 8]
    errors = result.errors
    assert list(errors["stage"]) == ["source"]
    assert errors.loc[0, "item"] is None and errors.loc[0, "exc_type"] == "OSError"
    stats = result.stats
    assert stats.loc["source", "status"] == "failed"
    assert stats.loc["source", "failed"] == 1  # the failure counter moves
    assert stats.loc["source", "items_out"] == 5
    assert stats.loc["double", "status"] == "done" and stats.loc["double", "done"] == 5
    assert result.failed_items() == []  # no item to re-drive
    assert_conserved(result)


def test_a_failing_items_iterable_is_recorded():
    def items():
        yield 1
        yield 2
        raise RuntimeError("bad feed")

    result = one_stage(lambda x: x).run(items=items(), display="none")
    assert sorted(result.outputs) == [1, 2]
    assert list(result.errors["exc_type"]) == ["RuntimeError"]


def test_on_error_hook_failing_does_not_break_the_run():
    pipe = one_stage(lambda x: 1 / x)

    @pipe.on_error
    def broken(exc, item, stage):
        raise RuntimeError("hook bug")

    result = pipe.run(items=[0, 1], display="none")
    assert result.outputs == [1.0] and len(result.errors) == 1


def test_setup_failure_is_an_error_row_and_the_run_ends():
    def bad_setup():
        raise ConnectionRefusedError("no db")

    seen = []
    pipe = one_stage(lambda x: x, setup=bad_setup)
    pipe.on_error(lambda exc, item, stage: seen.append((type(exc).__name__, item, stage)))
    result = pipe.run(items=range(5), display="none")  # on_error="collect": returned
    assert "ConnectionRefusedError" in set(result.errors["exc_type"])
    assert result.stats.loc["f", "status"] == "failed"
    assert result.failed_items("f") == []
    assert sorted(result.cancelled_items) == [0, 1, 2, 3, 4]
    # the stage never ran and its items were cancelled without a stop: the run failed
    assert result.status == "failed" and not result.ok and result.error is None
    assert seen and set(seen) == {("ConnectionRefusedError", None, "f")}
    assert_conserved(result)


def test_setup_failure_with_on_error_raise_names_the_setup():
    def bad_setup():
        raise ConnectionRefusedError("no db")

    pipe = one_stage(lambda x: x, setup=bad_setup, on_error="raise")
    with pytest.raises(
        mg.StageError, match=r"setup of stage 'f' failed: ConnectionRefusedError: no db"
    ) as info:
        pipe.run(items=range(5), display="none")
    assert info.value.stage == "f" and info.value.item is None


def test_a_failing_items_iterable_is_an_error_row_and_calls_on_error():
    def items():
        yield 1
        raise OSError("disk gone")

    seen = []
    pipe = one_stage(lambda x: x * 10)
    pipe.on_error(lambda exc, item, stage: seen.append((type(exc).__name__, item, stage)))
    result = pipe.run(items=items(), display="none")
    assert result.outputs == [10]
    assert result.errors["stage"].tolist() == ["<items>"]
    assert seen == [("OSError", None, "<items>")]


def test_timeout_covers_the_iteration_of_a_generator_stage():
    release = threading.Event()

    def slow_stream(x):
        yield (x, "start")
        if x == 1:
            release.wait(5)  # the work happens while the generator is iterated
        yield (x, "end")

    try:
        result = one_stage(slow_stream, timeout=0.2).run(items=range(3), display="none")
    finally:
        release.set()
    assert sorted(result.outputs) == [(0, "end"), (0, "start"), (2, "end"), (2, "start")]
    assert list(result.errors["exc_type"]) == ["TimeoutError"]
    assert_conserved(result)


def test_the_error_table_keeps_the_items_themselves():
    pipe = mg.Pipeline("items")

    @pipe.producer
    def gen():
        yield from (5, 6, (1, 2), [3])
        raise OSError("source gone")

    @pipe.processor
    def f(x):
        if x != 6:
            raise ValueError(x)
        return x

    errors = pipe.run(display="none").errors
    assert errors["item"].dtype == object
    by_stage = {stage: list(group["item"]) for stage, group in errors.groupby("stage")}
    assert by_stage["gen"] == [None] and by_stage["gen"][0] is None  # not NaN
    items = by_stage["f"]
    assert sorted(map(repr, items)) == sorted(map(repr, [5, (1, 2), [3]]))
    assert {type(v) for v in items} == {int, tuple, list}  # not numpy scalars


def test_a_producer_whose_setup_fails_fails_the_run_and_is_not_torn_down():
    torn = []

    def bad_setup():
        raise ConnectionError("no source")

    pipe = mg.Pipeline("src")
    pipe.producer(lambda: range(5), name="gen", setup=bad_setup,
                  teardown=lambda **kw: torn.append(kw))
    pipe.processor(lambda x: x, name="f")
    result = pipe.run(display="none")
    assert result.status == "failed" and not result.ok and result.outputs == []
    assert result.errors["exc_type"].tolist() == ["ConnectionError"]
    assert result.stats.loc["gen", "status"] == "failed"
    assert torn == []  # nothing was set up, so nothing is torn down
    assert_conserved(result)
