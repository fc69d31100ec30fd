"""Runs: RunResult, RunHandle, stopping (drain and cancel), Ctrl-C, locking, re-running."""

from __future__ import annotations

import _thread
import itertools
import json
import threading
import time

import pandas as pd
import pytest

import minigun_nb as mg
from minigun_nb.observe.events import ItemsCancelled, RunStarted
from minigun_nb.runtime.handle import run as run_with_observers

from ._helpers import assert_conserved

pytestmark = pytest.mark.timeout(30)

STATS_COLUMNS = [
    "kind", "backend", "workers", "status", "items_in", "items_out", "done", "filtered",
    "failed", "cancelled", "retried", "in_flight", "queue_depth", "queue_size", "busy",
    "throughput", "p50_ms", "p90_ms", "p95_ms", "p99_ms", "started", "finished", "elapsed_s",
]
ERROR_COLUMNS = ["stage", "item", "item_repr", "exc_type", "message", "traceback", "attempts",
                 "worker", "time"]


def etl() -> mg.Pipeline:
    pipe = mg.Pipeline("etl")

    @pipe.producer
    def numbers():
        yield from range(20)

    @pipe.processor(workers=2)
    def parse(x):
        if x == 13:
            raise ValueError("unlucky")
        return {"x": x, "square": x * x}

    @pipe.processor
    def keep_even(row):
        return row if row["x"] % 2 == 0 else None

    return pipe


# -- RunResult ---------------------------------------------------------------------------


def test_run_returns_a_result_with_outputs_and_frames():
    result = etl().run(display="none")
    expected = [{"x": x, "square": x * x} for x in range(0, 20, 2)]
    assert sorted(result.outputs, key=lambda r: r["x"]) == expected
    assert list(result.outputs_by_stage) == ["keep_even"]
    frame = result.to_frame().sort_values("x").reset_index(drop=True)
    assert frame.equals(pd.DataFrame(expected))
    assert result.ok and not result.stopped and result.status == "done"


def test_to_frame_of_plain_items_is_one_output_column():
    result = mg.Pipeline([mg.processor(lambda x: x * 2, name="double")]).run(
        items=[1, 2], display="none")
    assert sorted(result.to_frame()["output"]) == [2, 4]


def test_stats_and_errors_have_exactly_the_spec_columns():
    result = etl().run(display="none")
    assert list(result.stats.columns) == STATS_COLUMNS
    assert list(result.stats.index) == ["numbers", "parse", "keep_even"]
    assert list(result.errors.columns) == ERROR_COLUMNS
    row = result.errors.iloc[0]
    assert (row["stage"], row["item"], row["item_repr"]) == ("parse", 13, "13")
    assert (row["exc_type"], row["message"], row["attempts"]) == ("ValueError", "unlucky", 1)
    assert "raise ValueError" in row["traceback"]
    assert "pid=" in row["worker"]
    assert isinstance(row["time"], pd.Timestamp)
    empty = mg.Pipeline([mg.processor(abs)]).run(items=[1], display="none").errors
    assert list(empty.columns) == ERROR_COLUMNS and empty.empty


def test_summary_and_json():
    result = etl().run(display="none")
    text = result.summary()
    assert isinstance(text, str)
    for path in ("numbers", "parse", "keep_even"):
        assert path in text
    assert "1 error" in text
    data = json.loads(result.to_json())
    assert data["status"] == "done" and data["ok"] is True
    assert data["errors"][0]["stage"] == "parse"
    assert "parse" in json.dumps(data)
    assert "RunResult" in repr(result)


def test_bottleneck_and_hint_name_the_slow_stage():
    pipe = mg.Pipeline("slowpoke")
    pipe.producer(lambda: range(60), name="gen")
    pipe.processor(lambda x: x, name="fast")

    @pipe.processor(queue_size=5)
    def slow(x):
        time.sleep(0.002)
        return x

    result = pipe.run(display="none")
    assert result.bottleneck == "slow"
    assert "`slow` is the bottleneck" in result.hint
    assert "workers=2" in result.hint


def test_items_given_as_a_dataframe_travel_in_row_chunks():
    df = pd.DataFrame({"a": range(2500), "b": [str(i) for i in range(2500)]})
    result = mg.Pipeline([mg.processor(lambda frame: frame, name="same")]).run(
        items=df, display="none")
    assert all(isinstance(chunk, pd.DataFrame) for chunk in result.outputs)
    assert result.to_frame().sort_index().equals(df)


def test_max_outputs_caps_what_is_kept():
    pipe = mg.Pipeline([mg.processor(lambda x: x, name="same")], max_outputs=10)
    result = pipe.run(items=range(100), display="none")
    assert len(result.outputs) == 10 and result.outputs_dropped == 90
    assert result.stats.loc["same", "items_out"] == 100


# -- RunHandle ---------------------------------------------------------------------------


def gated_pipeline(gate: threading.Event, entered: threading.Event, n=100, workers=2):
    pipe = mg.Pipeline("gated")
    pipe.producer(lambda: range(n), name="gen")

    @pipe.processor(workers=workers)
    def work(x):
        entered.set()
        gate.wait(10)
        return x

    pipe.processor(lambda x: x, name="after")
    return pipe


def test_start_returns_a_handle_with_live_stats():
    gate, entered = threading.Event(), threading.Event()
    handle = gated_pipeline(gate, entered).start(display="none")
    try:
        assert entered.wait(10)
        assert not handle.done
        with pytest.raises(TimeoutError):  # result() waits like a future; here, in vain
            handle.result(timeout=0.1)
        live = handle.stats
        assert list(live.columns) == STATS_COLUMNS
        assert live.loc["work", "status"] == "running"
        deadline = time.monotonic() + 10
        while handle.stats.loc["work", "items_in"] < 100 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert handle.stats.loc["work", "in_flight"] == 100  # queued or held, none done
    finally:
        gate.set()
    result = handle.wait(timeout=10)
    assert handle.done and handle.result() is result
    assert sorted(result.outputs) == list(range(100))
    assert_conserved(result)


def test_stop_drain_lets_in_flight_items_finish():
    lock = threading.Lock()
    started, finished = [], []
    producer_closed = threading.Event()

    pipe = mg.Pipeline("endless")

    @pipe.producer
    def forever():
        try:
            yield from itertools.count()
        finally:
            producer_closed.set()

    @pipe.processor(workers=3, queue_size=30)
    def work(x):
        with lock:
            started.append(x)
        time.sleep(0.001)
        with lock:
            finished.append(x)
        return x

    handle = pipe.start(display="none")
    while True:
        with lock:
            if len(finished) >= 50:
                break
        time.sleep(0.001)
    handle.stop()  # drain=True
    result = handle.wait(timeout=20)
    assert result.stopped and result.status == "stopped" and result.ok
    assert producer_closed.is_set()  # the generator's finally ran
    assert sorted(started) == sorted(finished)  # every item that started finished
    assert sorted(result.outputs) == sorted(finished)
    stats = result.stats.loc["work"]
    assert stats.cancelled == 0 and stats.done == stats.items_in == len(finished)
    assert result.stats.loc["forever", "status"] == "stopped"
    assert_conserved(result)


def test_items_feeder_reads_ahead_no_more_than_the_entry_queue_and_stops_on_a_drain():
    pulled = itertools.count(1)
    last = [0]

    def endless():
        for i in itertools.count():
            last[0] = next(pulled)
            yield i

    seen = threading.Event()

    @mg.processor(queue_size=10)
    def slow(x):
        if x >= 30:
            seen.set()
        time.sleep(0.005)
        return x

    handle = mg.Pipeline([slow]).start(items=endless(), display="none")
    assert seen.wait(20)
    pulled_at_stop = last[0]
    ahead = pulled_at_stop - handle.stats.loc["slow", "done"]
    handle.stop()
    result = handle.wait(timeout=20)
    # the queue (up to queue_size plus one chunk: 20), a chunk being delivered (10), the
    # hand-off (10) and the item in the worker's hands; not 1000 items
    assert ahead <= 41, ahead
    # after the stop: the feeder sees it at the next item it pulls (plus a hand-off's worth
    # if room freed before the stop reached it)
    assert result.stats.loc["slow", "items_in"] == last[0] <= pulled_at_stop + 11, (
        pulled_at_stop, last[0])
    assert result.outputs == list(range(last[0])) and result.stopped
    assert_conserved(result)


def test_stop_without_drain_cancels_and_loses_nothing():
    gate, entered = threading.Event(), threading.Event()
    handle = gated_pipeline(gate, entered, n=100, workers=2).start(display="none")
    assert entered.wait(10)
    deadline = time.monotonic() + 10
    while handle.stats.loc["work", "items_in"] < 100 and time.monotonic() < deadline:
        time.sleep(0.01)
    handle.stop(drain=False)
    gate.set()
    result = handle.wait(timeout=10)
    assert result.stopped and not result.ok and result.status == "cancelled"
    work = result.stats.loc["work"]
    assert work.items_in == 100
    assert work.cancelled > 0
    assert work.done + work.failed + work.cancelled == work.items_in
    assert_conserved(result)
    # every item is accounted for: output, or cancelled somewhere on the way
    assert sorted(result.outputs + result.cancelled_items) == list(range(100))


def test_a_cancel_while_a_producer_still_pushes_leaves_no_queue_depth():
    @mg.producer
    def endless():
        yield from itertools.count()

    @mg.processor(workers=2, queue_size=50)
    def work(x):
        time.sleep(0.002)
        return x

    handle = (endless | work).start(display="none")
    deadline = time.monotonic() + 10
    while handle.stats.loc["work", "done"] < 20 and time.monotonic() < deadline:
        time.sleep(0.01)
    handle.stop(drain=False)
    result = handle.wait(timeout=10)
    assert result.status == "cancelled" and result.stats.loc["work", "cancelled"] > 0
    assert_conserved(result)  # queue_depth 0 too: items put after the cancel left the queue


def test_second_run_after_a_cancel_works():
    gate, entered = threading.Event(), threading.Event()
    pipe = gated_pipeline(gate, entered, n=10)
    handle = pipe.start(display="none")
    assert entered.wait(10)
    handle.stop(drain=False)
    gate.set()
    handle.wait(timeout=10)
    result = pipe.run(display="none")
    assert sorted(result.outputs) == list(range(10))


# -- Ctrl-C ------------------------------------------------------------------------------


class _CancelSeen:
    def __init__(self) -> None:
        self.event = threading.Event()

    def on_event(self, event):
        if isinstance(event, ItemsCancelled):
            self.event.set()


def _interruptible(gate, entered, producer_closed):
    pipe = mg.Pipeline("interrupted")

    @pipe.producer
    def forever():
        try:
            for i in itertools.count():
                time.sleep(0.001)  # never blocked on a full queue, so it sees the stop soon
                yield i
        finally:
            producer_closed.set()

    @pipe.processor
    def work(x):
        entered.set()
        gate.wait(10)
        return x

    return pipe


def test_keyboard_interrupt_drains_and_returns_the_partial_result():
    gate, entered, closed = threading.Event(), threading.Event(), threading.Event()
    pipe = _interruptible(gate, entered, closed)

    def interrupter():
        entered.wait(10)  # run() is blocked: the stage holds an item until the gate opens
        _thread.interrupt_main()
        closed.wait(10)  # the drain has begun: the producer was closed
        gate.set()

    threading.Thread(target=interrupter, daemon=True).start()
    result = pipe.run(display="none")
    assert result.stopped and result.status == "stopped"
    work = result.stats.loc["work"]
    assert work.cancelled == 0 and work.done == work.items_in > 0  # the queue drained
    assert sorted(result.outputs) == list(range(work.done))
    assert_conserved(result)


def test_second_keyboard_interrupt_cancels_and_raises():
    gate, entered, closed = threading.Event(), threading.Event(), threading.Event()
    pipe = _interruptible(gate, entered, closed)
    seen = _CancelSeen()
    results = []
    pipe.after_run(results.append)

    def interrupter():
        entered.wait(10)
        _thread.interrupt_main()  # first: drain (the gate stays shut, so the drain waits)
        closed.wait(10)
        _thread.interrupt_main()  # second: cancel
        seen.event.wait(10)
        gate.set()

    threading.Thread(target=interrupter, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        run_with_observers(pipe, observers=[seen])
    assert len(results) == 1  # after_run still fired once, with the cancelled result
    result = results[0]
    assert result.status == "cancelled" and result.stopped
    assert result.stats.loc["work", "cancelled"] > 0
    assert_conserved(result)
    produced = result.stats.loc["forever", "items_out"]
    assert sorted(result.outputs + result.cancelled_items) == list(range(produced))


class _InterruptOnStart:
    """Presses Ctrl-C from inside run.start() (RunStarted is published by the main thread)."""

    def on_event(self, event):
        if isinstance(event, RunStarted):
            _thread.interrupt_main()


def test_keyboard_interrupt_while_the_run_starts_drains_it():
    gate, entered, closed = threading.Event(), threading.Event(), threading.Event()
    pipe = _interruptible(gate, entered, closed)
    gate.set()
    result = run_with_observers(pipe, observers=[_InterruptOnStart()])
    assert closed.is_set()
    assert result.stopped and result.status == "stopped"
    assert_conserved(result)


def test_keyboard_interrupt_while_start_returns_drains_and_raises():
    gate, entered, closed = threading.Event(), threading.Event(), threading.Event()
    pipe = _interruptible(gate, entered, closed)
    gate.set()
    results = []
    pipe.after_run(results.append)
    from minigun_nb.runtime.handle import start

    with pytest.raises(KeyboardInterrupt):
        start(pipe, observers=[_InterruptOnStart()])
    assert closed.wait(10)
    deadline = time.monotonic() + 10
    while not results and time.monotonic() < deadline:
        time.sleep(0.01)
    assert results and results[0].status == "stopped"
    assert pipe._running == 0


# -- definitions and re-runs -------------------------------------------------------------


def test_definition_is_locked_while_running():
    gate, entered = threading.Event(), threading.Event()
    pipe = gated_pipeline(gate, entered, n=3)
    with pipe.pipeline("inner") as inner:
        pipe.processor(lambda x: x, name="nested")
    handle = pipe.start(display="none")
    try:
        assert entered.wait(10)
        with pytest.raises(mg.PipelineRunningError):
            pipe.processor(lambda x: x, name="late")
        with pytest.raises(mg.PipelineRunningError):
            inner.processor(lambda x: x, name="late")
        with pytest.raises(mg.PipelineRunningError):
            pipe.before_run(lambda: None)
    finally:
        gate.set()
    handle.wait(timeout=10)
    pipe.processor(lambda x: x, name="late")  # unlocked once the run ended
    assert sorted(pipe.run(display="none").outputs) == [0, 1, 2]


def _fanned_out() -> mg.Pipeline:
    pipe = mg.Pipeline("fanned")
    pipe.producer(lambda: range(25), name="gen", to=["a", "b", "inner"])
    pipe.processor(lambda x: ("a", x), name="a", to="join")
    pipe.processor(lambda x: ("b", x), name="b", to="join", workers=2)
    with pipe.pipeline("inner", to="join"):
        pipe.processor(lambda x: ("inner", x), name="f")
    pipe.processor(lambda pair: pair, name="join", workers=3)
    return pipe


def test_rerunning_a_fanned_out_pipeline_gives_the_same_result():
    """Ruby regression: the second run of a pipeline with fan-out hung (graph mutated)."""
    pipe = _fanned_out()
    edges = pipe.edges
    first = pipe.run(display="none")
    expected = sorted((k, x) for k in ("a", "b", "inner") for x in range(25))
    assert sorted(first.outputs) == expected
    counts = ["items_in", "items_out", "done", "failed", "filtered"]
    for _ in range(4):
        again = pipe.run(display="none")
        assert sorted(again.outputs) == expected
        assert again.stats[counts].equals(first.stats[counts])
    assert pipe.edges == edges


def test_a_run_restores_the_sigint_handler():
    import signal

    before = signal.getsignal(signal.SIGINT)
    mg.Pipeline([mg.processor(abs)]).run(items=[-1], display="none")
    assert signal.getsignal(signal.SIGINT) is before


def test_result_waits_for_the_run_like_a_future():
    pipe = mg.Pipeline()

    @pipe.producer
    def slow():
        for i in range(5):
            time.sleep(0.02)
            yield i

    handle = pipe.start(display="none")
    assert sorted(handle.result(timeout=30).outputs) == [0, 1, 2, 3, 4]
    assert handle.done


@pytest.mark.parametrize("kind", [list, tuple, range])
def test_a_producer_returning_a_sequence_hands_it_over_whole_and_stops_on_a_drain(kind):
    n = 25_000
    source = range(n) if kind is range else kind(range(n))
    assert sorted(mg.Pipeline([mg.producer(lambda: source, name="gen"),
                               mg.processor(lambda x: x + 1, name="inc")]
                              ).run(display="none").outputs) == list(range(1, n + 1))

    started = threading.Event()

    @mg.processor(queue_size=50)
    def slow(x):
        started.set()
        time.sleep(0.001)
        return x

    handle = (mg.producer(lambda: source, name="gen") | slow).start(display="none")
    assert started.wait(10)
    handle.stop()
    result = handle.wait(timeout=30)
    assert result.stopped and len(result.outputs) < n
    assert sorted(result.outputs) == list(range(len(result.outputs)))  # a prefix, no gap
    assert_conserved(result)


def test_what_a_producer_emits_before_returning_a_list_comes_first():
    # output.emit goes through the courier, the returned list is delivered from the producer's
    # own thread: the list must wait for the courier to hand over what came before
    def gen(output):
        for i in range(3):
            output.emit(("emitted", i))
        return [("returned", i) for i in range(5000)]

    pipe = mg.Pipeline([mg.producer(gen, name="gen"), mg.processor(lambda x: x, name="same")])
    expected = [("emitted", i) for i in range(3)] + [("returned", i) for i in range(5000)]
    for _ in range(20):  # a race: give it many chances
        result = pipe.run(display="none")
        assert result.outputs == expected  # one worker everywhere: order is kept
        assert_conserved(result)


@pytest.mark.parametrize("drain", [True, False])
@pytest.mark.parametrize("shape", ["emit only", "yield and emit", "emit then generator"])
def test_a_producer_using_output_stops_with_the_run(shape, drain):
    def emit_only(output):
        i = 0
        while True:  # no generator to close: output.emit must end it
            output.emit(i)
            i += 1

    def yield_and_emit(output):
        for i in itertools.count():
            output.emit(-i - 1)
            yield i

    def emit_then_generator(output):
        for i in range(5):
            output.emit(-i - 1)
        return itertools.count()

    fn = {"emit only": emit_only, "yield and emit": yield_and_emit,
          "emit then generator": emit_then_generator}[shape]

    @mg.consumer(queue_size=1)
    def sink(x):
        time.sleep(0.005)

    handle = (mg.producer(fn, name="gen") | sink).start(display="none")
    time.sleep(0.3)
    handle.stop(drain=drain)
    result = handle.wait(timeout=20)
    assert result.stopped
    assert result.errors.empty  # stopping is not a failure of the producer
    assert_conserved(result)


def test_the_feeder_and_producers_pull_nothing_after_a_stop_that_finds_them_waiting():
    # the stop arrives while the puller waits for room: it must not pull once more (a pull
    # may block for a long time: a socket, a queue.get)
    for shape in ("items", "producer"):
        stopped = threading.Event()
        late: list[int] = []

        def source(stopped=stopped, late=late):
            for i in itertools.count():
                if stopped.is_set():
                    late.append(i)
                yield i

        @mg.consumer(queue_size=5)
        def sink(x):
            time.sleep(0.02)

        if shape == "items":
            handle = mg.Pipeline([sink]).start(items=source(), display="none")
        else:
            handle = (mg.producer(source, name="gen") | sink).start(display="none")
        time.sleep(0.3)  # the puller has its read-ahead and waits for room
        handle.stop()
        stopped.set()  # after the stop: a pull racing the stop itself is not counted
        result = handle.wait(timeout=20)
        assert result.stopped and late == [], (shape, late)
        assert_conserved(result)


def test_a_list_producer_waiting_on_a_slow_consumer_is_not_busy():
    @mg.consumer(queue_size=100)
    def sink(x):
        time.sleep(0.0005)

    result = (mg.producer(lambda: list(range(3000)), name="gen") | sink).run(display="none")
    stats = result.stats
    assert stats.loc["gen", "busy"] < 0.5 < stats.loc["sink", "busy"]
    assert result.bottleneck == "sink"
