"""Runs end exactly when they should: fan-in, fan-out, diamonds, nesting, dynamic stages.

Each test builds a small pipeline, runs it with ``display="none"`` and compares what came out
with plain Python. A run that would hang fails on the module timeout instead.
"""

from __future__ import annotations

import threading
import time

import pytest

import minigun_nb as mg

from ._helpers import assert_conserved

pytestmark = pytest.mark.timeout(30)


def test_fan_in_two_producers_feed_one_stage():
    pipe = mg.Pipeline("fan_in")

    @pipe.producer
    def evens():
        yield from range(0, 100, 2)

    @pipe.producer
    def odds():
        yield from range(1, 100, 2)

    @pipe.processor(workers=3)
    def square(x):
        return x * x

    result = pipe.run(display="none")
    assert sorted(result.outputs) == [x * x for x in range(100)]
    assert result.stats.loc["square", "items_in"] == 100
    assert_conserved(result)


def test_fan_in_producer_joins_midway():
    # p1; a; p2; b  gives  p1 -> a -> b  and  p2 -> b
    pipe = mg.Pipeline("midway")
    pipe.producer(lambda: range(10), name="p1")
    pipe.processor(lambda x: x + 100, name="a")
    pipe.producer(lambda: range(5), name="p2")
    pipe.processor(lambda x: -x, name="b")
    result = pipe.run(display="none")
    expected = [-(x + 100) for x in range(10)] + [-x for x in range(5)]
    assert sorted(result.outputs) == sorted(expected)
    assert_conserved(result)


def test_fan_out_broadcasts_the_same_object_to_every_downstream():
    pipe = mg.Pipeline("broadcast")
    seen: dict[str, list] = {"a": [], "b": []}

    @pipe.producer(to=["a", "b"])
    def gen():
        for i in range(50):
            yield {"i": i}

    @pipe.consumer
    def a(item):
        seen["a"].append(item)

    @pipe.consumer
    def b(item):
        seen["b"].append(item)

    result = pipe.run(display="none")
    assert sorted(d["i"] for d in seen["a"]) == list(range(50))
    by_i = {d["i"]: d for d in seen["b"]}
    assert all(by_i[d["i"]] is d for d in seen["a"])  # the same object, not a copy
    assert result.outputs == []  # consumers that return None emit nothing
    assert result.stats.loc["a", "filtered"] == 50
    assert_conserved(result)


def test_fan_out_with_copy_gives_every_downstream_its_own_copy():
    pipe = mg.Pipeline("copies")
    seen: dict[str, list] = {"a": [], "b": []}

    @pipe.producer(to=["a", "b"], copy=True)
    def gen():
        for i in range(20):
            yield {"i": i, "tags": [i]}

    @pipe.consumer
    def a(item):
        seen["a"].append(item)

    @pipe.consumer
    def b(item):
        item["tags"].append("mutated by b")  # must not leak into a's copy
        seen["b"].append(item)

    pipe.run(display="none")
    a_by_i = {d["i"]: d for d in seen["a"]}
    for d in seen["b"]:
        other = a_by_i[d["i"]]
        assert other is not d and other["tags"] is not d["tags"]
        assert other["tags"] == [d["i"]]


def test_diamond():
    # g(to=[a, b]); a; b; c  gives  g->a, g->b, a->c, b->c
    pipe = mg.Pipeline("diamond")
    pipe.producer(lambda: range(30), name="g", to=["a", "b"])
    pipe.processor(lambda x: ("a", x), name="a", workers=2)
    pipe.processor(lambda x: ("b", x), name="b", workers=2)
    pipe.processor(lambda pair: pair, name="c", workers=3)
    result = pipe.run(display="none")
    assert sorted(result.outputs) == sorted([("a", x) for x in range(30)]
                                            + [("b", x) for x in range(30)])
    assert result.stats.loc["c", "items_in"] == 60
    assert_conserved(result)


def test_nested_pipeline_chains_like_a_stage():
    pipe = mg.Pipeline("outer")

    @pipe.producer
    def gen():
        yield from range(40)

    with pipe.pipeline("inner"):

        @pipe.processor(workers=2)
        def double(x):
            return 2 * x

        with pipe.pipeline("deeper"):

            @pipe.processor
            def inc(x):
                return x + 1

    @pipe.processor
    def neg(x):
        return -x

    result = pipe.run(display="none")
    assert sorted(result.outputs) == sorted(-(2 * x + 1) for x in range(40))
    assert list(result.stats.index) == ["gen", "inner/double", "inner/deeper/inc", "neg"]
    assert result.outputs_by_stage == {"neg": result.outputs}
    assert_conserved(result)


def test_empty_producer_ends_the_run():
    pipe = mg.Pipeline("empty")
    pipe.producer(lambda: [], name="nothing")
    pipe.processor(lambda x: x, name="f", workers=4)
    result = pipe.run(display="none")
    assert result.outputs == [] and result.ok
    assert (result.stats["status"] == "done").all()


def test_two_dynamic_senders_one_slow_lose_nothing():
    """Ruby regression: the await stage ended with the first sender and lost the other's."""
    pipe = mg.Pipeline("senders")
    pipe.producer(lambda: range(20), name="gen", to=["fast", "slow"])

    @pipe.processor
    def fast(x):
        yield mg.to("sink", ("fast", x))

    @pipe.processor
    def slow(x):
        time.sleep(0.005)
        yield mg.to("sink", ("slow", x))

    @pipe.processor(dynamic=True)
    def sink(item):
        return item

    result = pipe.run(display="none")
    assert sorted(result.outputs_by_stage["sink"]) == sorted(
        [("fast", x) for x in range(20)] + [("slow", x) for x in range(20)]
    )
    assert result.errors.empty
    assert_conserved(result)


def test_dynamic_stage_nobody_routes_to_still_ends():
    """Ruby regression: an await stage nobody routes to hung the run."""
    pipe = mg.Pipeline("orphan")
    pipe.producer(lambda: range(5), name="gen")
    pipe.processor(lambda x: x, name="f")
    pipe.processor(lambda x: x, name="orphan", dynamic=True)
    result = pipe.run(display="none")
    assert sorted(result.outputs) == list(range(5))
    assert result.stats.loc["orphan", "items_in"] == 0
    assert result.stats.loc["orphan", "status"] == "done"


def test_two_dynamic_sinks_routing_to_each_other_end_together():
    pipe = mg.Pipeline("pingpong")
    pipe.producer(lambda: [mg.to("ping", 0)], name="serve")

    @pipe.processor(dynamic=True, workers=2)
    def ping(n):
        if n < 20:
            yield mg.to("pong", n + 1)
        yield ("ping", n)

    @pipe.processor(dynamic=True, workers=2)
    def pong(n):
        yield mg.to("ping", n + 1)
        yield ("pong", n)

    result = pipe.run(display="none")
    assert sorted(result.outputs) == sorted(
        [("ping", n) for n in range(0, 21, 2)] + [("pong", n) for n in range(1, 21, 2)]
    )
    assert_conserved(result)


def test_crawler_routing_to_itself_ends():
    pipe = mg.Pipeline("crawler")

    @pipe.producer
    def seeds():
        yield mg.to("crawl", ())

    @pipe.processor(dynamic=True, workers=3, queue_size=4)
    def crawl(path):
        # a tree of fan-out 3 and depth 4: 1 + 3 + 9 + 27 + 81 pages
        if len(path) < 4:
            for child in range(3):
                yield mg.to("crawl", (*path, child))
        yield path

    result = pipe.run(display="none")
    assert len(result.outputs) == 1 + 3 + 9 + 27 + 81
    assert len(set(result.outputs)) == len(result.outputs)
    assert result.stats.loc["crawl", "items_in"] == 121
    assert_conserved(result)


def test_a_draining_stop_ends_an_endless_crawler():
    pipe = mg.Pipeline("endless")
    crawled = threading.Event()

    @pipe.producer
    def seeds():
        yield mg.to("crawl", 0)

    seen = []

    @pipe.processor(dynamic=True, workers=2)
    def crawl(n):
        seen.append(n)
        if len(seen) > 50:
            crawled.set()
        yield mg.to("crawl", n + 1)  # always two more links: never ends by itself
        yield mg.to("crawl", n + 2)
        yield n

    handle = pipe.start(display="none")
    assert crawled.wait(10)
    handle.stop(drain=True)
    result = handle.wait(timeout=10)

    assert result.stopped
    assert len(result.outputs) == result.stats.loc["crawl", "done"] > 50
    assert len(result.cancelled_items) == result.stats.loc["crawl", "cancelled"] > 0
    assert_conserved(result)


def _late_route_pipeline(declare: bool) -> tuple[mg.Pipeline, threading.Event]:
    """``target`` is fed by ``gen1`` only; ``sender`` routes to it once it has finished."""
    target_done = threading.Event()
    pipe = mg.Pipeline("late")
    pipe.producer(lambda: [1, 2], name="gen1")
    pipe.processor(lambda x: ("target", x), name="target",
                   teardown=lambda: target_done.set())
    pipe.producer(lambda: ["late"], name="gen2")

    @pipe.processor(from_="gen2", routes=["target"] if declare else None)
    def sender(x):
        # without routes=, nothing makes target wait for this stage
        target_done.wait(0 if declare else 10)
        yield mg.to("target", x)
        yield ("sender", x)

    return pipe, target_done


def test_dynamic_route_to_a_finished_stage_is_an_error_in_the_sender():
    pipe, target_done = _late_route_pipeline(declare=False)
    result = pipe.run(display="none")
    assert target_done.is_set()
    errors = result.errors
    assert list(errors["stage"]) == ["sender"]
    assert "stage already finished" in errors.loc[0, "message"]
    assert "target" in errors.loc[0, "message"]
    assert errors.loc[0, "item"] == "late"
    assert result.stats.loc["sender", "failed"] == 1
    assert sorted(result.outputs_by_stage["target"]) == [("target", 1), ("target", 2)]
    assert "sender" not in result.outputs_by_stage  # a failed item emits nothing
    assert_conserved(result)


def test_dynamic_route_declared_in_routes_waits_for_the_sender():
    pipe, _ = _late_route_pipeline(declare=True)
    result = pipe.run(display="none")
    assert result.errors.empty
    assert sorted(result.outputs_by_stage["target"], key=repr) == sorted(
        [("target", 1), ("target", 2), ("target", "late")], key=repr)
    assert_conserved(result)


def test_unknown_route_name_is_an_item_error_and_the_run_continues():
    pipe = mg.Pipeline("typo")
    pipe.producer(lambda: range(10), name="gen")

    @pipe.processor(workers=2)
    def route(x):
        if x == 3:
            yield mg.to("nowhere", x)
        yield x

    result = pipe.run(display="none")
    assert sorted(result.outputs) == [x for x in range(10) if x != 3]
    errors = result.errors
    assert list(errors["stage"]) == ["route"] and errors.loc[0, "item"] == 3
    assert "nowhere" in errors.loc[0, "message"]
    assert errors.loc[0, "exc_type"] == "UnknownStageError"
    assert result.ok
    assert_conserved(result)


def test_a_route_to_a_nested_pipeline_without_entry_stage_is_an_item_error():
    # every stage of "archive" is dynamic=True: the pipeline name has nobody to receive items
    pipe = mg.Pipeline("root")
    pipe.producer(lambda: range(6), name="gen")

    @pipe.processor
    def route(x):
        yield mg.to("archive" if x % 2 else "archive/store", x)

    with pipe.pipeline("archive"):
        pipe.processor(lambda x: ("stored", x), name="store", dynamic=True)

    result = pipe.run(display="none")
    assert sorted(result.outputs) == [("stored", 0), ("stored", 2), ("stored", 4)]
    errors = result.errors
    assert sorted(errors["item"]) == [1, 3, 5] and set(errors["stage"]) == {"route"}
    assert set(errors["exc_type"]) == {"RoutingError"}
    assert "'archive' is a nested pipeline with no entry stage" in errors.loc[0, "message"]
    assert "'archive/<stage>'" in errors.loc[0, "message"]
    assert_conserved(result)


def test_a_dynamic_stage_with_to_sends_on():
    pipe = mg.Pipeline("dyn_to")
    pipe.producer(lambda: range(10), name="gen")

    @pipe.processor
    def triage(x):
        yield mg.to("odd", x) if x % 2 else x

    pipe.processor(lambda x: ("odd", x), name="odd", dynamic=True, to="save")
    pipe.processor(lambda x: x, name="save", from_="triage")
    result = pipe.run(display="none")
    assert sorted(result.outputs, key=repr) == sorted(
        [x for x in range(0, 10, 2)] + [("odd", x) for x in range(1, 10, 2)], key=repr)
    assert result.stats.loc["save", "items_in"] == 10
    assert_conserved(result)


def test_a_declared_loop_back_ends_once_every_item_settled():
    """b sends items back upstream to a (routes=["a"]) until they count down to zero."""
    pipe = mg.Pipeline("loop")
    pipe.producer(lambda: [3, 5, 1], name="gen")
    pipe.processor(lambda x: x, name="a", workers=2, queue_size=2)

    @pipe.processor(routes=["a"], workers=2)
    def b(x):
        if x > 0:
            yield mg.to("a", x - 1)
        else:
            yield "landed"

    result = pipe.run(display="none")
    assert result.outputs == ["landed"] * 3
    assert result.stats.loc["a", "items_in"] == 3 + 3 + 5 + 1  # 4 + 6 + 2 visits
    assert_conserved(result)


def test_concurrent_runs_of_one_pipeline_do_not_mix():
    pipe = mg.Pipeline("twice")
    pipe.processor(lambda x: x * 2, name="double", workers=2)
    first = pipe.start(items=range(0, 500), display="none")
    second = pipe.start(items=range(500, 1000), display="none")
    assert sorted(first.wait(timeout=20).outputs) == [2 * x for x in range(500)]
    assert sorted(second.wait(timeout=20).outputs) == [2 * x for x in range(500, 1000)]


def test_an_ambiguous_dynamic_name_is_an_item_error_of_its_public_class():
    pipe = mg.Pipeline("etl")
    pipe.producer(lambda: [1, 2], name="gen")

    @pipe.processor
    def route(x, output):
        output.to("save").emit(x)

    for name in ("load", "other"):
        with pipe.pipeline(name) as sub:
            sub.processor(lambda x: x, name="save", dynamic=True)

    result = pipe.run(display="none")

    assert result.errors["exc_type"].tolist() == ["AmbiguousStageError"] * 2
    assert "etl/load/save" in result.errors["message"][0]
    assert "etl/other/save" in result.errors["message"][0]
    assert_conserved(result)
