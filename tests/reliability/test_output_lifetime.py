"""SPEC §14: ``output`` is valid only during its own call; a timed-out item's abandoned call
can no longer emit anything downstream (issue 15, findings 7 and 8)."""

from __future__ import annotations

import threading

import pytest

import minigun_nb as mg

from ._helpers import assert_conserved

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize("backend", ["thread", "inline"])
@pytest.mark.parametrize("retries", [0, 2])
def test_a_timed_out_call_emits_nothing_when_it_wakes_up(backend, retries):
    release = threading.Event()
    woke = []

    def slow(x, output):
        if x == 1:
            release.wait(10)  # overruns its timeout, then wakes up and emits
            try:
                output.emit(("late", x))
            except RuntimeError as exc:
                woke.append(exc)
            return None
        output.emit(x)
        return None

    def collect(x):
        return x

    pipe = mg.Pipeline([mg.processor(slow, backend=backend, timeout=0.3, retries=retries),
                        mg.processor(collect)])
    handle = pipe.start(items=range(4), display="none")
    result = handle.wait()
    release.set()
    stats = result.stats
    assert sorted(result.outputs) == [0, 2, 3]
    assert list(result.errors["exc_type"]) == ["TimeoutError"]
    assert stats.loc["collect", "items_in"] == stats.loc["slow", "items_out"] == 3
    assert_conserved(result)
    for _ in range(200):  # the abandoned calls wake up: their emissions are refused
        if len(woke) == retries + 1:
            break
        threading.Event().wait(0.05)
    assert len(woke) == retries + 1
    assert all("valid only during its own call" in str(e) for e in woke)


def test_output_used_after_its_call_returned_raises_in_the_caller():
    kept = []

    def work(x, output):
        kept.append(output)
        output.emit(x)

    result = mg.Pipeline([mg.processor(work)]).run(items=[1, 2], display="none")
    assert sorted(result.outputs) == [1, 2]
    for out in kept:
        with pytest.raises(RuntimeError, match="valid only during its own call"):
            out.emit(3)
        with pytest.raises(RuntimeError, match="valid only during its own call"):
            out.to("work").emit(3)
        with pytest.raises(RuntimeError):
            out << 3


def test_output_used_from_another_thread_after_the_call_raises_there():
    errors = []
    started = threading.Event()
    go = threading.Event()

    def work(x, output):
        def later():
            started.set()
            go.wait(5)
            try:
                output.emit(("late", x))
            except RuntimeError as exc:
                errors.append(exc)

        threading.Thread(target=later, daemon=True).start()
        started.wait(5)
        return x

    def collect(x):
        return x

    handle = mg.Pipeline([mg.processor(work), mg.processor(collect)]).start(
        items=[1], display="none")
    result = handle.wait()
    go.set()
    for _ in range(100):
        if errors:
            break
        threading.Event().wait(0.05)
    assert result.outputs == [1]
    assert len(errors) == 1
    assert result.stats.loc["collect", "items_in"] == 1


def test_a_producer_output_kept_after_it_returned_raises():
    kept = []

    def gen(output):
        kept.append(output)
        output.emit(1)

    result = mg.Pipeline([mg.producer(gen), mg.processor(lambda x: x, name="work")]).run(
        display="none")
    assert result.outputs == [1]
    with pytest.raises(RuntimeError, match="valid only during its own call"):
        kept[0].emit(2)
