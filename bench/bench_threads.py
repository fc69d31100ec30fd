"""Thread runtime benchmarks (issue: runtime). Ratios against baselines run in this process.

Cases
-----
- 3-stage no-op pipeline over 1,000,000 ints (producer -> processor -> consumer) against a
  hand-written 3-thread ``queue.Queue`` chain moving one item per put, one moving 100 items per
  put, and a plain loop.
- I/O: 2,000 items x 5 ms sleep with ``workers=64`` against the ideal 2000 x 5 ms / 64, and a
  plain ``ThreadPoolExecutor(64).map`` for reference.
- Memory: peak RSS of a fast producer -> slow consumer (``queue_size=100``) at 10^5 and 10^6
  items of 1 KiB each, each in a fresh subprocess; flat means the bound holds.
"""

from __future__ import annotations

import queue
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

N = 1_000_000
SENTINEL = object()


def best(fn, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def plain_loop() -> None:
    out = []
    for x in range(N):
        y = x
        out.append(y)


def same(x):
    return x


def sink(x):
    return None


def hand_chain(per_put: int, call: bool = False) -> None:
    q1: queue.Queue = queue.Queue(maxsize=max(1, 1000 // per_put))
    q2: queue.Queue = queue.Queue(maxsize=max(1, 1000 // per_put))
    out: list = []

    def produce() -> None:
        if per_put == 1:
            for x in range(N):
                q1.put(x)
        else:
            for i in range(0, N, per_put):
                q1.put(list(range(i, min(N, i + per_put))))
        q1.put(SENTINEL)

    def middle() -> None:
        while (chunk := q1.get()) is not SENTINEL:
            if call:
                q2.put(same(chunk) if per_put == 1 else [same(x) for x in chunk])
            else:
                q2.put(chunk if per_put == 1 else [x for x in chunk])
        q2.put(SENTINEL)

    def consume() -> None:
        while (chunk := q2.get()) is not SENTINEL:
            if per_put == 1:
                out.append(sink(chunk) if call else chunk)
            else:
                out.extend([sink(x) for x in chunk] if call else chunk)

    threads = [threading.Thread(target=f) for f in (produce, middle, consume)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(out) == N


def pipeline_noop(feed: str = "producer") -> None:
    """producer -> processor -> consumer; or ``items=`` (a generator) -> processor -> consumer."""
    import minigun_nb as mg

    pipe = mg.Pipeline("noop", max_outputs=0)

    if feed == "producer":

        @pipe.producer
        def numbers():
            yield from range(N)

    @pipe.processor
    def same(x):
        return x

    @pipe.consumer
    def sink(x):
        return None

    items = (i for i in range(N)) if feed == "items" else None
    result = pipe.run(items=items, display="none")
    assert int(result.stats.loc["sink", "done"]) == N, result.stats


def io_pipeline() -> None:
    import minigun_nb as mg

    pipe = mg.Pipeline("io")

    @pipe.processor(workers=64)
    def wait(x):
        time.sleep(0.005)
        return x

    result = pipe.run(items=range(2000), display="none")
    assert len(result.outputs) == 2000


def io_pool() -> None:
    with ThreadPoolExecutor(64) as pool:
        list(pool.map(lambda x: time.sleep(0.005), range(2000)))


MEMORY_SCRIPT = """
import sys, time, tracemalloc
import minigun_nb as mg
n, qsize = int(sys.argv[1]), int(sys.argv[2])
pipe = mg.Pipeline("mem", queue_size=qsize, max_outputs=0)

@pipe.producer
def blobs():
    for i in range(n):
        yield bytes(1024)

@pipe.processor
def touch(b):
    return b

@pipe.consumer
def slow(b):
    time.sleep(0)  # yield the GIL: the consumer is slower than the producer
    s = 0
    for i in range(40):
        s += i
    return None

tracemalloc.start()
pipe.run(display="none")
print(tracemalloc.get_traced_memory()[1] // 1024)
"""


def peak_kib(n: int, queue_size: int = 100) -> int:
    """Peak traced Python memory of the run, in a fresh interpreter."""
    out = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT, str(n), str(queue_size)],
                         capture_output=True, text=True, check=True, timeout=900)
    return int(out.stdout.strip().splitlines()[-1])


def main() -> list[dict]:
    rows = []
    t_loop = best(plain_loop)
    t_one = best(lambda: hand_chain(1), repeat=1)
    t_hundred = best(lambda: hand_chain(100))
    t_called = best(lambda: hand_chain(100, call=True))
    t_pipe = best(pipeline_noop)
    for case, t in [("plain loop", t_loop), ("queue chain, 1 item/put", t_one),
                    ("queue chain, 100 items/put", t_hundred),
                    ("queue chain, 100 items/put, calling the 2 stage functions", t_called),
                    ("minigun_nb 3-stage", t_pipe)]:
        rows.append({"case": case, "seconds": round(t, 3), "items_per_s": round(N / t),
                     "ratio": round(t_hundred / t, 2), "target": ""})
    t_items = best(lambda: pipeline_noop("items"))
    rows.append({"case": "minigun_nb items=<generator> -> processor -> consumer",
                 "seconds": round(t_items, 3), "items_per_s": round(N / t_items),
                 "ratio": round(t_hundred / t_items, 2), "target": "reference"})
    rows[-2]["target"] = (f">= 0.5 of 100/put (got {t_hundred / t_pipe:.2f}; "
                          f"{t_called / t_pipe:.2f} of the chain calling the same functions); "
                          f">= 5x 1/put (got {t_one / t_pipe:.1f}x)")
    ideal = 2000 * 0.005 / 64
    t_io = best(io_pipeline)
    t_pool = best(io_pool)
    rows.append({"case": "I/O 2000 x 5 ms, workers=64", "seconds": round(t_io, 3),
                 "items_per_s": round(2000 / t_io), "ratio": round(t_io / ideal, 2),
                 "target": "<= 1.2x ideal (ratio = time / ideal)"})
    rows.append({"case": "ThreadPoolExecutor(64).map", "seconds": round(t_pool, 3),
                 "items_per_s": round(2000 / t_pool), "ratio": round(t_pool / ideal, 2),
                 "target": "reference"})
    small, large = peak_kib(100_000), peak_kib(1_000_000)
    rows.append({"case": "peak traced memory, queue_size=100: 1e5 -> 1e6 items (KiB)",
                 "seconds": "", "items_per_s": f"{small} -> {large}",
                 "ratio": round(large / small, 2), "target": "<= 1.2 (flat)"})
    loose = peak_kib(100_000, queue_size=10**7)
    rows.append({"case": "same, 1e5 items, queue_size=10**7 (no bound: the measure is sensitive)",
                 "seconds": "", "items_per_s": f"{loose}", "ratio": round(loose / small, 2),
                 "target": "reference"})
    return rows


def table(rows: list[dict]) -> str:
    cols = ["case", "seconds", "items_per_s", "ratio", "target"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(r[c]) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


if __name__ == "__main__":
    print(table(main()))
