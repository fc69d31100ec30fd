"""W4's thread switches: voluntary context switches of the kernel process and of its worker
processes around each run, minigun_nb beside ``multiprocessing.Pool(2).imap(chunksize=1000)``.

Not a `make bench` module (no README region): the probe behind the 2026-12-08 W4 notes in
``bench/README.md``. Every switch is a thread put to sleep and woken again, ~10 us of CPU on
these machines, on two cores the workers also need::

    .venv/bin/python bench/probe_switches.py [n] [runs]
"""

from __future__ import annotations

import os
import resource
import statistics
import sys
import time

import psutil

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(1, os.path.dirname(HERE))

from probe_w4_cpu import w4_cases  # noqa: E402


def switches(me: psutil.Process) -> tuple[int, int]:
    """Voluntary switches so far: this process (all its threads, ended ones too), its live
    children."""
    kids = 0
    for child in me.children(recursive=True):
        try:
            kids += child.num_ctx_switches().voluntary
        except psutil.Error:
            continue
    return resource.getrusage(resource.RUSAGE_SELF).ru_nvcsw, kids


def main(n: int, runs: int) -> None:
    cases, close = w4_cases(n)
    me = psutil.Process()
    got: dict[str, list[tuple[float, int, int]]] = {name: [] for name in cases}
    try:
        for _ in range(runs):
            for name, fn in cases.items():
                k0, w0 = switches(me)
                t0 = time.perf_counter()
                fn()
                wall = time.perf_counter() - t0
                k1, w1 = switches(me)
                got[name].append((wall, k1 - k0, w1 - w0))
    finally:
        close()
    for name, rows in got.items():
        wall, kernel, workers = (statistics.median(col) for col in zip(*rows, strict=True))
        print(f"{name:10s} wall {wall:.3f} s  kernel switches {kernel:,.0f}  "
              f"workers' switches {workers:,.0f}  (medians of {runs})")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000,
         int(sys.argv[2]) if len(sys.argv) > 2 else 6)
