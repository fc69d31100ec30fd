"""Scaling figures of issue 12 (deliverable 3): size, depth, and the cost of one small run.

Same harness as ``bench_workloads`` (one process, interleaved repeats, medians, the load
recorded, disturbed repeats redone; see ``_harness.py``).

1. **Size.** W1 (generator producer -> ``x + 1`` -> counting consumer) at 10^5, 10^6 and 10^7
   items beside the 3-thread ``queue.Queue`` chain at the same size. ``ratio`` is the
   throughput relative to the 10^5 run of the same system (flat = 1.0). ``MG_BENCH_1E7=0``
   leaves 10^7 out (it adds about half a minute on 2 cores).
2. **Depth.** A chain of 2, 5, 10 and 20 stages (a generator producer, no-op processors, a
   consumer) over the same items, beside a hand-written chain of as many threads and
   ``queue.Queue`` s moving lists of 100 and calling a no-op per item. ``rate`` is the cost per
   item per stage; a straight line through the four points (least squares) gives the slope and
   the fixed part, and ``ratio`` is the measured time over that line's value (linear = 1.0).
3. **One small run.** The wall time of one run of a 10-item pipeline (generator producer ->
   ``x + 1`` -> counting consumer) on threads, and with the middle stage on a warm process pool
   (``backend="process", workers=2``, its pool kept warm between runs as SPEC section 12 says),
   beside a plain loop, a ``ThreadPoolExecutor`` kept open, and warm ``multiprocessing.Pool(2)``
   and loky executors mapping the same 10 items.

Run: ``.venv/bin/python bench/bench_scaling.py`` or ``make bench``.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(1, os.path.dirname(HERE))

import _harness as h  # noqa: E402
from bench_workloads import inc, queue_chain, w1_pipeline  # noqa: E402

import minigun_nb as mg  # noqa: E402

SIZES = [10**5, 10**6] + ([] if os.environ.get("MG_BENCH_1E7") == "0" else [10**7])
if h.QUICK:
    SIZES = [10**4, 10**5]
DEPTHS = (2, 5, 10, 20)
N_DEPTH = h.size(200_000, 20_000)
SMALL_RUNS = h.size(40, 10)
END = object()


def size_rows() -> list[dict[str, Any]]:
    cases: dict[str, Any] = {}
    for n in SIZES:
        cases[f"chain {n}"] = lambda n=n: queue_chain(n)
        cases[f"mg {n}"] = w1_pipeline(n)
    # the biggest size runs for tens of seconds: fewer repeats there keep the module short
    t = h.interleaved(cases, repeats=3 if max(SIZES) >= 10**7 else h.REPEATS)
    rows = []
    for system, label in (("chain", "queue.Queue chain, lists of 100"),
                          ("mg", "minigun_nb W1 (generator producer)")):
        base = SIZES[0] / t[f"{system} {SIZES[0]}"].median
        for n in SIZES:
            timing = t[f"{system} {n}"]
            rate = n / timing.median
            rows.append(h.row("size", f"{label}, {n:,} items", timing, rate=h.per_s(n, timing.median),
                              ratio=rate / base, goal=f"flat (1.0 = the rate at {SIZES[0]:,})"))
    for n in SIZES:
        rows.append(h.row("size", f"minigun_nb / chain at {n:,}", None,
                          ratio=t[f"chain {n}"].median / t[f"mg {n}"].median, goal="info"))
    return rows


def noop(x: Any) -> Any:
    return x


def deep_pipeline(depth: int, n: int) -> Any:
    """A generator producer, ``depth - 2`` no-op processors and a consumer: ``depth`` stages."""
    pipe = mg.Pipeline(f"depth{depth}")
    count = [0]

    @pipe.producer
    def numbers():
        yield from range(n)

    for i in range(depth - 2):
        pipe.processor(noop, name=f"noop{i}")

    @pipe.consumer
    def tally(x):
        count[0] += 1

    def run() -> None:
        count[0] = 0
        pipe.run(display="none")
        assert count[0] == n

    return run


def deep_chain(depth: int, n: int, per_put: int = 100) -> None:
    """``depth`` threads: a producer, ``depth - 2`` no-op callers, a counter (queues of 10)."""
    queues = [queue.Queue(10) for _ in range(depth - 1)]
    count = [0]

    def produce() -> None:
        for i in range(0, n, per_put):
            queues[0].put(list(range(i, min(n, i + per_put))))
        queues[0].put(END)

    def middle(src: queue.Queue, dst: queue.Queue) -> None:
        while (chunk := src.get()) is not END:
            dst.put([noop(x) for x in chunk])
        dst.put(END)

    def consume() -> None:
        while (chunk := queues[-1].get()) is not END:
            for _ in chunk:
                count[0] += 1

    threads = [threading.Thread(target=produce), threading.Thread(target=consume)]
    threads += [threading.Thread(target=middle, args=(queues[i], queues[i + 1]))
                for i in range(depth - 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert count[0] == n


def _line(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """Least-squares slope and intercept."""
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum((x - mx) ** 2 for x in xs)
    return slope, my - slope * mx


def depth_rows() -> list[dict[str, Any]]:
    n = N_DEPTH
    cases: dict[str, Any] = {}
    for d in DEPTHS:
        cases[f"chain {d}"] = lambda d=d: deep_chain(d, n)
        cases[f"mg {d}"] = deep_pipeline(d, n)
    t = h.interleaved(cases)
    rows = []
    for system, label in (("chain", "hand-written thread chain"), ("mg", "minigun_nb chain")):
        per_item = [t[f"{system} {d}"].median / n * 1e6 for d in DEPTHS]  # us per item
        slope, fixed = _line([float(d) for d in DEPTHS], per_item)
        for d, us in zip(DEPTHS, per_item, strict=True):
            rows.append(h.row("depth", f"{label}, {d} stages, {n:,} items", t[f"{system} {d}"],
                              rate=f"{us / d:.2f} us/item/stage", ratio=us / (fixed + slope * d),
                              goal="linear (1.0 = on the fitted line)"))
        rows.append(h.row("depth", f"{label}: fitted line", None,
                          value=f"{slope:.2f} us/item/stage + {fixed:.2f} us/item", goal="info"))
    return rows


def small_rows() -> list[dict[str, Any]]:
    import loky

    items = list(range(10))
    threads = _small_pipeline("small_threads")
    procs = _small_pipeline("small_process", backend="process", workers=2)
    tpe = ThreadPoolExecutor(2)
    pool = multiprocessing.Pool(2)
    lk = loky.get_reusable_executor(max_workers=2)

    def repeat(fn: Any) -> Any:
        # one repeat = SMALL_RUNS runs in a row, so that a figure is not one timer tick
        return lambda: [fn() for _ in range(SMALL_RUNS)]

    try:
        t = h.interleaved({
            "loop": repeat(lambda: [inc(x) for x in items]),
            "tpe": repeat(lambda: list(tpe.map(inc, items))),
            "mg threads": repeat(threads),
            "Pool": repeat(lambda: pool.map(inc, items)),
            "loky": repeat(lambda: list(lk.map(inc, items))),
            "mg process": repeat(procs),
        })
    finally:
        tpe.shutdown()
        pool.terminate()
        mg.shutdown()
    ms = {k: v.median / SMALL_RUNS * 1e3 for k, v in t.items()}
    labels = {
        "loop": "plain loop over 10 items",
        "tpe": "ThreadPoolExecutor(2).map, kept open",
        "mg threads": "minigun_nb 10-item run, thread stages",
        "Pool": "multiprocessing.Pool(2).map, warm",
        "loky": "loky map, warm",
        "mg process": "minigun_nb 10-item run, middle stage on a warm process pool",
    }
    rows = []
    for key, label in labels.items():
        ref = {"mg threads": ms["tpe"], "mg process": ms["Pool"]}.get(key)
        rows.append(h.row("one run", label, t[key], value=f"{ms[key]:.3f} ms/run",
                          ratio=None if ref is None else ms[key] / ref,
                          goal={"mg threads": "x the thread pool", "mg process": "x Pool.map"}
                          .get(key, "reference")))
    return rows


def _small_pipeline(name: str, **opts: Any) -> Any:
    pipe = mg.Pipeline(name)
    count = [0]

    @pipe.producer
    def numbers():
        yield from range(10)

    pipe.processor(inc, name="plus_one", **opts)

    @pipe.consumer
    def tally(x):
        count[0] += 1

    def run() -> None:
        count[0] = 0
        pipe.run(display="none")
        assert count[0] == 10

    return run


def main() -> list[dict[str, Any]]:
    return [h.machine()] + size_rows() + depth_rows() + small_rows()


if __name__ == "__main__":
    h.print_table(main())
