"""The user-shaped workloads of issue 12, each beside its reference and the peers, in one process.

Written the way a notebook user writes them: generator producers, default options (only the
options the workload names), ``display="none"`` (the display has its own benchmark). Every
system runs in this process, repeats interleaved, medians; see ``_harness.py`` for the load
record and the redo rule. ``ratio`` follows the issue's table: for W1, W4 and W5 throughput
relative to the reference (higher is better), for W2 the time over the ideal (lower is better),
for W3 the speed-up over a serial loop, for W6 megabytes of peak RSS above the baseline.

W1  generator producer (``yield from range(n)``) -> processor ``x + 1`` -> consumer that counts,
    1 worker each, vs a 3-thread ``queue.Queue`` chain moving lists of 100 (goal >= 0.50).
W2  2,000 x 5 ms sleeps on 64 threads and on 64 coroutines, vs ``ThreadPoolExecutor(64).map``
    and ``asyncio.gather`` with a ``Semaphore(64)`` (hold: threads <= 1.2 x ideal, async at
    parity with gather).
W3  32 and 64 items of ~50 ms pure-Python CPU, workers=2, speed-up vs a serial loop, on the
    process and fork backends (goal >= 1.90), beside ``multiprocessing.Pool(2).map``, loky's
    ``map``, a Dask ``LocalCluster(2)`` (started once per size; its start is its own row),
    mpire, joblib and pypeln.
W4  n x ``x + 1`` through a process stage, workers=2, default options, vs
    ``Pool(2).imap(chunksize=1000)``, beside loky, mpire and joblib with chunks of 1000
    (goal >= 0.70).
W5  a frame -> ``debatch(rows=1000)`` -> thread stage ``df.assign(...)`` -> ``rebatch(100_000)``
    vs a plain pandas loop, beside pypeln with a hand-written rebatch (goal >= 0.80).
W6  generator of 10 KB ``bytes`` -> consumer sleeping 0.1 ms, ``queue_size=100``: peak RSS above
    the baseline, each repeat in a fresh interpreter, vs a ``queue.Queue(100)`` chain and pypeln
    with ``maxsize=100`` (goal <= 2.0 MB; the queue bound is 1.0 MB).

Run: ``.venv/bin/python bench/bench_workloads.py [W1 W3 ...]`` or ``make bench``.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(1, os.path.dirname(HERE))

import _harness as h  # noqa: E402

import minigun_nb as mg  # noqa: E402

N_W1 = h.size(1_000_000, 100_000)
N_W4 = h.size(1_000_000, 100_000)
ROWS_W5 = h.size(1_000_000, 100_000)
N_W6 = h.size(10_000, 2_000)
CPU_SIZES = (32, 64) if not h.QUICK else (8,)
CPU_SECONDS = 0.05 if not h.QUICK else 0.01
CPU_REPEATS = int(os.environ.get("MG_BENCH_CPU_REPEATS", "3"))
W6_REPEATS = int(os.environ.get("MG_BENCH_W6_REPEATS", "3"))
END = object()


# --- work functions (module level, so every pool can pickle them by reference) -------------


def inc(x: int) -> int:
    return x + 1


def burn(n: int) -> int:
    s = 0
    for i in range(n):
        s += i * i % 7
    return s


def calibrate(seconds: float) -> int:
    """Loop count of ``burn`` that takes about ``seconds`` on this machine now."""
    n = 200_000
    t = time.perf_counter()
    burn(n)
    return max(1000, int(n * seconds / (time.perf_counter() - t)))


def transform(df: Any) -> Any:
    return df.assign(z=df.x * 2 + df.y)


# --- W1 ---------------------------------------------------------------------------------------


def w1_pipeline(n: int, returns: bool = False) -> Callable[[], None]:
    pipe = mg.Pipeline("w1")
    count = [0]
    if returns:
        pipe.producer(lambda: range(n), name="numbers")
    else:

        @pipe.producer
        def numbers():
            yield from range(n)

    @pipe.processor
    def plus_one(x):
        return x + 1

    @pipe.consumer
    def tally(x):
        count[0] += 1

    def run() -> None:
        count[0] = 0
        pipe.run(display="none")
        assert count[0] == n, count

    return run


def queue_chain(n: int, per_put: int = 100) -> None:
    """The reference: three threads, ``queue.Queue(10)`` between them, lists of 100 per put."""
    q1: queue.Queue = queue.Queue(10)
    q2: queue.Queue = queue.Queue(10)
    count = [0]

    def produce() -> None:
        for i in range(0, n, per_put):
            q1.put(list(range(i, min(n, i + per_put))))
        q1.put(END)

    def middle() -> None:
        while (chunk := q1.get()) is not END:
            q2.put([x + 1 for x in chunk])
        q2.put(END)

    def consume() -> None:
        while (chunk := q2.get()) is not END:
            count[0] += len(chunk)

    threads = [threading.Thread(target=f) for f in (produce, middle, consume)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert count[0] == n


def w1() -> list[dict[str, Any]]:
    n = N_W1
    t = h.interleaved({
        "chain": lambda: queue_chain(n),
        "mg": w1_pipeline(n),
        "mg_returns": w1_pipeline(n, returns=True),
    })
    ref = t["chain"].median
    return [
        h.row("W1", "3-thread queue.Queue chain, lists of 100 (reference)", t["chain"],
              rate=h.per_s(n, ref), ratio=1.0, goal="reference"),
        h.row("W1", f"minigun_nb generator producer -> x+1 -> counting consumer, {n:,}",
              t["mg"], rate=h.per_s(n, t["mg"].median), ratio=ref / t["mg"].median,
              goal=_goal(ref / t["mg"].median >= 0.50, ">= 0.50")),
        h.row("W1", "minigun_nb, the producer returns range(n) instead", t["mg_returns"],
              rate=h.per_s(n, t["mg_returns"].median), ratio=ref / t["mg_returns"].median,
              goal="info"),
    ]


def _goal(met: bool, goal: str) -> str:
    return f"{goal}: {'met' if met else 'MISSED'}"


# --- W2 ---------------------------------------------------------------------------------------


def w2() -> list[dict[str, Any]]:
    n, pause, workers = 2000, 0.005, 64
    ideal = n * pause / workers
    threads = mg.Pipeline("w2_threads")
    threads.producer(_gen_range(n), name="numbers")
    threads.processor(_sleepy(pause), name="wait", workers=workers)
    tasks = mg.Pipeline("w2_async")
    tasks.producer(_gen_range(n), name="numbers")
    tasks.processor(_async_sleepy(pause), name="wait", backend="async", workers=workers)

    def pool() -> None:
        with ThreadPoolExecutor(workers) as ex:
            list(ex.map(lambda x: time.sleep(pause), range(n)))

    async def gathered() -> None:
        sem = asyncio.Semaphore(workers)

        async def one(x: int) -> int:
            async with sem:
                await asyncio.sleep(pause)
                return x

        await asyncio.gather(*(one(x) for x in range(n)))

    t = h.interleaved({
        "pool": pool,
        "threads": lambda: _check(threads.run(display="none"), n),
        "gather": lambda: asyncio.run(gathered()),
        "async": lambda: _check(tasks.run(display="none"), n),
    })
    r = {k: v.median / ideal for k, v in t.items()}
    return [
        h.row("W2", "ThreadPoolExecutor(64).map", t["pool"], ratio=r["pool"], goal="x ideal"),
        h.row("W2", "minigun_nb thread stage, workers=64", t["threads"], ratio=r["threads"],
              goal=_goal(r["threads"] <= 1.2, "<= 1.2 x ideal")
              + f" ({r['threads'] / r['pool']:.2f} x the pool)"),
        h.row("W2", "asyncio.gather + Semaphore(64)", t["gather"], ratio=r["gather"],
              goal="x ideal"),
        h.row("W2", "minigun_nb async stage, workers=64", t["async"], ratio=r["async"],
              goal=_goal(r["async"] <= r["gather"] * 1.1, "parity with gather (<= 1.1 x)")),
    ]


def _gen_range(n: int) -> Callable[[], Any]:
    def numbers():
        yield from range(n)

    return numbers


def _sleepy(pause: float) -> Callable[[Any], Any]:
    def wait(x):
        time.sleep(pause)
        return x

    return wait


def _async_sleepy(pause: float) -> Callable[[Any], Any]:
    async def wait(x):
        await asyncio.sleep(pause)
        return x

    return wait


def _check(result: Any, n: int) -> None:
    done = int(result.stats["done"].iloc[-1])
    assert result.ok and done == n, result.stats


# --- W3 ---------------------------------------------------------------------------------------


def w3() -> list[dict[str, Any]]:
    import loky
    from mpire import WorkerPool

    burn_n = calibrate(CPU_SECONDS)
    rows: list[dict[str, Any]] = []
    pools = {
        "Pool": multiprocessing.Pool(2),
        "loky": loky.get_reusable_executor(max_workers=2),
        "mpire": WorkerPool(n_jobs=2, keep_alive=True),
    }
    try:
        for k in CPU_SIZES:
            rows += _w3_size([burn_n] * k, pools)
    finally:
        pools["Pool"].terminate()
        pools["mpire"].terminate()
        mg.shutdown()
    return rows


def _w3_size(items: list[int], pools: dict[str, Any]) -> list[dict[str, Any]]:
    import logging

    import joblib
    import pypeln as pl
    from distributed import Client, LocalCluster

    k = len(items)
    pool, lk, mp = pools["Pool"], pools["loky"], pools["mpire"]
    pipes = {b: _cpu_pipeline(items, backend=b) for b in ("process", "fork")}
    t0 = time.perf_counter()
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                           dashboard_address=":0", silence_logs=logging.ERROR)
    client = Client(cluster)
    client.run(burn, 10)
    t_start = time.perf_counter() - t0
    pipes["dask"] = _cpu_pipeline(items, backend="dask", dask_client=client)
    try:
        t = h.interleaved({
            "serial": lambda: [burn(x) for x in items],
            "Pool(2).map": lambda: pool.map(burn, items),
            "loky map": lambda: list(lk.map(burn, items)),
            "Dask LocalCluster(2) client.map": lambda: client.gather(
                client.map(burn, items, pure=False)),
            "mpire WorkerPool(2).map": lambda: mp.map(burn, items),
            "joblib Parallel(2)": lambda: joblib.Parallel(n_jobs=2)(
                joblib.delayed(burn)(x) for x in items),
            "pypeln process.map(workers=2)": lambda: list(pl.process.map(burn, items, workers=2)),
            "minigun_nb process stage": lambda: _check(pipes["process"].run(display="none"), k),
            "minigun_nb fork stage": lambda: _check(pipes["fork"].run(display="none"), k),
            "minigun_nb dask stage (same cluster)": lambda: _check(
                pipes["dask"].run(display="none"), k),
        }, repeats=CPU_REPEATS)
    finally:
        client.close()
        cluster.close()
    serial = t["serial"].median
    rows = [h.row("W3", f"{k} x {CPU_SECONDS * 1000:.0f} ms: serial loop (reference; ideal 2.00)",
                  t["serial"], ratio=1.0, goal="reference")]
    for name, timing in t.items():
        if name == "serial":
            continue
        speed = serial / timing.median
        target = name in ("minigun_nb process stage", "minigun_nb fork stage")
        rows.append(h.row("W3", f"{k} items: {name}", timing, ratio=speed,
                          goal=_goal(speed >= 1.90, ">= 1.90") if target else "speed-up"))
    rows.append(h.row("W3", f"{k} items: LocalCluster(2) start + Client (once, not in the "
                      "figures above)", None, value=f"{t_start:.3f} s", goal="info"))
    return rows


def _cpu_pipeline(items: list[int], **opts: Any) -> mg.Pipeline:
    pipe = mg.Pipeline("w3", dask_client=opts.pop("dask_client", None))

    @pipe.producer
    def jobs():
        yield from items

    pipe.processor(burn, name="work", workers=2, **opts)
    return pipe


# --- W4 ---------------------------------------------------------------------------------------


def w4() -> list[dict[str, Any]]:
    import joblib
    import loky
    from mpire import WorkerPool

    n = N_W4
    pipe = mg.Pipeline("w4")

    @pipe.producer
    def numbers():
        yield from range(n)

    pipe.processor(inc, name="plus_one", backend="process", workers=2)
    pool = multiprocessing.Pool(2)
    lk = loky.get_reusable_executor(max_workers=2)
    mp = WorkerPool(n_jobs=2, keep_alive=True)
    try:
        t = h.interleaved({
            "pool": lambda: list(pool.imap(inc, range(n), chunksize=1000)),
            "loky": lambda: list(lk.map(inc, range(n), chunksize=1000)),
            "mpire": lambda: mp.map(inc, range(n), chunk_size=1000),
            "joblib": lambda: joblib.Parallel(n_jobs=2, batch_size=1000)(
                joblib.delayed(inc)(x) for x in range(n)),
            "mg": lambda: _check(pipe.run(display="none"), n),
        })
    finally:
        pool.terminate()
        mp.terminate()
        mg.shutdown()
    ref = t["pool"].median
    names = {
        "pool": "multiprocessing.Pool(2).imap(chunksize=1000) (reference)",
        "loky": "loky map(chunksize=1000)",
        "mpire": "mpire WorkerPool(2).map(chunk_size=1000)",
        "joblib": "joblib Parallel(2, batch_size=1000)",
        "mg": f"minigun_nb process stage, workers=2, default options, {n:,}",
    }
    rows = []
    for key, label in names.items():
        ratio = ref / t[key].median
        goal = {"pool": "reference", "mg": _goal(ratio >= 0.70, ">= 0.70")}.get(key, "peer")
        rows.append(h.row("W4", label, t[key], rate=h.per_s(n, t[key].median), ratio=ratio,
                          goal=goal))
    return rows


# --- W5 ---------------------------------------------------------------------------------------


def w5() -> list[dict[str, Any]]:
    import numpy as np
    import pandas as pd
    import pypeln as pl

    n, chunk, out = ROWS_W5, 1000, 100_000
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"x": rng.random(n), "y": rng.random(n), "k": rng.integers(0, 1000, n)})

    def slices():
        for start in range(0, len(df), chunk):
            yield df.iloc[start:start + chunk]

    def rebatch_by_hand(frames: Any) -> list[Any]:
        done, pending = [], []
        for piece in frames:
            pending.append(piece)
            if len(pending) * chunk >= out:  # out is a multiple of chunk: cut exactly there
                done.append(pd.concat(pending))
                pending = []
        if pending:
            done.append(pd.concat(pending))
        return done

    pipe = mg.Pipeline("w5")

    @pipe.producer
    def frame():
        yield df

    pipe.debatch(rows=chunk)
    pipe.processor(transform, name="transform")
    pipe.rebatch(out)

    def run_mg() -> list[Any]:
        result = pipe.run(display="none")
        assert result.ok and sum(len(f) for f in result.outputs) == n, result.stats
        return result.outputs

    expected = rebatch_by_hand(transform(s) for s in slices())
    pd.testing.assert_frame_equal(pd.concat(run_mg()), pd.concat(expected))
    del expected
    t = h.interleaved({
        "plain": lambda: rebatch_by_hand(transform(s) for s in slices()),
        "pypeln": lambda: rebatch_by_hand(pl.thread.map(transform, slices(), workers=1)),
        "mg": run_mg,
    })
    ref = t["plain"].median
    return [
        h.row("W5", "plain pandas loop: iloc slices, assign, concat 100 (reference)",
              t["plain"], rate=h.per_s(n, ref) + " rows", ratio=1.0, goal="reference"),
        h.row("W5", "pypeln thread.map + hand rebatch", t["pypeln"],
              rate=h.per_s(n, t["pypeln"].median) + " rows", ratio=ref / t["pypeln"].median,
              goal="peer"),
        h.row("W5", f"minigun_nb debatch(rows=1000) -> thread assign -> rebatch(100_000), "
              f"{n:,} rows", t["mg"], rate=h.per_s(n, t["mg"].median) + " rows",
              ratio=ref / t["mg"].median, goal=_goal(ref / t["mg"].median >= 0.80, ">= 0.80")),
    ]


# --- W6 ---------------------------------------------------------------------------------------


def w6_peak_mb(case: str, n: int) -> float:
    """Peak RSS above the baseline of one fresh interpreter running ``case``, in MB."""
    child = os.path.join(HERE, "_w6_child.py")
    out = subprocess.run([sys.executable, child, case, str(n)], capture_output=True, text=True,
                         timeout=600)
    if out.returncode:
        raise RuntimeError(f"W6 {case} failed:\n{out.stderr}")
    return int(out.stdout.split()[-1]) / 1e6


def w6() -> list[dict[str, Any]]:
    n = N_W6
    t = h.interleaved({c: (lambda c=c: w6_peak_mb(c, n)) for c in ("chain", "minigun", "pypeln")},
                      repeats=W6_REPEATS, probe=lambda fn: fn(), warm=False)
    mb = {k: v.median for k, v in t.items()}
    return [
        h.row("W6", "the queue bound: 100 x 10 KB", None, value="1.00 MB", goal="bound"),
        h.row("W6", "queue.Queue(100) chain (reference)", t["chain"], value=f"{mb['chain']:.2f} MB",
              goal="reference"),
        h.row("W6", "pypeln thread.each(maxsize=100)", t["pypeln"],
              value=f"{mb['pypeln']:.2f} MB", goal="peer"),
        h.row("W6", f"minigun_nb generator -> consumer, queue_size=100, {n:,} items",
              t["minigun"], value=f"{mb['minigun']:.2f} MB",
              goal=_goal(mb["minigun"] <= 2.0, "<= 2.0 MB")),
    ]


WORKLOADS = {"W1": w1, "W2": w2, "W3": w3, "W4": w4, "W5": w5, "W6": w6}


def main(names: list[str] | None = None) -> list[dict[str, Any]]:
    """Every workload (or those named, e.g. ``["W1", "W4"]``) as rows of one table."""
    rows = [h.machine()]
    for name in names or list(WORKLOADS):
        rows += WORKLOADS[name]()
    return rows


if __name__ == "__main__":
    h.print_table(main(sys.argv[1:] or None))
