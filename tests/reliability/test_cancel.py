"""Cancels and stops: only the runtime's own cancel counts items as cancelled; the result is
final when ``wait()`` returns (issue 15, findings 10-12)."""

from __future__ import annotations

import threading

import pytest

import minigun_nb as mg

from ._helpers import assert_conserved

pytestmark = pytest.mark.timeout(60)


def test_a_cancel_during_a_first_attempt_with_retries_left_cancels_the_item():
    entered = threading.Event()
    release = threading.Event()

    def flaky(x):
        if x == 0:
            entered.set()
            release.wait(10)
            raise ValueError("fails after the cancel")
        return x

    pipe = mg.Pipeline([mg.processor(flaky, retries=3, backoff=0.01)])
    handle = pipe.start(items=[0], display="none")
    assert entered.wait(10)
    handle.stop(drain=False)
    release.set()
    result = handle.wait()
    assert result.errors.empty, result.errors[["item", "exc_type", "attempts"]]
    assert result.cancelled_items == [0]
    assert result.stats.loc["flaky", "cancelled"] == 1
    assert result.stats.loc["flaky", "failed"] == 0
    assert_conserved(result)


def test_a_cancel_during_a_retry_backoff_cancels_the_item_without_waiting_it_out():
    failed_once = threading.Event()

    def flaky(x):
        failed_once.set()
        raise ValueError("always")

    pipe = mg.Pipeline([mg.processor(flaky, retries=2, backoff=30)])
    handle = pipe.start(items=[7], display="none")
    assert failed_once.wait(10)
    handle.stop(drain=False)
    result = handle.wait()
    assert result.cancelled_items == [7]
    assert result.errors.empty
    assert_conserved(result)


@pytest.mark.parametrize("style", ["yield", "emit"])
@pytest.mark.parametrize("backend", ["thread", "inline"])
def test_a_cancel_ends_an_endless_generator_or_emit_loop_between_two_yields(style, backend):
    closed = threading.Event()
    running = threading.Event()

    if style == "yield":
        def endless(x):
            try:
                while True:
                    running.set()
                    yield x
            finally:
                closed.set()
    else:
        def endless(x, output):
            try:
                while True:
                    running.set()
                    output.emit(x)
            finally:
                closed.set()

    def sink(x):
        return None

    pipe = mg.Pipeline([mg.processor(endless, backend=backend), mg.consumer(sink)])
    handle = pipe.start(items=[1, 2, 3], display="none")
    assert running.wait(10)
    handle.stop(drain=False)
    result = handle.wait()
    assert closed.is_set()  # the generator's finally ran
    assert result.status == "cancelled"
    stats = result.stats
    assert stats.loc["endless", "cancelled"] == 3  # the running item and the two behind it
    assert stats.loc["endless", "done"] == 0
    assert result.errors.empty
    assert_conserved(result)


def test_the_result_is_final_when_wait_returns_after_a_cancel_with_an_items_iterator():
    release = threading.Event()
    first = threading.Event()

    def items():
        yield 0
        release.wait(10)  # the feeder is inside the user's iterator when the cancel comes
        yield from range(1, 50)

    def work(x):
        first.set()
        return x

    handle = mg.Pipeline([mg.processor(work)]).start(items=items(), display="none")
    assert first.wait(10)
    handle.stop(drain=False)
    threading.Timer(0.3, release.set).start()
    result = handle.wait()
    counted = len(result.cancelled_items)
    release.wait(10)
    threading.Event().wait(0.2)  # a feeder still running would deliver (and cancel) more
    assert len(result.cancelled_items) == counted == int(result.stats["cancelled"].sum())
    assert not [t.name for t in threading.enumerate()
                if t.name.startswith("mg-") and "items" in t.name]
    assert_conserved(result)
