"""W6 of ``bench_workloads``, run in a fresh interpreter per repeat: peak RSS above baseline.

``python bench/_w6_child.py CASE N`` prints ``baseline_bytes peak_above_baseline_bytes``. The
case runs 300 items first (threads, imports, the allocator's arenas), then the baseline is taken
after a collection and ``malloc_trim``, the kernel's peak-RSS mark is reset
(``/proc/self/clear_refs``), the case runs ``N`` items, and the peak is ``VmHWM``.
"""

from __future__ import annotations

import ctypes
import gc
import os
import queue
import sys
import threading
import time
from collections.abc import Iterator

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import pypeln as pl  # noqa: E402

import minigun_nb as mg  # noqa: E402

SIZE = 10_000
END = object()


def gen(k: int) -> Iterator[bytes]:
    for _ in range(k):
        yield b"x" * SIZE  # touches every page of the 10 KB


def slow(b: bytes) -> None:
    time.sleep(0.0001)


def chain(k: int) -> None:
    q: queue.Queue = queue.Queue(100)

    def produce() -> None:
        for b in gen(k):
            q.put(b)
        q.put(END)

    def consume() -> None:
        while (b := q.get()) is not END:
            slow(b)

    threads = [threading.Thread(target=produce), threading.Thread(target=consume)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


pipe = mg.Pipeline("w6", queue_size=100)
n_run = [0]


@pipe.producer
def blobs():
    yield from gen(n_run[0])


pipe.consumer(slow, name="slow")


def minigun(k: int) -> None:
    n_run[0] = k
    assert int(pipe.run(display="none").stats.loc["slow", "done"]) == k


def pypeln(k: int) -> None:
    pl.thread.each(slow, gen(k), workers=1, maxsize=100, run=True)


def status(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1]) * 1024
    raise KeyError(key)


def main(case: str, n: int) -> None:
    fn = {"chain": chain, "minigun": minigun, "pypeln": pypeln}[case]
    fn(300)
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    base = status("VmRSS:")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # the peak RSS (VmHWM) restarts from here
    fn(n)
    print(base, status("VmHWM:") - base)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
