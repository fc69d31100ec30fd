"""Backends mix in one pipeline: thread -> process -> fork -> thread, with fan-out and fan-in,
and give what an all-thread run of the same functions gives."""

from __future__ import annotations

import sys

import cloudpickle
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import minigun_nb as mg

from ._helpers import assert_conserved, assert_no_leftover_processes

pytestmark = pytest.mark.timeout(120)
cloudpickle.register_pickle_by_value(sys.modules[__name__])


def build(items, remote=True, route="broadcast"):
    pipe = mg.Pipeline("mixed")

    def backend(name):
        return name if remote else "thread"

    @pipe.producer
    def source():
        yield from items

    @pipe.processor(backend=backend("process"), workers=2, to=["heavy", "light"], route=route)
    def parse(x):
        if x % 11 == 0:
            raise ValueError(x)
        return None if x % 3 == 0 else x * 2

    @pipe.processor(backend=backend("fork"), workers=2)
    def heavy(x):
        yield x
        yield [x, -x]

    @pipe.processor(workers=2)
    def light(x):
        return (x, "light")

    @pipe.consumer(workers=2)
    def join(item):
        return ("joined", item)

    return pipe


def check_same(items, route="broadcast"):
    got = build(items, True, route).run(display="none")
    ref = build(items, False, route).run(display="none")
    assert sorted(map(repr, got.outputs)) == sorted(map(repr, ref.outputs))
    assert sorted(got.errors["item"]) == sorted(ref.errors["item"])
    cols = ["items_in", "items_out", "done", "failed", "filtered"]
    assert got.stats[cols].equals(ref.stats[cols]), (got.stats[cols], ref.stats[cols])
    assert got.stats["backend"].tolist() == ["thread", "process", "fork", "thread", "thread"]
    assert_conserved(got)
    assert_no_leftover_processes()
    return got


def test_thread_process_fork_thread_with_fan_out_and_fan_in():
    result = check_same(list(range(60)))
    assert result.stats.loc["join", "items_in"] == (
        result.stats.loc["heavy", "items_out"] + result.stats.loc["light", "items_out"]
    )


def test_a_load_balancing_route_out_of_a_process_stage():
    result = build(list(range(40)), True, "round_robin").run(display="none")
    heavy, light = result.stats.loc["heavy", "items_in"], result.stats.loc["light", "items_in"]
    assert heavy + light == result.stats.loc["parse", "items_out"]
    assert abs(heavy - light) <= 1
    assert_conserved(result)


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.integers(-100, 100), max_size=30))
def test_mixed_backends_equal_an_all_thread_run(items):
    check_same(items)


@pytest.mark.parametrize("backend", ["process", "fork"])
def test_a_remote_stage_that_routes_to_itself_ends_when_its_frontier_is_empty(backend):
    pipe = mg.Pipeline("crawl")

    @pipe.producer
    def seeds():
        yield from (3, 5)

    @pipe.processor(backend=backend, workers=2, routes=["crawl"])
    def crawl(depth):
        if depth > 0:
            yield mg.to("crawl", depth - 1)  # back into its own queue, across the boundary
        yield ("visited", depth)

    result = pipe.run(display="none")
    assert sorted(result.outputs) == sorted(("visited", d) for d in [*range(4), *range(6)])
    assert result.stats.loc["crawl", "items_in"] == 10
    assert_conserved(result)
