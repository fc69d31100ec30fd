"""What a fork costs in a light process and in one like the benchmark's (pandas, Dask's
LocalCluster and Client, a Pool, loky and mpire pools alive): ``os.fork()`` in the parent,
and the child's exit until ``waitpid`` returns, 20 forks of a child that exits at once.

Not a `make bench` module: the probe behind the W3 fork notes in ``bench/README.md``::

    .venv/bin/python bench/probe_fork_cost.py light
    .venv/bin/python bench/probe_fork_cost.py heavy
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import statistics
import sys
import time


def main(kind: str) -> None:
    keep: list[object] = []
    if kind == "heavy":
        import loky
        import pandas  # noqa: F401
        from distributed import Client, LocalCluster
        from mpire import WorkerPool

        keep += [multiprocessing.Pool(2), loky.get_reusable_executor(max_workers=2),
                 WorkerPool(n_jobs=2, keep_alive=True)]
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                               dashboard_address=":0", silence_logs=logging.ERROR)
        keep += [cluster, Client(cluster)]
    import psutil

    me = psutil.Process()
    forks, exits = [], []
    for _ in range(20):
        t0 = time.perf_counter()
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        t1 = time.perf_counter()
        os.waitpid(pid, 0)
        forks.append(t1 - t0)
        exits.append(time.perf_counter() - t1)
    print(f"{kind}: RSS {me.memory_info().rss >> 20} MB, {len(me.threads())} threads; "
          f"fork {statistics.median(forks) * 1e3:.2f} ms, "
          f"exit and reap {statistics.median(exits) * 1e3:.2f} ms (medians of 20)")
    sys.stdout.flush()
    os._exit(0)  # the pools and the cluster go with the process


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "light")
