"""What watching a run costs: W1 with the live widget and with progress bars vs display="none".

W1 (issue 12's first workload, as a user writes it): a generator producer
(``yield from range(n)``) -> processor ``x + 1`` -> a consumer that counts, one worker each,
default options. Each display is measured beside ``display="none"`` in this process, repeats
interleaved, medians reported; the goal is a ratio of at least 0.95.

The widget runs without a kernel here, with a comm that JSON-encodes every message as the
kernel would (so serializing and syncing the traits is paid for); the tqdm bars write to a
null device. Also: the kernel CPU time of one widget refresh of a 60-stage pipeline (goal
≤ 2 ms).

Run: ``python bench/bench_display.py [n]`` (default n = 1,000,000).
"""

from __future__ import annotations

import io
import json
import os
import statistics
import sys
import time

import minigun_nb as mg
from minigun_nb.display.progress import ProgressDisplay
from minigun_nb.display.widget import WidgetDisplay
from minigun_nb.runtime.handle import run as run_with

REPEATS = 7


class _JsonComm:
    """A comm that pays what the kernel pays per message: JSON encoding."""

    comm_id = "bench"
    kernel = object()

    def __init__(self) -> None:
        self.messages = 0
        self.bytes = 0

    def send(self, data=None, metadata=None, buffers=None):
        self.messages += 1
        self.bytes += len(json.dumps(data))

    def close(self, *args, **kwargs):
        pass

    def on_msg(self, callback):
        pass

    def on_close(self, callback):
        pass


class _BenchWidget(WidgetDisplay):
    """The real WidgetDisplay with the comm swapped for the JSON-encoding one."""

    def on_start(self, handle):
        super().on_start(handle)
        self.comm = _JsonComm()
        self.widget.comm = self.comm


def w1(n: int) -> mg.Pipeline:
    pipe = mg.Pipeline("w1")
    count = [0]

    @pipe.producer
    def numbers():
        yield from range(n)

    @pipe.processor
    def inc(x):
        return x + 1

    @pipe.consumer
    def counted(x):
        count[0] += 1

    return pipe


def _timed(pipe: mg.Pipeline, displays: list) -> float:
    t0 = time.perf_counter()
    result = run_with(pipe, displays=displays)
    elapsed = time.perf_counter() - t0
    assert result.ok, result.summary()
    return elapsed


def overhead(n: int) -> list[dict]:
    devnull = open(os.devnull, "w")  # noqa: SIM115 - closed below
    quiet = io.StringIO()
    makers = {
        "none": lambda: [],
        "widget": lambda: [_BenchWidget()],
        "progress": lambda: [ProgressDisplay(file=devnull, stream=quiet)],
    }
    times: dict[str, list[float]] = {k: [] for k in makers}
    messages: list[int] = []
    for make in makers.values():  # warm-up, untimed: first imports (tqdm, anywidget) and pools
        _timed(w1(n // 10), make())
    for _ in range(REPEATS):
        for name, make in makers.items():  # interleaved: each repeat runs all three
            displays = make()
            times[name].append(_timed(w1(n), displays))
            if name == "widget":
                messages.append(displays[0].comm.messages)
    devnull.close()
    base = statistics.median(times["none"])
    rows = []
    for name in makers:
        med = statistics.median(times[name])
        rows.append({
            "case": f"W1 {n:,} items, display={name!r}",
            "median s": f"{med:.3f}",
            "items/s": f"{n / med:,.0f}",
            "ratio vs none": f"{base / med:.2f}",
            "goal": "" if name == "none" else "≥ 0.95",
        })
    rows[1]["case"] += f" ({statistics.median(messages):.0f} comm messages)"
    return rows


def refresh_cost(stages: int = 60, refreshes: int = 200) -> dict:
    pipe = mg.Pipeline("wide")

    @pipe.producer
    def numbers():
        yield from range(20_000)

    for i in range(stages - 1):
        pipe.add(mg.processor(lambda x: x, name=f"s{i:02d}"))
    handle = pipe.start(display="none")
    display = _BenchWidget()
    display.on_start(handle)
    handle.wait(120)
    snapshot = handle.snapshot
    t0 = time.process_time()
    for _ in range(refreshes):
        display._moved.clear()  # every refresh recomputes and resends what changed
        display.widget.stats = {}
        display._push(snapshot)
    per = (time.process_time() - t0) / refreshes
    return {
        "case": f"one widget refresh, {stages} stages (serialize + sync + JSON)",
        "median s": f"{per * 1e3:.2f} ms CPU",
        "items/s": "",
        "ratio vs none": "",
        "goal": "≤ 2 ms",
    }


def main() -> list[dict]:
    n = int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1].isdigit() else 1_000_000
    rows = overhead(n)
    rows.append(refresh_cost())
    return rows


if __name__ == "__main__":
    from run import table  # bench/run.py

    print(table(main()))
