"""The observer seam: displays follow a run on their own timer; text and progress displays."""

from __future__ import annotations

import io
import logging
import threading
import time

import pytest

import minigun_nb as mg
from minigun_nb.display import choose, displays_for
from minigun_nb.display.progress import ProgressDisplay
from minigun_nb.display.text import TextDisplay, status_line
from minigun_nb.observe import StatsCollector
from minigun_nb.observe.events import (
    ChunkProcessed,
    ItemsReceived,
    ItemsTaken,
    RunStarted,
    StageInfo,
    StageStarted,
)

pytestmark = pytest.mark.timeout(60)


def _slow_pipe(n: int = 40, delay: float = 0.01, name: str = "slow") -> mg.Pipeline:
    pipe = mg.Pipeline(name)

    @pipe.producer
    def gen():
        yield from range(n)

    @pipe.processor
    def work(x):
        time.sleep(delay)
        return x * 2

    @pipe.consumer
    def sink(x):
        return x

    return pipe


class Recorder:
    def __init__(self) -> None:
        self.started = None
        self.snapshots: list = []
        self.times: list[float] = []
        self.ends: list = []
        self.threads: set[str] = set()

    def on_start(self, handle):
        self.started = handle

    def on_snapshot(self, snapshot):
        self.snapshots.append(snapshot)
        self.times.append(time.monotonic())
        self.threads.add(threading.current_thread().name)

    def on_end(self, result):
        self.ends.append(result)


def test_a_display_follows_the_run_on_its_own_thread_and_sees_the_end_once():
    rec = Recorder()
    from minigun_nb.runtime.handle import run

    result = run(_slow_pipe(), displays=[rec])
    assert rec.started is not None and rec.started.run_id == result.run_id
    assert rec.ends == [result]  # once, after the result exists
    final = rec.snapshots[-1]
    assert final.status == "done" and final.stage("sink").done == 40
    assert threading.current_thread().name not in rec.threads  # never the caller's thread
    # the graph is there from the first snapshot on
    first = rec.snapshots[0]
    assert first.pipeline == "slow"
    assert set(first.edges) == {("gen", "work", "default"), ("work", "sink", "default")}


def test_refreshes_are_at_most_ten_a_second_whatever_the_item_rate():
    rec = Recorder()
    pipe = mg.Pipeline("fast")

    @pipe.producer
    def gen():
        yield from range(200_000)

    @pipe.processor
    def inc(x):
        return x + 1

    from minigun_nb.runtime.handle import run

    result = run(pipe, displays=[rec])
    gaps = [b - a for a, b in zip(rec.times, rec.times[1:-1], strict=False)]  # the final one is extra
    assert all(gap >= 0.09 for gap in gaps), gaps
    assert len(rec.snapshots) <= 10 * result.elapsed_s + 3


def test_the_timer_backs_off_while_nothing_changes():
    rec = Recorder()
    pipe = mg.Pipeline("idle")

    @pipe.producer
    def gen():
        yield 1
        time.sleep(2.5)  # nothing moves for 2.5 s
        yield 2

    @pipe.consumer
    def sink(x):
        return x

    handle = pipe.start(display="none")
    handle.subscribe(rec)
    handle.wait(30)
    assert handle.join_displays()
    # at 10 Hz a 2.5 s pause would give ~25 refreshes; with nothing changing, a few
    assert len(rec.snapshots) < 12, len(rec.snapshots)


def test_a_display_that_raises_is_detached_and_logged_and_the_run_goes_on(caplog):
    class Broken:
        calls = 0

        def on_snapshot(self, snapshot):
            Broken.calls += 1
            raise RuntimeError("display bug")

        def on_end(self, result):  # pragma: no cover - never reached once detached
            raise AssertionError("a detached display is not called again")

    class BrokenStart:
        def on_start(self, handle):
            raise ValueError("start bug")

    from minigun_nb.runtime.handle import run

    with caplog.at_level(logging.WARNING, logger="minigun_nb"):
        result = run(_slow_pipe(), displays=[Broken(), BrokenStart()])
    assert result.ok and len(result.outputs) == 40
    assert Broken.calls == 1
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "display bug" in messages and "detached" in messages and "start bug" in messages
    assert all(getattr(r, "run_id", None) == result.run_id for r in caplog.records
               if "detached" in r.getMessage())


def test_subscribing_after_the_end_delivers_the_final_state_at_once():
    handle = _slow_pipe(5, 0).start(display="none")
    result = handle.wait(30)
    rec = handle.subscribe(Recorder())
    assert handle.join_displays(5)
    assert rec.ends == [result] and rec.snapshots[-1].status == "done"


def test_the_item_total_is_known_for_a_sized_items_argument():
    rec = Recorder()
    pipe = mg.Pipeline([mg.processor(lambda x: x, name="same")])
    from minigun_nb.runtime.handle import run

    run(pipe, items=list(range(7)), displays=[rec])
    assert rec.snapshots[-1].total == 7
    rec2 = Recorder()
    run(pipe, items=iter(range(7)), displays=[rec2])
    assert rec2.snapshots[-1].total is None


def test_display_names_are_checked_before_anything_runs():
    started = []
    pipe = mg.Pipeline("p")

    @pipe.before_run
    def note():
        started.append(1)

    pipe.add(mg.processor(lambda x: x, name="same"))
    with pytest.raises(mg.DefinitionError, match="display='sparkles' is not valid; use one of"):
        pipe.run(items=[1], display="sparkles")
    assert started == []


def test_auto_is_text_without_a_kernel_or_terminal(monkeypatch):
    monkeypatch.setattr("sys.stderr", io.StringIO())
    assert choose("auto") == "text"
    assert [type(d).__name__ for d in displays_for("auto")] == ["TextDisplay"]


def test_auto_is_progress_when_stderr_is_a_terminal(monkeypatch):
    class Tty(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr("sys.stderr", Tty())
    assert choose("auto") == "progress"


def test_hud_without_a_terminal_falls_back_to_text_with_a_note(monkeypatch, capsys):
    monkeypatch.setattr("sys.stdout", io.StringIO())
    assert choose("hud") == "text"
    assert "needs a terminal on stdout" in capsys.readouterr().err


def test_text_prints_the_summary_once_and_status_lines_on_stderr():
    out, err = io.StringIO(), io.StringIO()
    text = TextDisplay(stream=out, status_stream=err, every=0.2)
    from minigun_nb.runtime.handle import run

    result = run(_slow_pipe(60, 0.02, name="etl"), displays=[text])
    assert out.getvalue().count("stage  status") == 1
    assert result.summary() in out.getvalue()
    lines = err.getvalue().splitlines()
    assert lines, "a 1.2 s run with every=0.2 prints status lines"
    assert all(line.startswith("etl: ") and " done, " in line and "/s, 00:0" in line
               for line in lines), lines


def test_status_line_counts_items_out_of_the_pipeline_not_the_sum_over_stages():
    result = _slow_pipe(30, 0, name="etl").run(display="none")
    assert status_line(result.snapshot).startswith("etl: 30 done, 0 failed, ")


def test_progress_bars_count_each_stage_and_close_with_the_summary():
    bars, out = io.StringIO(), io.StringIO()
    progress = ProgressDisplay(file=bars, stream=out)
    pipe = _slow_pipe(50, 0.005)
    pipe.batch(10)
    from minigun_nb.runtime.handle import run

    result = run(pipe, displays=[progress])
    assert set(progress.bars) == {"gen", "work", "batch", "sink"}
    assert progress.bars["gen"].n == 50 and progress.bars["work"].n == 50
    assert progress.bars["batch"].n == result.stats.loc["batch", "done"]
    assert all(bar.disable or bar.n is not None for bar in progress.bars.values())
    text = bars.getvalue()
    assert "work" in text and "/s" in text
    assert out.getvalue().strip() == result.summary().strip()


def test_peek_is_a_short_safe_repr_of_the_latest_output_and_off_with_peek_false():
    class Bad:
        def __repr__(self):
            raise ValueError("no repr")

    class Huge:
        def __repr__(self):
            return "x" * 10_000_000

    pipe = mg.Pipeline("peek")

    @pipe.producer
    def gen():
        yield from [1, 2, 3]

    @pipe.processor
    def bad(x):
        return Bad()

    @pipe.processor
    def huge(x):
        return Huge()

    @pipe.consumer
    def sink(x):
        return "<script>alert(1)</script>\nsecond line"

    handle = pipe.start(display="none")
    handle.wait(30)
    assert handle.peek("gen") == "3"
    assert handle.peek("bad") == "<repr failed>"
    assert len(handle.peek("huge")) <= 200
    assert "\n" not in handle.peek("sink")  # one line (escaping is the front end's job)
    quiet = pipe.start(display="none", peek=False)
    quiet.wait(30)
    assert quiet.peek("gen") is None


def test_oldest_in_flight_and_stalled_come_from_the_events():
    now = [0.0]
    stats = StatsCollector(clock=lambda: now[0])
    info = StageInfo("work", "processor", "thread", 2, 100)
    stats.publish(RunStarted("r", 0.0, (info,), "p", (), None))
    stats.publish(StageStarted("work", 0.0))
    stats.publish(ItemsReceived("work", 3))
    stats.publish(ItemsTaken("work", 1, token=11))  # worker A takes the item that sticks
    now[0] = 1.0
    stats.publish(ItemsTaken("work", 2, token=22))  # worker B goes on
    now[0] = 2.0
    stats.publish(ChunkProcessed("work", 2, 0, 0, 2, 0, 0.2, (0.1, 0.1), token=22))
    snap = stats.snapshot().stage("work")
    assert snap.oldest_s == pytest.approx(2.0)  # A's item, not B's settled take
    assert not snap.stalled
    now[0] = 15.0
    late = stats.snapshot()
    assert late.stage("work").oldest_s == pytest.approx(15.0)
    assert late.stage("work").stalled  # > 10 s and > 10 x p99 (0.1 s)
    assert "`work` looks stalled" in late.hint
    stats.publish(ChunkProcessed("work", 1, 0, 0, 1, 0, 14.0, (14.0,), token=11))
    assert stats.snapshot().stage("work").oldest_s is None


@pytest.mark.timeout(90)
def test_a_stuck_item_among_busy_workers_is_the_oldest_in_flight():
    release = threading.Event()
    pipe = mg.Pipeline("stuck")

    @pipe.producer
    def gen():
        yield from range(400)

    @pipe.processor(workers=2)
    def work(x):
        if x == 0:
            release.wait(30)  # stuck until released
        else:
            time.sleep(0.002)
        return x

    @pipe.consumer
    def sink(x):
        return x

    handle = pipe.start(display="none")
    deadline = time.monotonic() + 20
    while handle.snapshot.stage("work").done < 399 and time.monotonic() < deadline:
        time.sleep(0.05)  # the other worker does everything else
    time.sleep(0.5)
    first = handle.snapshot.stage("work").oldest_s
    time.sleep(0.5)
    second = handle.snapshot.stage("work").oldest_s
    release.set()
    result = handle.wait(30)
    assert result.ok and len(result.outputs) == 400
    # the stuck item's age keeps growing while the other worker finishes everything else
    assert first is not None and second is not None and second > first >= 0.5
