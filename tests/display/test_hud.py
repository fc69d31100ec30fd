"""The terminal HUD: what it draws (a recording Console), how it behaves (keys, throttle,
freeze, restoring the terminal), and a real pseudo-terminal (pexpect) as a person uses it."""

from __future__ import annotations

import io
import logging
import os
import re
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from rich.console import Console

import minigun_nb as mg
from minigun_nb.display.hud import MIN_INTERVAL, HudDisplay
from minigun_nb.display.hudview import (
    Dag,
    error_rows,
    render_dag,
    render_errors,
    render_header,
    render_screen,
    render_stages,
)
from minigun_nb.observe.snapshot import RunSnapshot, RunTotals, StageSnapshot
from minigun_nb.runtime.handle import run, start

pytestmark = pytest.mark.timeout(60)


# -- snapshots made by hand: exact values to look for on the screen ------------------------

def _stage(path: str, **kw) -> StageSnapshot:
    values = dict(kind="processor", backend="thread", workers=1, status="running",
                  items_in=0, items_out=0, done=0, filtered=0, failed=0, cancelled=0,
                  retried=0, in_flight=0, queue_depth=0, queue_size=100, busy=0.0,
                  throughput=0.0, p50_ms=None, p90_ms=None, p95_ms=None, p99_ms=None,
                  started=None, finished=None, elapsed_s=1.0)
    values.update(kw)
    return StageSnapshot(path, **values)


def _snapshot(stages, edges=(), status="running", bottleneck=None, hint="", total=None):
    stages = tuple(stages)
    return RunSnapshot("r123", status, 42.0, stages, RunTotals.of(stages), bottleneck, hint,
                       pipeline="etl", edges=tuple(edges), total=total)


def _text(renderable, width: int = 100, height: int = 30) -> str:
    console = Console(record=True, width=width, height=height, file=io.StringIO())
    console.print(renderable)
    return console.export_text()


ETL = [
    _stage("gen", kind="producer", items_out=5000, queue_size=0, throughput=900.0),
    _stage("parse", workers=4, items_in=5000, items_out=4980, done=4980, failed=20,
           queue_depth=37, queue_size=1000, busy=0.93, throughput=812.5, p50_ms=3.25,
           p99_ms=48.7),
    _stage("save", items_in=4980, done=4900, in_flight=80, busy=0.1, throughput=800.0,
           p50_ms=0.5, p99_ms=1.25),
]
ETL_EDGES = [("gen", "parse", "default"), ("parse", "save", "default")]


class _Rec:
    """An error record with the fields the HUD reads."""

    def __init__(self, stage, item, exc_type, message, has_item=True):
        self.stage, self.item, self.exc_type, self.message = stage, item, exc_type, message
        self.has_item = has_item


# -- render functions -----------------------------------------------------------------------

def test_stage_table_shows_every_column_with_p50_and_p99():
    text = _text(render_stages(_snapshot(ETL, ETL_EDGES)))
    header = text.splitlines()[0].split()
    assert header == ["stage", "status", "in", "out", "failed", "items/s", "busy", "%",
                      "queue", "P50", "ms", "P99", "ms"]
    parse = next(line for line in text.splitlines() if line.startswith("parse")).split()
    # stage, status, in, out, failed, items/s, busy %, queue depth/size, P50, P99
    assert parse == ["parse", "running", "5000", "4980", "20", "812", "93", "37/1000",
                     "3.25", "48.7"]
    gen = next(line for line in text.splitlines() if line.startswith("gen")).split()
    assert gen[-3:] == ["-", "-", "-"]  # a producer has no queue and no latency


def test_stage_table_on_a_narrow_terminal_drops_columns_not_stage_names():
    text = _text(render_stages(_snapshot(ETL, ETL_EDGES), width=60), width=60)
    header = text.splitlines()[0].split()
    assert header[:2] == ["stage", "status"] and "busy" not in header and "queue" not in header
    assert "P99" in header and "out" in header
    assert re.search(r"^parse\s+running\s+4980\s+20\b.*48\.7$", text, re.M)


def test_stage_table_marks_the_bottleneck_and_a_stalled_stage():
    stages = [_stage("gen", kind="producer", queue_size=0),
              _stage("slow", in_flight=1, oldest_s=75.0, p99_ms=20.0),
              _stage("busy", busy=1.0)]
    text = _text(render_stages(_snapshot(stages, bottleneck="busy")))
    assert re.search(r"busy ◀ bottleneck", text)
    assert re.search(r"slow\s+stalled 1m15s", text)


def test_header_shows_pipeline_status_totals_and_keys():
    snap = _snapshot(ETL, ETL_EDGES, total=5000)
    text = _text(render_header(snap))
    assert "etl" in text and "run r123" in text and "running" in text and "42.0s" in text
    assert "q stop" in text and "space freeze" in text
    assert "4900 done" in text  # what the last stage finished
    assert "20 failed" in text and "80 in flight" in text
    frozen = _text(render_header(snap, frozen=True, stopping=True))
    assert "FROZEN" in frozen and "space resume" in frozen
    assert "stopping" in frozen and "q cancel" in frozen


def test_errors_panel_lists_the_last_rows_and_the_total():
    records = [_Rec("parse", {"id": i}, "ValueError", f"row {i} has no date\nmore")
               for i in range(12)]
    rows = error_rows(records, limit=3)
    assert [r["item_repr"] for r in rows] == ["{'id': 9}", "{'id': 10}", "{'id': 11}"]
    assert rows[0]["message"] == "row 9 has no date"  # the first line of the message
    text = _text(render_errors(rows, total=12))
    assert "errors (12)" in text
    assert re.search(r"parse\s+ValueError\s+row 11 has no date\s+\{'id': 11\}", text)
    assert "row 8 " not in text
    assert "no errors" in _text(render_errors([], total=0))


def test_error_row_survives_a_broken_repr():
    class Bad:
        def __repr__(self):
            raise RuntimeError("nope")

    (row,) = error_rows([_Rec("s", Bad(), "KeyError", "k")])
    assert row["item_repr"].startswith("<unreprable Bad")


def _columns(text: str, names) -> dict[str, int]:
    """The column where each name is drawn (inside the DAG panel)."""
    out = {}
    for line in text.splitlines():
        for name in names:
            found = re.search(rf"(?<![\w]){name}(?![\w])", line)
            if found and name not in out:
                out[name] = found.start()
    return out


def test_dag_draws_the_layers_left_to_right_with_arrows():
    dag = Dag.of(["gen", "a", "b", "save"],
                 [("gen", "a"), ("gen", "b"), ("a", "save"), ("b", "save")])
    assert dag.layers == (("gen",), ("a", "b"), ("save",))
    text = _text(render_dag(dag, RunSnapshot.empty()))
    col = _columns(text, ["gen", "a", "b", "save"])
    assert col["gen"] < col["a"] == col["b"] < col["save"]
    assert "─▶ a" in text and "─▶ b" in text and "─▶ save" in text
    assert "┤" in text and "├" in text  # gen fans out, save fans in
    assert "also:" not in text  # every edge is drawn


def test_dag_lists_an_edge_it_cannot_draw_and_wraps_a_long_chain():
    dag = Dag.of(["gen", "a", "b", "save"],
                 [("gen", "a"), ("a", "b"), ("b", "save"), ("gen", "save")])
    assert "also: gen → save" in _text(render_dag(dag, RunSnapshot.empty()))
    chain = Dag.of([f"s{i}" for i in range(14)], [(f"s{i}", f"s{i + 1}") for i in range(13)])
    text = _text(render_dag(chain, RunSnapshot.empty()))
    assert all(re.search(rf"\bs{i}\b", text) for i in range(14))
    assert "▶…" in text and "…──▶" in text  # continued on the next band
    assert max(len(line) for line in text.splitlines()) <= 100


def test_dag_boxes_show_counts_and_the_bottleneck():
    snap = _snapshot(ETL, ETL_EDGES, bottleneck="parse")
    text = _text(render_dag(Dag.of_snapshot(snap), snap))
    assert "5000 out" in text  # the producer
    assert "4980 ✓ 20 ✗" in text  # done and failed of parse


def test_dag_of_a_graph_draws_nested_stages_by_name_and_tables_them_by_path():
    inner = mg.Pipeline("inner")
    inner.processor(lambda x: x, name="clean")
    outer = mg.Pipeline("outer")
    outer.producer(lambda: [1, 2], name="gen")
    outer.add(inner)
    outer.consumer(lambda x: None, name="save")
    dag = Dag.of_graph(outer.graph())
    assert dag.layers == (("gen",), ("inner/clean",), ("save",))
    assert dag.labels["inner/clean"] == "clean"
    snap = _snapshot([_stage("gen", kind="producer"), _stage("inner/clean"), _stage("save")])
    text = _text(render_screen(snap, dag))
    assert "─▶ clean" in text and re.search(r"^inner/clean\s+running", text, re.M)


def test_screen_fits_the_terminal_and_keeps_the_last_errors():
    records = [_Rec("parse", i, "ValueError", f"bad {i}") for i in range(50)]
    snap = _snapshot(ETL, ETL_EDGES, bottleneck="parse",
                     hint="`parse` is the bottleneck: 93% busy with 4 workers; try workers=8")
    text = _text(render_screen(snap, None, records, width=100, height=30), height=30)
    lines = text.rstrip("\n").splitlines()
    assert len(lines) <= 30
    assert "try workers=8" in text and "P50 ms" in text and "P99 ms" in text
    assert "errors (50)" in text and "bad 49" in text and "bad 0 " not in text
    assert lines[-1].startswith("╰")  # the errors panel is whole


def test_screen_draws_a_wide_dag_compact_when_short_of_lines():
    nodes = ["gen"] + [f"w{i}" for i in range(6)] + ["save"]
    edges = [("gen", f"w{i}") for i in range(6)] + [(f"w{i}", "save") for i in range(6)]
    stages = [_stage(n) for n in nodes]
    snap = _snapshot(stages, [(s, t, "default") for s, t in edges])
    text = _text(render_screen(snap, width=100, height=30), height=30)
    assert all(n in text for n in nodes)
    dag_lines = text.split("DAG", 1)[1].split("╰", 1)[0].splitlines()
    assert len(dag_lines) <= 8  # one line per stage, not three


# -- the display, on a recording console -----------------------------------------------------

class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class _FakeHandle:
    def __init__(self, snapshot) -> None:
        self.snapshot = snapshot
        self.stops: list[bool] = []
        self.graph = None

        class _Run:
            errors: list = []
            stopping = False

        self._run = _Run()

    def stop(self, drain: bool = True) -> None:
        self.stops.append(drain)
        self._run.stopping = True


def _console() -> Console:
    return Console(record=True, width=100, height=30, force_terminal=True, file=io.StringIO())


def _hud(clock=None, **kw) -> HudDisplay:
    kw.setdefault("keyboard", False)
    kw.setdefault("summary", False)
    kw.setdefault("hold_output", False)
    return HudDisplay(console=_console(), clock=clock or _Clock(), **kw)


def _started(hud: HudDisplay, snapshot) -> _FakeHandle:
    handle = _FakeHandle(snapshot)
    hud._dag = Dag.of_snapshot(snapshot)
    hud._enter(hud._console)
    hud._draw(snapshot)
    return handle


def _pipe(n: int, delay: float, name: str = "hudrun") -> mg.Pipeline:
    pipe = mg.Pipeline(name)

    @pipe.producer
    def numbers():
        yield from range(n)

    @pipe.processor(workers=2)
    def slow(x):
        time.sleep(delay)
        if x == 3:
            raise ValueError("three is bad")
        return x

    @pipe.consumer
    def keep(x):
        return None

    return pipe


def test_hud_on_a_real_run_draws_stages_and_leaves_the_screen():
    console = _console()
    hud = HudDisplay(console=console, keyboard=False, summary=False, hold_output=False)
    result = run(_pipe(200, 0.005), displays=[hud])  # ~0.5 s: several frames
    assert result.status == "done"
    assert not hud.active and hud.refreshes >= 1
    text = console.export_text()
    for word in ("numbers", "slow", "keep", "P50 ms", "P99 ms", "three is bad"):
        assert word in text
    raw = console.file.getvalue()
    assert "\x1b[?1049h" in raw and raw.rstrip().endswith("\x1b[?1049l")  # alt screen left


def test_refreshes_are_throttled_to_ten_a_second():
    clock = _Clock()
    hud = _hud(clock)
    snap = _snapshot(ETL, ETL_EDGES)
    _started(hud, snap)
    for _ in range(100):  # a snapshot every 10 ms of (fake) time for 1 s
        clock.now += 0.01
        hud.on_snapshot(snap)
    assert hud.refreshes <= 1 + 1.0 / MIN_INTERVAL + 1
    assert hud.refreshes >= 5
    hud.leave()


def test_space_freezes_and_resumes_the_screen():
    clock = _Clock()
    hud = _hud(clock)
    first = _snapshot(ETL, ETL_EDGES)
    handle = _started(hud, first)
    hud._handle = handle
    clock.now += 1
    hud.key(" ")
    assert hud.frozen and "FROZEN" in hud._console.export_text(clear=False)
    seen = hud.refreshes
    later = _snapshot([*ETL[:2], _stage("save", done=777_777)], ETL_EDGES)
    for _ in range(5):
        clock.now += 1
        hud.on_snapshot(later)
    assert hud.refreshes == seen  # frozen: new snapshots are not drawn
    hud._console.export_text(clear=True)
    clock.now += 1
    hud.key(" ")
    assert not hud.frozen
    text = hud._console.export_text()
    assert "778k" in text and "FROZEN" not in text  # the latest snapshot, at once
    hud.leave()


def test_q_drains_then_a_second_q_cancels():
    hud = _hud()
    handle = _started(hud, _snapshot(ETL, ETL_EDGES))
    hud._handle = handle
    hud.key("q")
    assert handle.stops == [True]
    hud.key("q")
    assert handle.stops == [True, False]
    hud.key("x")  # other keys do nothing
    assert handle.stops == [True, False]
    hud.leave()


@pytest.mark.timeout(60)
def test_q_on_a_real_run_ends_it_stopped():
    hud = _hud()
    handle = start(_pipe(10_000, 0.002), displays=[hud])
    while handle.snapshot.totals.done < 10:
        time.sleep(0.01)
    hud.key("q")
    result = handle.wait(30)
    assert result.status == "stopped"
    assert handle.join_displays(10) and not hud.active


def test_a_render_error_puts_the_terminal_back_and_the_run_goes_on(caplog):
    console = _console()
    hud = HudDisplay(console=console, keyboard=False, summary=False, hold_output=True)
    real_stdout = sys.stdout
    calls = {"n": 0}
    original = hud._render

    def flaky(snapshot, errors):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("the screen broke")
        original(snapshot, errors)

    hud._render = flaky  # type: ignore[method-assign]
    with caplog.at_level(logging.WARNING, logger="minigun_nb"):
        result = run(_pipe(200, 0.002), displays=[hud])
    assert result.status == "done"
    assert "the screen broke" in caplog.text  # detached and logged by its follower
    assert sys.stdout is real_stdout and not hud.active
    assert console.file.getvalue().rstrip().endswith("\x1b[?1049l")


def test_output_written_while_the_hud_is_up_comes_out_after(capsys):
    hud = HudDisplay(console=_console(), keyboard=False, summary=True, hold_output=True)
    log = logging.getLogger("minigun_nb.test_hud")
    handler = logging.StreamHandler(sys.stderr)
    logging.getLogger("minigun_nb").addHandler(handler)
    try:
        pipe = mg.Pipeline("noisy")
        go = threading.Event()

        @pipe.processor
        def shout(x):
            go.wait(10)  # the HUD takes the screen after the run has started
            print(f"printed {x}")
            log.warning("logged %s", x)
            return x

        handle = start(pipe, items=[1, 2], displays=[hud])
        assert hud.active
        go.set()
        handle.wait(30)
        assert handle.join_displays(10)
    finally:
        logging.getLogger("minigun_nb").removeHandler(handler)
    out, err = capsys.readouterr()
    assert "printed 1" in out and "printed 2" in out
    assert out.index("printed 2") < out.index("run ")  # held output, then the summary
    assert "logged 1" in err and handler.stream is sys.stderr


def test_without_a_terminal_the_hud_says_so_and_prints_the_summary(capsys):
    result = run(_pipe(5, 0.0), displays=[HudDisplay()])  # pytest's stdout is no terminal
    out, err = capsys.readouterr()
    assert "needs a terminal on stdout" in err
    assert "run " in out and result.status == "done"


def test_display_hud_gives_a_hud_display_when_stdout_is_a_terminal(monkeypatch):
    import minigun_nb.display as display

    monkeypatch.setattr(display, "isatty", lambda stream: True)
    (found,) = display.displays_for("hud")
    assert isinstance(found, HudDisplay)


def test_interpreter_exit_puts_the_terminal_back():
    from minigun_nb.display import hud as hud_module

    real_stdout = sys.stdout
    hud = HudDisplay(console=_console(), keyboard=False, summary=False, hold_output=True)
    _started(hud, _snapshot(ETL, ETL_EDGES))
    assert hud in hud_module._ACTIVE and sys.stdout is not real_stdout
    print("said while the HUD was up")
    hud_module._restore_all()  # what the atexit hook (and SIGTERM) run: no lock taken
    assert not hud.active and hud not in hud_module._ACTIVE
    assert sys.stdout is real_stdout
    raw = hud._console.file.getvalue()
    assert raw.endswith("\x1b[?25h\x1b[?1049l")  # cursor shown, alternate screen left
    hud.on_snapshot(_snapshot(ETL, ETL_EDGES))  # a late follower call draws nothing
    assert hud._console.file.getvalue() == raw


# -- a real pseudo-terminal ------------------------------------------------------------------

pexpect = pytest.importorskip("pexpect")

JOB = textwrap.dedent('''
    import os, subprocess, sys, termios, time
    import minigun_nb as mg
    from minigun_nb.display.hud import HudDisplay
    from minigun_nb.runtime.handle import run, start

    mode = sys.argv[1]
    before = termios.tcgetattr(0)
    pipe = mg.Pipeline("nightly")

    @pipe.producer
    def numbers():
        yield from range(400 if mode != "boom" else 60)   # about 10 s

    @pipe.processor(workers=2)
    def parse(x):
        time.sleep(0.05)
        if x % 50 == 7:
            raise ValueError(f"row {x} has no date")
        return x

    @pipe.consumer
    def save(x):
        return None

    class Boom(HudDisplay):
        def _render(self, snapshot, errors):
            if self.refreshes >= 3:
                raise RuntimeError("the screen broke")
            super()._render(snapshot, errors)

    print("PID", os.getpid(), flush=True)
    hud = Boom() if mode == "boom" else HudDisplay()
    if mode == "raise":
        start(pipe, displays=[hud])
        time.sleep(1.5)
        raise RuntimeError("the script failed")
    if mode == "boom":
        result = run(pipe, displays=[hud])
    else:  # the public way: display="hud" on Pipeline.run
        result = pipe.run(display="hud")
    print("STATUS", result.status)
    print("SANE" if termios.tcgetattr(0) == before else "NOT SANE")
    subprocess.run(["stty", "-a"])
''')


@pytest.fixture
def job(tmp_path: Path) -> Path:
    path = tmp_path / "job.py"
    path.write_text(JOB)
    return path


def _spawn(args: list[str]):
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    env["TERM"] = "xterm-256color"
    return pexpect.spawn(args[0], args[1:], dimensions=(30, 110), env=env, timeout=30,
                         encoding="utf-8", codec_errors="replace")


def _stty_sane(text: str) -> None:
    """`stty -a` output says canonical mode and echo are on (``icanon``, not ``-icanon``)."""
    modes = " ".join(text.split())
    assert re.search(r"(?<![-\w])icanon\b", modes), modes
    assert re.search(r"(?<![-\w])echo\b", modes), modes


def _sane(child) -> None:
    """The job's own check (termios as before the HUD), then `stty -a` in the same pty."""
    child.expect(r"(NOT SANE|SANE)")
    assert child.match.group(1) == "SANE"
    child.expect(pexpect.EOF)
    _stty_sane(child.before)


def _on_screen(child) -> None:
    for word in ("P50 ms", "P99 ms", "numbers", "parse", "save"):
        child.expect_exact(word)


@pytest.mark.timeout(90)
def test_pty_q_stops_the_run_and_the_terminal_is_sane(job):
    child = _spawn([sys.executable, str(job), "q"])
    _on_screen(child)
    child.send(" ")
    child.expect_exact("FROZEN")
    child.send(" ")
    child.send("q")
    child.expect(r"STATUS (\w+)")
    assert child.match.group(1) == "stopped"
    _sane(child)


@pytest.mark.timeout(90)
def test_pty_sigint_drains_and_the_terminal_is_restored(job):
    child = _spawn([sys.executable, str(job), "intr"])
    _on_screen(child)
    child.sendintr()  # Ctrl-C through the pty's line discipline: ISIG stayed on
    child.expect(r"STATUS (\w+)")
    assert child.match.group(1) == "stopped"
    _sane(child)


@pytest.mark.timeout(90)
def test_pty_a_display_that_raises_leaves_the_terminal_sane(job):
    child = _spawn([sys.executable, str(job), "boom"])
    child.expect(r"STATUS (\w+)")
    assert child.match.group(1) == "done"  # the run went on without its display
    _sane(child)


@pytest.mark.timeout(90)
def test_pty_a_script_that_raises_shows_its_traceback_and_restores(job):
    child = _spawn(["/bin/bash", "-c", f"{sys.executable} {job} raise; stty -a"])
    _on_screen(child)
    child.expect_exact("RuntimeError: the script failed")  # held, shown after the screen
    child.expect(pexpect.EOF)
    _stty_sane(child.before)


@pytest.mark.timeout(90)
def test_pty_sigterm_restores_the_terminal(job):
    child = _spawn(["/bin/bash", "-c", f"{sys.executable} {job} term; echo EXIT=$?; stty -a"])
    child.expect(r"PID (\d+)")
    pid = int(child.match.group(1))
    _on_screen(child)
    os.kill(pid, 15)
    child.expect(r"EXIT=(\d+)")
    assert child.match.group(1) == str(128 + 15)  # it still dies of SIGTERM
    child.expect(pexpect.EOF)
    _stty_sane(child.before)
