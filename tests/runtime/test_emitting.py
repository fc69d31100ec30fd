"""How stage functions emit, and how fan-out policies share items between downstreams."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter

import pytest

import minigun_nb as mg

from ._helpers import assert_conserved

pytestmark = pytest.mark.timeout(30)


def run_one(fn, items, **options):
    """Run ``fn`` as the only stage of a pipeline over ``items``."""
    pipe = mg.Pipeline([mg.processor(fn, name="f", **options)])
    result = pipe.run(items=items, display="none")
    assert_conserved(result)
    return result


def test_return_value_is_emitted_and_none_means_nothing():
    result = run_one(lambda x: x * 10 if x % 2 else None, range(10))
    assert sorted(result.outputs) == [10, 30, 50, 70, 90]
    stats = result.stats.loc["f"]
    assert (stats.done, stats.filtered, stats.items_out) == (10, 5, 5)


def test_a_generator_emits_zero_to_n_items():
    def repeat(n):
        yield from [n] * n

    result = run_one(repeat, [0, 1, 2, 3])
    assert sorted(result.outputs) == [1, 2, 2, 3, 3, 3]
    assert result.stats.loc["f", "filtered"] == 1  # 0 yields nothing


def test_output_emit_and_shift():
    def fn(x, output):
        output.emit(x)
        output << -x << x * 100

    result = run_one(fn, [1, 2])
    assert sorted(result.outputs) == [-2, -1, 1, 2, 100, 200]
    assert result.stats.loc["f", "items_out"] == 6


def test_lists_tuples_and_none_inside_them_pass_untouched():
    values = [[1, 2], (3, None), [], [None], (), {"k": None}]
    result = run_one(lambda i: values[i], range(len(values)))
    assert sorted(map(repr, result.outputs)) == sorted(map(repr, values))  # not flattened


def test_none_yielded_or_emitted_explicitly_is_an_item():
    def fn(x, output):
        output.emit(None)
        yield None

    result = run_one(fn, [1, 2])
    assert result.outputs == [None] * 4


def test_producer_returning_a_list_emits_its_elements_and_a_string_is_one_item():
    seen = []
    pipe = mg.Pipeline("p")
    pipe.producer(lambda: [[1, 2], "ab", None], name="gen")
    pipe.consumer(lambda x: seen.append(x), name="seen")
    result = pipe.run(display="none")
    assert sorted(map(repr, seen)) == ["'ab'", "None", "[1, 2]"]
    assert result.stats.loc["gen", "items_out"] == 3
    one = mg.Pipeline("q")
    one.producer(lambda: "abc", name="gen")
    assert one.run(display="none").outputs == ["abc"]


def _split_pipeline(style: str) -> mg.Pipeline:
    """gen -> split, which sends small numbers on and big ones to `big` by name."""
    pipe = mg.Pipeline(f"split_{style}")
    pipe.producer(lambda: range(20), name="gen")

    if style == "yield":
        def split(x):
            yield mg.to("big", x) if x >= 10 else x
    else:
        def split(x, output):
            if x >= 10:
                output.to("big").emit(x)
            else:
                output.emit(x)

    pipe.processor(split, name="split")
    pipe.processor(lambda x: ("small", x), name="small")
    pipe.processor(lambda x: ("big", x), name="big", dynamic=True)
    return pipe


@pytest.mark.parametrize("style", ["yield", "output"])
def test_dynamic_routing_by_name(style):
    result = _split_pipeline(style).run(display="none")
    assert sorted(result.outputs_by_stage["small"]) == [("small", x) for x in range(10)]
    assert sorted(result.outputs_by_stage["big"]) == [("big", x) for x in range(10, 20)]
    assert result.stats.loc["split", "items_out"] == 20  # dynamic emissions count too
    assert_conserved(result)


def test_output_to_shift_operator():
    def fn(x, output):
        output.to("other") << x << x + 1

    pipe = mg.Pipeline("shift")
    pipe.processor(fn, name="f")
    pipe.processor(lambda x: x, name="other", dynamic=True)
    result = pipe.run(items=[10], display="none")
    assert sorted(result.outputs_by_stage["other"]) == [10, 11]


def _nested_target_pipeline() -> mg.Pipeline:
    pipe = mg.Pipeline("outer")
    pipe.producer(lambda: range(12), name="gen")

    @pipe.processor
    def router(x):
        if x % 3 == 0:
            yield mg.to("inner", x)  # a pipeline name: its entry stage(s)
        elif x % 3 == 1:
            yield mg.to("last", x)  # a stage inside the nested pipeline, found by name
        else:
            yield mg.to("outer/inner/last", x)  # a full path always resolves

    with pipe.pipeline("inner"):
        pipe.processor(lambda x: ("first", x), name="first")
        pipe.processor(lambda x: ("last", x), name="last")
    return pipe


def test_dynamic_routing_into_a_nested_pipeline_and_to_a_pipeline_name():
    result = _nested_target_pipeline().run(display="none")
    expected = []
    for x in range(12):
        expected.append(("last", ("first", x)) if x % 3 == 0 else ("last", x))
    assert sorted(result.outputs, key=repr) == sorted(expected, key=repr)
    assert result.stats.loc["inner/first", "items_in"] == 4
    assert result.stats.loc["inner/last", "items_in"] == 12
    assert_conserved(result)


def _policy_pipeline(route, n=400, slow_a=None, release=None, split=None):
    pipe = mg.Pipeline("policy")
    pipe.producer(lambda: range(n), name="gen")
    teardown = (lambda: release.set()) if release is not None else None
    pipe.processor(split or (lambda x: x), name="split", to=["a", "b"], route=route, workers=1,
                   teardown=teardown)
    pipe.processor(slow_a or (lambda x: x), name="a")
    pipe.processor(lambda x: x, name="b")
    return pipe


def test_round_robin_alternates_per_item():
    result = _policy_pipeline("round_robin").run(display="none")
    by = result.outputs_by_stage
    assert len(by["a"]) == len(by["b"]) == 200
    assert sorted(by["a"]) == list(range(0, 400, 2))  # one upstream worker: exact alternation
    assert_conserved(result)


def test_weighted_route_splits_exactly_three_to_one():
    result = _policy_pipeline({"a": 3, "b": 1}).run(display="none")
    assert len(result.outputs_by_stage["a"]) == 300
    assert len(result.outputs_by_stage["b"]) == 100
    assert sorted(result.outputs_by_stage["a"] + result.outputs_by_stage["b"]) == list(range(400))


def test_least_loaded_avoids_a_stuck_downstream():
    release = threading.Event()

    def stuck(x):
        release.wait(10)  # holds its first item until the router has routed everything
        return x

    def split(x):
        time.sleep(0.0005)  # lets `b` run between items (it would otherwise wait for the GIL)
        return x

    result = _policy_pipeline("least_loaded", n=200, slow_a=stuck, release=release,
                              split=split).run(display="none")
    a, b = result.outputs_by_stage["a"], result.outputs_by_stage["b"]
    assert sorted(a + b) == list(range(200))
    assert len(b) > 4 * len(a), (len(a), len(b))
    assert_conserved(result)


def test_callable_route_picks_by_content():
    result = _policy_pipeline(lambda x: "a" if x % 3 == 0 else "b", n=30).run(display="none")
    assert sorted(result.outputs_by_stage["a"]) == list(range(0, 30, 3))
    assert len(result.outputs_by_stage["b"]) == 20


def test_callable_route_to_an_unknown_stage_is_an_item_error():
    result = _policy_pipeline(lambda x: "zzz" if x == 5 else "a", n=10).run(display="none")
    assert sorted(result.outputs_by_stage["a"]) == [x for x in range(10) if x != 5]
    assert list(result.errors["item"]) == [5] and list(result.errors["stage"]) == ["split"]


def test_ordered_keeps_input_order_with_four_workers():
    rng = random.Random(7)
    delays = [rng.random() * 0.004 for _ in range(150)]

    @mg.processor(workers=4, ordered=True)
    def jitter(i):
        time.sleep(delays[i])
        return i

    result = mg.Pipeline([jitter]).run(items=range(150), display="none")
    assert result.outputs == list(range(150))


def test_ordered_generator_stage_keeps_order_of_each_items_outputs():
    @mg.processor(workers=3, ordered=True)
    def pairs(i):
        time.sleep(0.002 * (i % 3))
        yield (i, "a")
        yield (i, "b")

    result = mg.Pipeline([pairs]).run(items=range(60), display="none")
    assert result.outputs == [(i, s) for i in range(60) for s in "ab"]


def test_broadcast_items_out_counts_once_per_emission():
    pipe = mg.Pipeline("count")
    pipe.producer(lambda: range(7), name="gen", to=["a", "b", "c"])
    for name in "abc":
        pipe.processor(lambda x: x, name=name)
    result = pipe.run(display="none")
    assert result.stats.loc["gen", "items_out"] == 7
    assert Counter(result.outputs) == Counter({x: 3 for x in range(7)})


def test_a_producer_can_emit_and_route_through_output():
    pipe = mg.Pipeline("out_producer")

    @pipe.producer
    def gen(output):
        for i in range(3):
            output.emit(i)
            output.to("side").emit(-i)

    pipe.processor(lambda x: x, name="f")
    pipe.processor(lambda x: ("side", x), name="side", dynamic=True)
    result = pipe.run(display="none")
    assert sorted(result.outputs_by_stage["f"]) == [0, 1, 2]
    assert sorted(result.outputs_by_stage["side"]) == [("side", -2), ("side", -1), ("side", 0)]
    assert result.stats.loc["gen", "items_out"] == 6
    assert_conserved(result)


def test_a_slow_producer_hands_each_item_over_at_once():
    """A producer polling a source with ``output`` delivers what it has at once."""
    received = [threading.Event() for _ in range(3)]
    handed_over = []
    pipe = mg.Pipeline("poller")

    @pipe.producer
    def poll(output):
        for i in range(3):
            output.emit(i)
            handed_over.append(received[i].wait(5))  # the consumer got it meanwhile

    pipe.consumer(lambda i: received[i].set(), name="take")
    pipe.run(display="none")
    assert handed_over == [True, True, True]


@pytest.mark.parametrize("route", ["round_robin", {"a": 3, "b": 1}, "least_loaded",
                                   lambda x: "a" if x < 10 else "b"])
def test_a_producer_with_a_load_balancing_route_loses_nothing(route):
    pipe = mg.Pipeline("balanced_source")
    pipe.producer(lambda: range(40), name="gen", to=["a", "b"], route=route)
    pipe.processor(lambda x: ("a", x), name="a")
    pipe.processor(lambda x: ("b", x), name="b")
    result = pipe.run(display="none")
    assert sorted(x for _, x in result.outputs) == list(range(40))
    a = result.stats.loc["a", "items_in"]
    if route == "round_robin":
        assert a == 20
    elif isinstance(route, dict):
        assert a == 30
    elif callable(route):
        assert a == 10
    assert_conserved(result)


@pytest.mark.parametrize("track_latency", [False, True])
def test_the_chunk_fast_path_keeps_every_kind_of_result_and_error_in_place(track_latency):
    # track_latency=False: every chunk takes the map-based path; True: mostly the timed loop
    def mixed(x):
        if x % 97 == 0:
            raise ValueError(x)
        if x % 5 == 0:
            return None  # filtered
        if x % 7 == 0:
            return (v for v in (x, -x))  # a generator object from a plain function
        if x % 11 == 0:
            return mg.to("side", x)
        if x % 13 == 0:
            return [x, x]  # a list is one item
        return x

    pipe = mg.Pipeline("mixed", track_latency=track_latency)
    pipe.producer(lambda: range(20_000), name="gen")
    pipe.processor(mixed, name="work", routes=["side"])
    pipe.consumer(lambda x: ("main", x), name="main")
    pipe.consumer(lambda x: ("side", x), name="side", dynamic=True)
    result = pipe.run(display="none")

    expected_main, expected_side, failed, filtered = [], [], [], 0
    for x in range(20_000):
        if x % 97 == 0:
            failed.append(x)
        elif x % 5 == 0:
            filtered += 1
        elif x % 7 == 0:
            expected_main += [("main", x), ("main", -x)]
        elif x % 11 == 0:
            expected_side.append(("side", x))
        elif x % 13 == 0:
            expected_main.append(("main", [x, x]))
        else:
            expected_main.append(("main", x))
    assert sorted(result.outputs_by_stage["main"], key=repr) == sorted(expected_main, key=repr)
    assert sorted(result.outputs_by_stage["side"]) == sorted(expected_side)
    assert sorted(result.errors["item"]) == failed
    assert set(result.errors["exc_type"]) == {"ValueError"}
    work = result.stats.loc["work"]
    assert (work.failed, work.filtered) == (len(failed), filtered)
    assert work.items_out == len(expected_main) + len(expected_side)
    assert_conserved(result)


@pytest.mark.parametrize("track_latency", [False, True])
def test_a_function_raising_stop_iteration_fails_only_that_item(track_latency):
    def f(x):
        if x % 500 == 3:
            return next(iter([]))  # a bare next() on an exhausted iterator
        return x

    pipe = mg.Pipeline([mg.processor(f, name="f")], track_latency=track_latency)
    result = pipe.run(items=range(5000), display="none")
    assert sorted(result.outputs) == [x for x in range(5000) if x % 500 != 3]
    assert sorted(result.errors["item"]) == list(range(3, 5000, 500))
    assert set(result.errors["exc_type"]) == {"StopIteration"}
    assert_conserved(result)


@pytest.mark.parametrize("track_latency", [False, True])
def test_a_returned_generator_runs_before_the_next_call(track_latency):
    # a lazy generator over per-worker state (a DB cursor, a file) must be consumed before
    # the next call reuses that state
    state = {"rows": []}

    def query(x):
        state["rows"] = [x, x + 1]  # the "cursor" the next call overwrites

        def fetch():
            yield from state["rows"]  # read when iterated, like a cursor

        return fetch()

    pipe = mg.Pipeline([mg.processor(query, name="query")], track_latency=track_latency)
    result = pipe.run(items=range(0, 4000, 10), display="none")
    assert sorted(result.outputs) == sorted(v for x in range(0, 4000, 10) for v in (x, x + 1))
    assert result.stats.loc["query", "filtered"] == 0


@pytest.mark.parametrize("track_latency", [False, True])
def test_a_returned_generator_failing_half_way_takes_back_what_it_yielded(track_latency):
    def parts(x):
        def gen():
            for k in range(3):
                if x % 100 == 1 and k == 2:
                    raise ValueError(x)
                yield (x, k)
        return gen()

    pipe = mg.Pipeline([mg.processor(parts, name="parts")], track_latency=track_latency)
    result = pipe.run(items=range(2000), display="none")
    assert sorted(result.outputs) == [(x, k) for x in range(2000) if x % 100 != 1
                                      for k in range(3)]
    assert result.stats.loc["parts", "items_out"] == len(result.outputs)
    assert sorted(result.errors["item"]) == list(range(1, 2000, 100))
    assert_conserved(result)


@pytest.mark.parametrize("track_latency", [False, True])
def test_a_filtering_stage_on_the_chunk_fast_path_keeps_order_counts_and_errors(track_latency):
    # no generator and no mg.to: after its first chunk the stage takes the map-based path,
    # whose results are values, None (filtered) and failed calls
    def keep_odd(x):
        if x % 101 == 0:
            raise ValueError(x)
        return x if x % 2 else None

    pipe = mg.Pipeline("filtering", track_latency=track_latency)
    pipe.producer(lambda: range(30_000), name="gen")
    pipe.processor(keep_odd, name="odd")
    pipe.consumer(lambda x: None, name="drop")  # a consumer: every result is None
    pipe.processor(lambda x: x, name="echo", from_="odd")
    result = pipe.run(display="none")

    failed = [x for x in range(30_000) if x % 101 == 0]
    kept = [x for x in range(30_000) if x % 101 and x % 2]
    assert result.outputs_by_stage["echo"] == kept  # one worker each: order kept
    assert sorted(result.errors["item"]) == failed
    odd = result.stats.loc["odd"]
    assert (odd.done, odd.failed, odd.filtered) == (30_000 - len(failed), len(failed),
                                                    30_000 - len(failed) - len(kept))
    drop = result.stats.loc["drop"]
    assert (drop.done, drop.failed, drop.items_out) == (len(kept), 0, 0)
    assert_conserved(result)


@pytest.mark.parametrize("shape", ["generator function", "returned generator", "output"])
def test_a_full_buffer_never_leaves_with_part_of_an_item_that_then_fails(shape):
    # item 0 emits nothing (the first chunk is one item); items 1 and 2 then share a chunk:
    # 1 emits 600, 2 emits 600 and fails. The buffer passes 1000 (a full chunk) inside item
    # 2, but item 2 alone emitted fewer than that: nothing of it may leave.
    def rows(x):
        for k in range(0 if x == 0 else 600):
            yield (x, k)
        if x == 2:
            raise ValueError("half-way")

    if shape == "generator function":
        fn = rows
    elif shape == "returned generator":
        def fn(x):
            return rows(x)
    else:
        def fn(x, output):
            for v in rows(x):
                output.emit(v)

    pipe = mg.Pipeline([mg.processor(fn, name="rows")], max_outputs=None)
    for _ in range(5):
        result = pipe.run(items=[0, 1, 2], display="none")
        assert sorted(result.outputs) == [(1, k) for k in range(600)]
        assert list(result.errors["item"]) == [2]
        assert_conserved(result)
