"""Benchmarks of the process, fork and dask backends against the standard tools.

Run: ``.venv/bin/python bench/bench_executors.py`` (prints a markdown table). Cases:

(a) 1,000,000 trivial items through one ``process`` stage with 2 workers, against
    ``multiprocessing.Pool(2).imap(chunksize=1000)`` and loky's own ``map(chunksize=1000)``;
(b) 64 items of ~50 ms pure-Python CPU work with 2 workers, against a serial loop;
(c) a 1 MB DataFrame per item, 200 items, through a ``process`` stage against a fork Pool;
(d) case (b) on ``dask`` (a LocalCluster of 2 workers, given as ``dask_client=`` so its start
    is not counted; the run-scoped cluster is timed separately) against ``process``.

Every contender runs warm (pools started and used once before timing); each figure is the best
of a few repeats. ``ratio`` is the throughput relative to the reference of the case (for (b)
the speed-up over the serial loop); ``target`` is the goal of issue 4.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import time
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import minigun_nb as mg  # noqa: E402

N_TRIVIAL = 1_000_000
N_CPU = 64
N_FRAMES = 200


def inc(x: int) -> int:
    return x + 1


def _burn(n: int) -> int:
    s = 0
    for i in range(n):
        s += i * i % 7
    return s


def _calibrate(seconds: float = 0.05) -> int:
    n = 100_000
    t = time.perf_counter()
    _burn(n)
    dt = time.perf_counter() - t
    return max(1000, int(n * seconds / dt))


def cpu(n: int) -> int:
    return _burn(n)


def frame_work(df: Any) -> Any:
    return df * 2


def _best(fn: Callable[[], Any], repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def _pipe(
    name: str, producer: Callable[[], Any], fn: Callable[[Any], Any], **opts: Any
) -> mg.Pipeline:
    pipe = mg.Pipeline(name, max_outputs=None, dask_client=opts.pop("dask_client", None))
    pipe.producer(producer, name="source")
    pipe.processor(fn, name="work", **opts)
    return pipe


def _row(
    case: str, seconds: float, items: int, ref_seconds: float | None, target: str
) -> dict[str, Any]:
    return {
        "case": case,
        "seconds": round(seconds, 3),
        "items_per_s": round(items / seconds),
        "ratio": round(ref_seconds / seconds, 2) if ref_seconds else None,
        "target": target,
    }


def case_a() -> list[dict[str, Any]]:
    from loky import ProcessPoolExecutor

    rows = []
    with multiprocessing.Pool(2) as pool:
        list(pool.imap(inc, range(10_000), chunksize=1000))
        t_pool = _best(lambda: list(pool.imap(inc, range(N_TRIVIAL), chunksize=1000)))
    ex = ProcessPoolExecutor(2)
    list(ex.map(inc, range(10_000), chunksize=1000))
    t_loky = _best(lambda: list(ex.map(inc, range(N_TRIVIAL), chunksize=1000)))
    ex.shutdown()
    pipe = _pipe("a", lambda: range(N_TRIVIAL), inc, backend="process", workers=2)
    pipe.run(display="none")
    t_mg = _best(lambda: pipe.run(display="none"))
    # a chunk never exceeds the stage's queue_size: a bigger queue lets chunks grow to 10k
    big = _pipe(
        "a2", lambda: range(N_TRIVIAL), inc, backend="process", workers=2, queue_size=10_000
    )
    big.run(display="none")
    t_big = _best(lambda: big.run(display="none"))
    # the same pipeline on one thread: what the kernel side (producer, queue, routing,
    # collecting outputs) costs by itself, whatever the executor
    floor = _pipe("a3", lambda: range(N_TRIVIAL), inc)
    floor.run(display="none")
    t_floor = _best(lambda: floor.run(display="none"))
    rows.append(_row("(a) Pool(2).imap chunksize=1000", t_pool, N_TRIVIAL, t_pool, "reference"))
    rows.append(_row("(a) thread stage, 1 worker (runtime floor)", t_floor, N_TRIVIAL, t_pool, "-"))
    rows.append(_row("(a) loky map chunksize=1000", t_loky, N_TRIVIAL, t_pool, "-"))
    rows.append(
        _row(
            "(a) process stage, 2 workers (queue_size=1000: chunks of 1000)",
            t_mg,
            N_TRIVIAL,
            t_pool,
            ">= 0.70",
        )
    )
    rows.append(
        _row("(a) process stage, 2 workers, queue_size=10_000", t_big, N_TRIVIAL, t_pool, ">= 0.70")
    )
    return rows


def case_b(burn_n: int) -> tuple[list[dict[str, Any]], float]:
    items = [burn_n] * N_CPU
    t_serial = _best(lambda: [cpu(x) for x in items], repeat=1)
    pipe = _pipe("b", lambda: items, cpu, backend="process", workers=2)
    pipe.run(display="none")
    t_mg = _best(lambda: pipe.run(display="none"), repeat=2)
    with multiprocessing.get_context("fork").Pool(2) as pool:
        t_pool = _best(lambda: list(pool.imap(cpu, items)), repeat=2)
    return [
        _row("(b) serial loop, 64 x 50 ms", t_serial, N_CPU, t_serial, "reference"),
        _row("(b) fork Pool(2).imap", t_pool, N_CPU, t_serial, "-"),
        _row("(b) process stage, 2 workers", t_mg, N_CPU, t_serial, ">= 1.90"),
    ], t_mg


def case_c() -> list[dict[str, Any]]:
    import numpy as np
    import pandas as pd

    frames = [pd.DataFrame(np.random.default_rng(i).random((16_384, 8))) for i in range(N_FRAMES)]
    assert abs(frames[0].memory_usage().sum() - 2**20) < 2**12  # 1 MB each
    with multiprocessing.get_context("fork").Pool(2) as pool:
        list(pool.imap(frame_work, frames[:4]))
        t_pool = _best(lambda: list(pool.imap(frame_work, frames)))
    pipe = _pipe("c", lambda: frames, frame_work, backend="process", workers=2)
    pipe.run(display="none")
    t_mg = _best(lambda: pipe.run(display="none"))
    fork = _pipe("c2", lambda: frames, frame_work, backend="fork", workers=2)
    t_fork = _best(lambda: fork.run(display="none"))
    return [
        _row("(c) fork Pool(2).imap, 1 MB frames", t_pool, N_FRAMES, t_pool, "reference"),
        _row("(c) process stage, 1 MB frames", t_mg, N_FRAMES, t_pool, ">= 1.00"),
        _row("(c) fork stage, 1 MB frames", t_fork, N_FRAMES, t_pool, "-"),
    ]


def case_d(burn_n: int, t_process: float) -> list[dict[str, Any]]:
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        return [
            {
                "case": "(d) dask",
                "seconds": None,
                "items_per_s": None,
                "ratio": None,
                "target": "dask not installed (pip install minigun_nb[dask])",
            }
        ]
    import logging

    items = [burn_n] * N_CPU
    with (
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            silence_logs=logging.ERROR,
        ) as cluster,
        Client(cluster) as client,
    ):
        pipe = _pipe("d", lambda: items, cpu, backend="dask", workers=2, dask_client=client)
        pipe.run(display="none")
        t_dask = _best(lambda: pipe.run(display="none"), repeat=2)
    scoped = _pipe("d2", lambda: items, cpu, backend="dask", workers=2)
    t_scoped = _best(lambda: scoped.run(display="none"), repeat=1)
    return [
        _row("(d) dask stage, given LocalCluster(2)", t_dask, N_CPU, t_process, "report"),
        _row("(d) dask stage, LocalCluster per run", t_scoped, N_CPU, t_process, "report"),
    ]


def main() -> list[dict[str, Any]]:
    burn_n = _calibrate()
    rows = case_a()
    b_rows, t_process = case_b(burn_n)
    rows += b_rows
    rows += case_c()
    rows += case_d(burn_n, t_process)
    mg.shutdown()
    return rows


def _table(rows: list[dict[str, Any]]) -> str:
    keys = ["case", "seconds", "items_per_s", "ratio", "target"]
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    for r in rows:
        lines.append("| " + " | ".join("" if r[k] is None else str(r[k]) for k in keys) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(_table(main()))
