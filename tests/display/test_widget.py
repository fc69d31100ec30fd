"""The live widget's Python side, without a kernel: traits, one message per refresh, Stop."""

from __future__ import annotations

import json
import threading
import time

import pytest

import minigun_nb as mg
from minigun_nb.display import widget as widget_mod
from minigun_nb.display.widget import Dashboard, WidgetDisplay

pytestmark = pytest.mark.timeout(60)

XSS = "<img src=x onerror=alert(1)>"


def _pipe(n: int = 60, delay: float = 0.02, gate: threading.Event | None = None) -> mg.Pipeline:
    pipe = mg.Pipeline("dash")

    @pipe.producer
    def gen():
        yield from range(n)

    @pipe.processor(workers=2)
    def work(x):
        if gate is not None:
            gate.wait(10)
        time.sleep(delay)
        if x == 3:
            raise ValueError(f"bad {XSS}")
        return x * 2

    @pipe.consumer
    def sink(x):
        return x

    return pipe


class RecordingComm:
    """Stands in for the widget's comm: records every message the kernel would send."""

    comm_id = "recording"
    kernel = object()  # ipywidgets sends only through a comm that has a kernel

    def __init__(self) -> None:
        self.messages: list[dict] = []

    def send(self, data=None, metadata=None, buffers=None):
        self.messages.append(data)

    def close(self, *args, **kwargs):
        pass

    def on_msg(self, callback):
        pass

    def on_close(self, callback):
        pass


def test_the_traits_follow_the_spec_shapes():
    handle = _pipe(20, 0).start(display="widget")
    handle.wait(30)
    assert handle.join_displays()
    dash = handle.widget
    assert isinstance(dash, Dashboard)
    graph = dash.graph
    assert graph["direction"] in ("LR", "TB")
    assert [n["id"] for n in graph["nodes"]] == ["gen", "work", "sink"]
    for node in graph["nodes"]:
        assert {"id", "label", "kind", "backend", "workers", "x", "y"} <= set(node)
    for edge in graph["edges"]:
        assert {"source", "target", "kind", "points"} <= set(edge) and len(edge["points"]) >= 2
    row = dash.stats["work"]
    assert set(mg.RunResult.__module__ and handle.result().stats.columns) <= set(row)
    assert {"oldest_s", "stalled", "peek"} <= set(row)
    assert row["done"] == 19 and row["failed"] == 1
    assert dash.stats["gen"]["peek"] == "19"  # the final state shows the latest output
    run = dash.run
    assert {"run_id", "status", "elapsed_s", "bottleneck", "hint", "errors_total"} <= set(run)
    assert run["status"] == "done" and run["errors_total"] == 1
    (err,) = dash.errors
    assert set(err) >= {"stage", "item_repr", "exc_type", "message", "traceback", "attempts",
                        "worker", "time"}
    assert "item" not in err
    assert err["stage"] == "work" and err["exc_type"] == "ValueError" and XSS in err["message"]
    assert "raise ValueError" in err["traceback"]
    json.dumps({"graph": graph, "stats": dash.stats, "run": run, "errors": dash.errors},
               allow_nan=False)  # strict JSON: no NaN reaches the page


def test_one_comm_message_per_refresh_carries_every_changed_trait():
    gate = threading.Event()
    handle = _pipe(40, 0.005, gate).start(display="none")
    display = WidgetDisplay()
    display.on_start(handle)
    comm = RecordingComm()
    display.widget.comm = comm
    time.sleep(0.3)  # the producer fills the queue while the workers wait at the gate
    display.on_snapshot(handle.snapshot)
    gate.set()
    assert len(comm.messages) == 1
    (msg,) = comm.messages
    assert msg["method"] == "update"
    assert {"stats", "run"} <= set(msg["state"])
    handle.wait(30)
    comm.messages.clear()
    display.on_snapshot(handle.snapshot)
    display.on_snapshot(handle.snapshot)  # nothing changed: nothing sent
    assert len(comm.messages) == 1


def test_stop_from_the_page_drains_and_a_second_stop_cancels():
    gate = threading.Event()
    handle = _pipe(500, 0.01, gate).start(display="widget")
    dash = handle.widget
    dash._on_page_message(dash, {"type": "stop"}, [])
    assert dash.run["status"] == "stopping"
    assert dash.run["left"] is not None
    gate.set()
    result = handle.wait(30)
    assert result.stopped and result.status == "stopped"
    stats = result.stats
    for path in ("work", "sink"):
        row = stats.loc[path]
        assert row.items_in == row.done + row.failed + row.cancelled  # nothing lost

    gate2 = threading.Event()
    handle2 = _pipe(500, 0.05, gate2).start(display="widget")
    dash2 = handle2.widget
    dash2._on_page_message(dash2, {"type": "stop"}, [])
    dash2._on_page_message(dash2, {"type": "stop"}, [])  # the second click cancels
    gate2.set()
    result2 = handle2.wait(30)
    assert result2.status == "cancelled"


def test_stop_with_drain_false_cancels_at_once():
    gate = threading.Event()
    handle = _pipe(500, 0.05, gate).start(display="widget")
    handle.widget._on_page_message(handle.widget, {"type": "stop", "drain": False}, [])
    gate.set()
    result = handle.wait(30)
    assert result.status == "cancelled" and result.cancelled_items


def test_a_message_of_another_type_is_ignored():
    handle = _pipe(5, 0).start(display="widget")
    handle.widget._on_page_message(handle.widget, {"type": "hello"}, [])
    handle.widget._on_page_message(handle.widget, "not a dict", [])
    assert handle.wait(30).status == "done"


def test_in_a_notebook_the_output_becomes_the_static_dashboard_and_the_widget_closes(
        monkeypatch):
    shown: list = []

    class FakeHandle:
        def __init__(self) -> None:
            self.updates: list = []

        def update(self, obj, raw=False):
            self.updates.append((obj, raw))

    fake = FakeHandle()

    def fake_display(obj, display_id=False):
        shown.append(obj)
        return fake

    monkeypatch.setattr(widget_mod, "in_kernel", lambda: True)
    monkeypatch.setattr(widget_mod, "deliver_while_busy", lambda w: False)
    import IPython.display

    monkeypatch.setattr(IPython.display, "display", fake_display)
    result = _pipe(10, 0).run(display="widget")
    (dash,) = shown
    assert isinstance(dash, Dashboard)
    (bundle, raw), = fake.updates
    assert raw and bundle["text/plain"] == result.summary()
    assert bundle["text/html"] == result.to_html()
    assert dash.comm is None  # closed: a saved notebook holds no state of a finished run
    # run() blocked and Stop could not be routed: the widget said to press Interrupt
    assert "Interrupt" in (dash.run.get("notice") or "")


def test_show_gives_a_live_dashboard_for_a_run_started_without_one():
    gate = threading.Event()
    handle = _pipe(20, 0.01, gate).start(display="none")
    assert handle.widget is None
    assert handle.show() is None  # it displays itself; returning it would show it twice
    dash = handle.widget
    assert isinstance(dash, Dashboard)
    gate.set()
    handle.wait(30)
    assert handle.join_displays()
    assert dash.run["status"] == "done"
    # shown again after the end (a cell's last expression), it is the static dashboard
    bundle = dash._repr_mimebundle_()
    assert bundle["text/html"] == handle.result().to_html()
    assert bundle["text/plain"] == handle.result().summary()
    assert handle.show() is None  # an ended run: the final state, once


def test_a_run_with_many_errors_sends_the_last_rows_and_cuts_long_tracebacks():
    from minigun_nb.display.serialize import ERRORS_SHOWN, TRACEBACK_LIMIT, TRACEBACKS_KEPT

    pipe = mg.Pipeline("errs")

    @pipe.producer
    def gen():
        yield from range(1_000)

    @pipe.processor
    def work(x):
        if x == 0:
            raise KeyError("first of its kind")
        raise ValueError("x" * 100_000 if x == 999 else f"bad {x}")

    handle = pipe.start(display="widget")
    handle.wait(60)
    assert handle.join_displays()
    rows = handle.widget.errors
    assert len(rows) == ERRORS_SHOWN and rows[-1]["id"] == 999 and rows[0]["id"] == 800
    assert len(rows[-1]["traceback"]) <= TRACEBACK_LIMIT
    assert len(rows[-1]["message"]) <= 300
    with_tb = [r["id"] for r in rows if r["traceback"] is not None]
    assert with_tb == list(range(1000 - TRACEBACKS_KEPT, 1000))
    assert handle.widget.run["errors_total"] == 1_000
    # the first row of each (stage, exc_type) keeps its traceback even when not shown last
    from minigun_nb.display.serialize import ErrorRows

    tracker = ErrorRows(repr)
    tracker.trait(handle._run.errors)
    assert {0, 1} <= tracker.first_of_kind


def test_a_display_that_raises_systemexit_is_detached_and_logged(caplog):
    class Exits:
        def on_snapshot(self, snapshot):
            raise SystemExit(3)

    from minigun_nb.runtime.handle import run

    with caplog.at_level("WARNING", logger="minigun_nb"):
        result = run(_pipe(10, 0), displays=[Exits()])
    assert result.status == "done"
    assert any("SystemExit" in r.getMessage() for r in caplog.records)


def test_the_front_end_files_are_found_and_shipped():
    from minigun_nb.display.widget import asset

    js = asset("dashboard.js").read_text()
    assert "export default" in js
    assert asset("dashboard.css").exists()
    for banned in ("innerHTML", "insertAdjacentHTML", "outerHTML"):
        assert banned not in js


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_wheel_ships_the_front_end_where_the_widget_looks(tmp_path):
    import subprocess
    import sys
    import zipfile
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w",
                    str(tmp_path), str(root)], check=True, timeout=280)
    (wheel,) = tmp_path.glob("minigun_nb-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"minigun_nb/display/assets/dashboard.js",
            "minigun_nb/display/assets/dashboard.css"} <= names
    assert not any("node_modules" in name for name in names)
