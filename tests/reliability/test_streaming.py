"""SPEC §14: what a generator yields reaches the next stage within about 100 ms even while
the generator runs on (issue 15, finding 14)."""

from __future__ import annotations

import threading

import pytest

import minigun_nb as mg

from ._helpers import assert_conserved

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize("backend", ["thread", "inline"])
@pytest.mark.parametrize("style", ["yield", "emit"])
def test_a_slow_generator_streams_while_its_item_runs(backend, style):
    seen = threading.Event()
    rounds = []

    if style == "yield":
        def gen(x):
            for k in range(200):
                yield k
                if seen.wait(0.05):  # the consumer already has an output of this item
                    break
            rounds.append(k)
    else:
        def gen(x, output):
            for k in range(200):
                output.emit(k)
                if seen.wait(0.05):
                    break
            rounds.append(k)

    def sink(v):
        seen.set()

    result = mg.Pipeline([mg.processor(gen, backend=backend), mg.consumer(sink)]).run(
        items=[1], display="none")
    assert rounds and rounds[0] < 199, "nothing reached the consumer while the item ran"
    assert result.stats.loc["sink", "items_in"] == rounds[0] + 1
    assert_conserved(result)


def test_a_fast_generator_that_fails_still_leaves_nothing_behind():
    def gen(x):
        yield x
        yield -x
        if x % 2:
            raise ValueError("odd")

    result = mg.Pipeline([mg.processor(gen)]).run(items=range(200), display="none")
    evens = [x for x in range(200) if x % 2 == 0]
    assert sorted(result.outputs) == sorted(v for x in evens for v in (x, -x))
    assert len(result.errors) == 100
    assert_conserved(result)
