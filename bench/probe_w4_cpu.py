"""Where W4's CPU goes: kernel process against worker processes, minigun_nb beside Pool.

Not a `make bench` module (no README region): a probe behind the W4 notes in
``bench/README.md``. It runs W4 (a generator producer of 10^6 ints -> ``x + 1`` on a process
stage, workers=2, default options) and ``multiprocessing.Pool(2).imap(chunksize=1000)``
alternately, three times each, and prints the wall time and the CPU seconds used meanwhile by
this process (the kernel) and by its child processes (the workers; read with psutil, since
warm workers are not reaped)::

    .venv/bin/python bench/probe_w4_cpu.py [n]
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import psutil

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(1, os.path.dirname(HERE))

import bench_workloads as bw  # noqa: E402

import minigun_nb as mg  # noqa: E402


def cpu(me: psutil.Process) -> tuple[float, float]:
    """CPU seconds so far of this process and of its live children."""
    kids = 0.0
    for child in me.children(recursive=True):
        try:
            t = child.cpu_times()
        except psutil.Error:
            continue
        kids += t.user + t.system
    t = me.cpu_times()
    return t.user + t.system, kids


def w4_cases(n: int) -> tuple[dict[str, Callable[[], Any]], Callable[[], None]]:
    """W4 and its reference, warm, as callables by name; and what closes them."""
    pipe = mg.Pipeline("w4")

    @pipe.producer
    def numbers():
        yield from range(n)

    pipe.processor(bw.inc, name="plus_one", backend="process", workers=2)
    pool = multiprocessing.Pool(2)
    cases = {
        "Pool.imap": lambda: list(pool.imap(bw.inc, range(n), chunksize=1000)),
        "minigun_nb": lambda: pipe.run(display="none"),
    }
    for fn in cases.values():
        fn()  # warm: pools started, functions shipped

    def close() -> None:
        pool.terminate()
        mg.shutdown()

    return cases, close


def main(n: int) -> None:
    cases, close = w4_cases(n)
    me = psutil.Process()
    try:
        for _ in range(3):
            for name, fn in cases.items():
                k0, w0 = cpu(me)
                t0 = time.perf_counter()
                fn()
                wall = time.perf_counter() - t0
                k1, w1 = cpu(me)
                print(f"{name:10s} wall {wall:.3f} s  kernel CPU {k1 - k0:.3f} s "
                      f"({(k1 - k0) / wall:.2f} cores)  workers CPU {w1 - w0:.3f} s")
    finally:
        close()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
