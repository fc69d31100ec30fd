"""Hooks fire exactly once per occasion, in nested pipelines too (Ruby regressions)."""

from __future__ import annotations

import threading
from collections import Counter

import pytest

import minigun_nb as mg

pytestmark = pytest.mark.timeout(30)


class Calls:
    """A thread-safe tally of hook calls."""

    def __init__(self) -> None:
        self.counts: Counter = Counter()
        self.args: dict[str, list] = {}
        self._lock = threading.Lock()

    def __call__(self, name: str, *args) -> None:
        with self._lock:
            self.counts[name] += 1
            self.args.setdefault(name, []).append(args)


def test_run_hooks_fire_once_per_run():
    calls = Calls()
    pipe = mg.Pipeline("hooked")
    pipe.before_run(lambda: calls("before"))
    pipe.after_run(lambda result: calls("after", result))
    pipe.producer(lambda: range(10), name="gen")
    pipe.processor(lambda x: x, name="f", workers=3)
    first = pipe.run(display="none")
    assert calls.counts == {"before": 1, "after": 1}
    assert calls.args["after"][0][0] is first  # after_run receives the RunResult
    pipe.run(display="none")
    assert calls.counts == {"before": 2, "after": 2}


def test_after_run_fires_after_a_failed_run_with_ok_false():
    results = []
    pipe = mg.Pipeline([mg.processor(lambda x: 1 / x, name="invert", on_error="raise")])
    pipe.after_run(lambda r: results.append((r, r.error)))  # the error as the hook saw it
    with pytest.raises(mg.StageError) as info:
        pipe.run(items=[1, 0, 2], display="none")
    assert len(results) == 1
    result, error_seen = results[0]
    assert result.ok is False and result.status == "failed"
    assert error_seen is info.value and error_seen.stage == "invert"
    assert result.stats.loc["invert", "status"] == "failed"  # the stage that failed the run


def test_on_error_receives_exception_item_and_stage_path():
    calls = Calls()
    pipe = mg.Pipeline("outer")
    pipe.on_error(lambda exc, item, stage: calls("outer", type(exc).__name__, item, stage))
    with pipe.pipeline("inner") as inner:
        inner.on_error(lambda exc, item, stage: calls("inner", item, stage))
        pipe.processor(lambda x: 10 // x, name="divide", workers=2)
    result = pipe.run(items=[0, 1, 0, 2], display="none")
    assert len(result.errors) == 2
    assert calls.counts == {"outer": 2, "inner": 2}
    assert calls.args["outer"] == [("ZeroDivisionError", 0, "inner/divide")] * 2
    assert calls.args["inner"] == [(0, "inner/divide")] * 2


def test_setup_runs_once_per_worker_and_its_resources_are_injected_by_name():
    calls = Calls()

    class Conn:
        def __init__(self) -> None:
            self.used = 0

    def setup():
        conn = Conn()
        calls("setup", conn)
        return {"conn": conn, "unused": "ignored by fetch"}

    def teardown(conn, unused):
        calls("teardown", conn, unused)

    @mg.processor(workers=3, setup=setup, teardown=teardown)
    def fetch(x, conn):
        conn.used += 1
        return (x, id(conn))

    result = mg.Pipeline([fetch]).run(items=range(30), display="none")
    assert calls.counts == {"setup": 3, "teardown": 3}
    conns = [args[0] for args in calls.args["setup"]]
    assert len({id(c) for c in conns}) == 3  # one resource per worker
    assert {args[0] for args in calls.args["teardown"]} == set(conns)
    assert all(args[1] == "ignored by fetch" for args in calls.args["teardown"])
    assert sum(c.used for c in conns) == 30
    assert {conn_id for _, conn_id in result.outputs} <= {id(c) for c in conns}


def test_hooks_of_nested_pipelines_and_their_stages_fire_exactly_once():
    """Ruby regression: hooks fired twice; stage hooks inside nested pipelines never fired."""
    calls = Calls()
    pipe = mg.Pipeline("outer")
    pipe.before_run(lambda: calls("outer.before"))
    pipe.after_run(lambda r: calls("outer.after"))
    pipe.producer(lambda: range(12), name="gen")
    with pipe.pipeline("inner") as inner:
        inner.before_run(lambda: calls("inner.before"))
        inner.after_run(lambda r: calls("inner.after"))
        pipe.processor(lambda x: x, name="a", workers=2,
                       setup=lambda: calls("a.setup"), teardown=lambda: calls("a.teardown"))
        with pipe.pipeline("deeper") as deeper:
            deeper.before_run(lambda: calls("deeper.before"))
            pipe.processor(lambda x: x, name="b",
                           setup=lambda: calls("b.setup"), teardown=lambda: calls("b.teardown"))
    result = pipe.run(display="none")
    assert sorted(result.outputs) == list(range(12))
    assert calls.counts == {
        "outer.before": 1, "outer.after": 1, "inner.before": 1, "inner.after": 1,
        "deeper.before": 1, "a.setup": 2, "a.teardown": 2, "b.setup": 1, "b.teardown": 1,
    }


def test_a_stateful_stage_object_uses_its_own_setup_and_teardown():
    events = Calls()

    class Enrich:
        def setup(self):
            events("setup")
            return {"table": {1: "one", 2: "two"}}

        def teardown(self, table):
            events("teardown", len(table))

        def __call__(self, x, table):
            return table.get(x, "?")

    pipe = mg.Pipeline("stateful")
    pipe.processor(Enrich(), name="enrich", workers=2)
    result = pipe.run(items=[1, 2, 3], display="none")
    assert sorted(result.outputs) == ["?", "one", "two"]
    assert events.counts == {"setup": 2, "teardown": 2}


def test_producer_setup_and_teardown_fire_once():
    calls = Calls()
    pipe = mg.Pipeline("p")
    pipe.producer(lambda n: range(n), name="gen", setup=lambda: (calls("setup"), {"n": 4})[1],
                  teardown=lambda n: calls("teardown", n))
    pipe.processor(lambda x: x, name="f")
    assert sorted(pipe.run(display="none").outputs) == [0, 1, 2, 3]
    assert calls.counts == {"setup": 1, "teardown": 1}
    assert calls.args["teardown"] == [(4,)]
