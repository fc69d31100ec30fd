"""A/B probe for W3's small CPU job: 64 items of 50 ms CPU through a pooled stage, workers=2.

Not a `make bench` module (it compares two trees, not minigun_nb with its peers). Run it
alternately against two checkouts, e.g. a worktree of an older commit and this one::

    git worktree add /tmp/base <rev>
    for r in 1 2 3; do for t in /tmp/base .; do PYTHONPATH=$t python bench/ab_small_cpu.py process; done; done

It prints the tree, the backend and three warm timings with their median (ideal: 1.6 s).
"""

from __future__ import annotations

import statistics
import sys
import time

import minigun_nb as mg


def burn(x: int) -> int:
    t = time.process_time()
    while time.process_time() - t < 0.05:
        pass
    return x


def once(n: int, backend: str) -> float:
    pipe = mg.Pipeline("w3")

    @pipe.producer
    def items():
        yield from range(n)

    pipe.processor(burn, name="burn", backend=backend, workers=2)
    pipe.consumer(lambda x: None, name="sink")
    t = time.perf_counter()
    pipe.run(display="none")
    return time.perf_counter() - t


if __name__ == "__main__":
    backend = sys.argv[1] if len(sys.argv) > 1 else "process"
    once(8, backend)  # warm the pool
    times = [once(64, backend) for _ in range(3)]
    print(mg.__file__, backend, " ".join(f"{t:.3f}" for t in times),
          f"median {statistics.median(times):.3f}")
