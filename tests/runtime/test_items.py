"""The thread side's per-item step: stagefn's ``run_item`` with an Emitter (or an accumulator's
sink in front of one) as its sink, driven directly over a fake stage (no threads, no run)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

import minigun_nb as mg
from minigun_nb.runtime.emitter import Emitter, RoutingError
from minigun_nb.runtime.items import AccumulatorSink, RunRetryPolicy, wait_backoff
from minigun_nb.stagefn.calling import ItemCancelled
from minigun_nb.stagefn.runner import run_item

pytestmark = pytest.mark.timeout(30)


class FakeRun:
    def __init__(self) -> None:
        self.cancelled = False
        self.collected: list[Any] = []
        self.routed: list[tuple[str, Any]] = []
        self.stages: dict[str, Any] = {}

    def collect(self, st: Any, items: list[Any]) -> None:
        self.collected.extend(items)

    def resolve(self, st: Any, name: str) -> tuple[str, ...]:
        if name not in self.stages:
            raise mg.UnknownStageError(name)
        return (name,)

    def deliver(self, st: Any, target: Any, items: list[Any], dynamic: bool = False) -> bool:
        if target.finished:
            return False
        self.routed.extend((target.path, x) for x in items)
        return True


def emitter(max_put: int = 1000) -> tuple[FakeRun, Emitter]:
    run = FakeRun()
    run.stages["sink"] = SimpleNamespace(path="sink", finished=False, channel=object())
    run.stages["done"] = SimpleNamespace(path="done", finished=True, channel=object())
    st = SimpleNamespace(run=run, targets=(), max_put=max_put, path="f",
                         spec=SimpleNamespace(options={"route": "broadcast", "copy": False}))
    return run, Emitter(st)  # type: ignore[arg-type]


def policy(run: FakeRun, retries: int = 0, cancel_ends: bool = True) -> RunRetryPolicy:
    return RunRetryPolicy(retries, (Exception,), 0.0, run, cancel_ends)


def test_a_generator_failing_half_way_leaves_nothing_and_its_retry_emits_once():
    run, em = emitter()
    sink = em  # a thread worker's Emitter is its item sink
    calls = []

    def half_then_fail(x):
        calls.append(x)
        yield x
        if len(calls) == 1:
            raise ValueError("once")
        yield mg.to("sink", -x)
        yield x + 1

    attempts, exc, emitted = run_item(half_then_fail, 5, 0, sink, policy(run, retries=1))
    assert (attempts, exc, emitted) == (2, None, True)
    assert sink.attempts == 2
    assert em.out == [5, 6] and em.count == 3  # the failed attempt's 5 was taken back
    assert run.routed == [("sink", -5)]  # mg.to delivered once the item succeeded
    em.flush()
    assert run.collected == [5, 6]


def test_none_is_filtered_and_a_value_is_emitted():
    run, em = emitter()
    sink = em  # a thread worker's Emitter is its item sink
    assert run_item(lambda x: None, 1, 0, sink, policy(run)) == (1, None, False)
    assert run_item(lambda x: x * 2, 1, 1, sink, policy(run)) == (1, None, True)
    assert em.out == [2]


def test_a_routing_failure_is_never_retried():
    run, em = emitter()
    sink = em  # a thread worker's Emitter is its item sink
    calls = []

    def to_finished(x):
        calls.append(x)
        yield x
        yield mg.to("done", x)

    attempts, exc, _ = run_item(to_finished, 1, 0, sink, policy(run, retries=3))
    assert attempts == 1 and isinstance(exc, RoutingError) and calls == [1]
    assert em.out == [] and em.count == 0 and em.dyn == []
    attempts, exc, _ = run_item(lambda x: mg.to("nowhere", x), 1, 0, sink, policy(run, 3))
    assert attempts == 1 and isinstance(exc, mg.UnknownStageError)


def test_a_cancel_ends_the_attempts_of_a_worker_item_but_only_fails_an_accumulator_batch():
    run, em = emitter()
    run.cancelled = True

    def boom(x):
        raise ValueError("down")

    with pytest.raises(ItemCancelled):
        run_item(boom, 1, 0, em, policy(run, retries=2))
    attempts, exc, _ = run_item(boom, [1], 0, AccumulatorSink(em),
                                policy(run, retries=2, cancel_ends=False))
    assert attempts == 1 and isinstance(exc, ValueError)


def test_a_cancel_during_the_backoff_cancels_the_item():
    run, em = emitter()
    sink = em  # a thread worker's Emitter is its item sink
    waits = []

    def backoff(seconds: float) -> None:
        waits.append(seconds)
        run.cancelled = True
        wait_backoff(run, seconds)

    def fail_after_emitting(x):
        yield x
        raise ValueError("down")

    slow = RunRetryPolicy(2, (Exception,), 10.0, run)
    with pytest.raises(ItemCancelled):
        run_item(fail_after_emitting, 1, 0, sink, slow, sleep=backoff)
    assert len(waits) == 1 and 5.0 <= waits[0] <= 15.0
    assert sink.attempts == 1 and em.out == [] and em.count == 0


def test_a_cancel_between_two_yields_closes_the_generator():
    run, em = emitter(max_put=1)
    em.hold = em.item_hold = 1
    sink = em  # a thread worker's Emitter is its item sink
    closed = []

    def endless(x):
        try:
            while True:
                yield x
        finally:
            closed.append(True)

    run.cancelled = True
    em.nudge(cancel=True)
    with pytest.raises(ItemCancelled):
        run_item(endless, 1, 0, sink, policy(run))
    assert closed == [True]


def test_the_accumulator_sink_routes_first_and_keeps_nothing_of_a_failed_batch():
    run, em = emitter()
    sink = AccumulatorSink(em)
    calls = []

    def total(batch, output):
        calls.append(batch)
        output.emit("early")
        if len(calls) == 1:
            raise ValueError("once")
        yield sum(batch)
        yield mg.to("sink", len(batch))

    from minigun_nb.stagefn.calling import bind
    from minigun_nb.stagefn.output import Output

    call = bind(total, {}, Output(sink.emit, sink.send), item_param=True)
    attempts, exc, emitted = run_item(call, [1, 2, 3], 0, sink, policy(run, retries=1))
    assert (attempts, exc, emitted, sink.emitted) == (2, None, True, 3)
    assert run.routed == [("sink", 3)]
    assert em.out == ["early", 6]

    run2, em2 = emitter()
    sink2 = AccumulatorSink(em2)

    def routes_nowhere(batch):
        return mg.to("done", batch)

    attempts, exc, _ = run_item(routes_nowhere, [1], 0, sink2, policy(run2, retries=2))
    assert attempts == 1 and isinstance(exc, RoutingError)
    assert em2.out == [] and run2.routed == []


def test_run_item_goes_on_from_a_first_attempt_the_caller_ran():
    run, em = emitter()
    calls = []

    def second_time_lucky(x):
        calls.append(x)
        return x * 10

    # the thread loop ran attempt 1 itself and it raised: run_item decides and retries
    attempts, exc, emitted = run_item(second_time_lucky, 4, 0, em, policy(run, retries=1),
                                      failed=ValueError("first"))
    assert (attempts, exc, emitted, calls, em.out) == (2, None, True, [4], [40])
    attempts, exc, _ = run_item(second_time_lucky, 4, 0, em, policy(run, retries=0),
                                failed=KeyError("first"))
    assert attempts == 1 and isinstance(exc, KeyError) and calls == [4]
