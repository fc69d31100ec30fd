"""Stats are exact, observers cannot break a run, and the runtime never loads a display."""

from __future__ import annotations

import logging
import math
import subprocess
import sys
import threading
import time

import pytest

import minigun_nb as mg
from minigun_nb.runtime.handle import run as run_with_observers

from ._helpers import assert_conserved

pytestmark = pytest.mark.timeout(30)


def counted_pipeline(**options) -> mg.Pipeline:
    pipe = mg.Pipeline("counted")
    pipe.producer(lambda: range(100), name="gen")
    lock = threading.Lock()
    tries: dict[int, int] = {}

    @pipe.processor(workers=3, retries=1, **options)
    def check(x):
        with lock:
            tries[x] = tries.get(x, 0) + 1
            first = tries[x] == 1
        if x % 10 == 0 and first:
            raise ConnectionError("transient")  # 10 items retried once, then fine
        if x % 25 == 1:
            raise ValueError("bad")  # 4 items fail twice: failed
        return None if x % 2 else x  # odd items are filtered

    @pipe.processor
    def explode(x):
        yield from (x, x)

    return pipe


def test_counts_are_exact():
    result = counted_pipeline().run(display="none")
    stats = result.stats
    check, explode = stats.loc["check"], stats.loc["explode"]
    assert stats.loc["gen", "items_out"] == 100 and stats.loc["gen", "items_in"] == 0
    assert (check.items_in, check.failed, check.retried) == (100, 4, 14)
    # failing: 1, 26, 51, 76 (two odd, two even); done odd items are filtered
    assert check.done == 96 and check.filtered == 48 and check.items_out == 48
    assert (explode.items_in, explode.items_out, explode.filtered) == (48, 96, 0)
    assert len(result.outputs) == 96
    totals = result.snapshot.totals
    assert totals.failed == 4
    assert_conserved(result)


def test_busy_and_latency_percentiles():
    result = counted_pipeline().run(display="none")
    for path, row in result.stats.iterrows():
        assert 0.0 <= row["busy"] <= 1.0, path
        assert row["status"] == "done"
        assert row["elapsed_s"] >= 0 and row["throughput"] >= 0
    check = result.stats.loc["check"]
    assert 0 <= check.p50_ms <= check.p90_ms <= check.p95_ms <= check.p99_ms


def test_latency_untracked_is_missing():
    result = counted_pipeline(track_latency=False).run(display="none")
    check = result.stats.loc["check"]
    assert all(math.isnan(check[c]) for c in ("p50_ms", "p90_ms", "p95_ms", "p99_ms"))
    assert result.snapshot.stage("check").p99_ms is None
    assert not math.isnan(result.stats.loc["explode", "p50_ms"])  # others still tracked


class Exploding:
    def __init__(self) -> None:
        self.events = 0

    def on_event(self, event):
        self.events += 1
        if self.events == 3:
            raise RuntimeError("display bug")


class ExplodingSnapshots:
    def on_snapshot(self, snapshot):
        raise RuntimeError("display bug")


def test_an_observer_that_raises_is_detached_and_the_run_succeeds(caplog):
    bad_events, bad_snapshots = Exploding(), ExplodingSnapshots()
    pipe = mg.Pipeline([mg.processor(lambda x: x, name="same")])
    with caplog.at_level(logging.WARNING, logger="minigun_nb"):
        result = run_with_observers(pipe, items=range(50),
                                    observers=[bad_events, bad_snapshots])
    assert result.ok and sorted(result.outputs) == list(range(50))
    assert bad_events.events == 3  # never called again after raising
    assert sum("detached" in r.getMessage() for r in caplog.records) == 2


def test_an_observer_subscribed_to_a_live_run_that_raises_is_detached():
    gate = threading.Event()
    pipe = mg.Pipeline([mg.processor(lambda x: (gate.wait(10), x)[1], name="wait")])
    handle = pipe.start(items=range(5), display="none")
    bad = ExplodingSnapshots()
    handle._run.collector.subscribe(bad)
    try:
        for _ in range(200):  # the supervisor notifies snapshot observers at ~10 Hz
            if bad not in handle._run.collector.observers:
                break
            time.sleep(0.05)
        assert bad not in handle._run.collector.observers
    finally:
        gate.set()
    assert sorted(handle.wait(timeout=10).outputs) == list(range(5))


def test_text_display_prints_the_summary(capsys):
    pipe = mg.Pipeline([mg.processor(lambda x: x, name="shown")])
    pipe.run(items=[1], display="text")
    assert "shown" in capsys.readouterr().out


@pytest.mark.parametrize("module", ["minigun_nb.runtime.run", "minigun_nb.runtime.handle"])
def test_the_runtime_never_imports_a_display(module):
    code = (
        f"import sys, {module}\n"
        "heavy = ('ipywidgets', 'anywidget', 'IPython', 'tqdm', 'rich')\n"
        "print(','.join(m for m in heavy if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=25)
    assert out.stdout.strip() == ""


def test_a_run_loads_no_display_either():
    code = (
        "import sys, minigun_nb as mg\n"
        "pipe = mg.Pipeline([mg.processor(abs)])\n"
        "assert pipe.run(items=[-1, 2], display='none').outputs\n"
        "heavy = ('ipywidgets', 'anywidget', 'IPython', 'tqdm', 'rich')\n"
        "print(','.join(m for m in heavy if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=25)
    assert out.stdout.strip() == ""


def test_a_producer_reports_the_time_spent_in_its_function_as_busy():
    pipe = mg.Pipeline("slow_source")

    @pipe.producer
    def gen():
        for i in range(15):
            time.sleep(0.01)  # the work of producing: busy, not waiting for room
            yield i

    pipe.consumer(lambda x: None, name="sink")
    stats = pipe.run(display="none").stats
    assert stats.loc["gen", "busy"] > 0.5, stats["busy"]
    assert stats.loc["sink", "busy"] < stats.loc["gen", "busy"]


def test_a_fast_stage_times_its_first_thousand_items_then_samples():
    # the first chunk is a single cold call: latency figures must not rest on it alone
    class Latencies:
        def __init__(self):
            self.by_stage = {}

        def on_event(self, event):
            lat = getattr(event, "latencies", None)
            if lat:
                self.by_stage[event.path] = self.by_stage.get(event.path, 0) + len(lat)

    seen = Latencies()
    pipe = mg.Pipeline([mg.processor(lambda x: x + 1, name="inc")])
    result = run_with_observers(pipe, items=range(20_000), observers=[seen])
    timed = seen.by_stage["inc"]
    assert 1000 <= timed < 20_000 // 2, timed  # enough to mean something, then sampled
    row = result.stats.loc["inc"]
    assert row.p50_ms <= row.p99_ms
