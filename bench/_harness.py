"""Shared timing harness of ``bench_workloads`` and ``bench_scaling`` (not a benchmark itself).

Every system runs in this one process; the repeats are interleaved (case A, B, C, A, B, C, ...)
so that a change in the machine's load hits every case alike, and each figure is the median of
its repeats. The 1-minute load average is read before and after each repeat; a repeat during
which it rose by more than ``LOAD_JUMP`` (another process started working) is run again, at most
``MAX_REDO`` times, and the redo is counted in the row. The load average moves slowly (the
kernel updates it every 5 s) and counts this benchmark's own threads and workers too, so each
repeat also measures the cores *other* processes used while it ran (``/proc/stat`` minus this
process tree, column ``others``: median and max over the kept repeats); a repeat during which
they used more than ``OTHERS_MAX`` cores is redone as well, and of the attempts the calmest is
kept. ``load`` is the 1-minute load average (lowest before - highest after).

Environment
-----------
``MG_BENCH_QUICK=1``
    small sizes, for developing the benchmarks (the figures mean little).
``MG_BENCH_REPEATS``
    repeats per case (default 5; CPU-heavy cases use fewer, see each module).
``MG_BENCH_LOAD_JUMP``
    the load-average rise that makes a repeat be redone (default 0.75).
``MG_BENCH_OTHERS_MAX``
    the cores other processes may use during a repeat before it is redone (default 0.5).
"""

from __future__ import annotations

import gc
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

QUICK = os.environ.get("MG_BENCH_QUICK") == "1"
REPEATS = int(os.environ.get("MG_BENCH_REPEATS", "5"))
LOAD_JUMP = float(os.environ.get("MG_BENCH_LOAD_JUMP", "0.75"))
OTHERS_MAX = float(os.environ.get("MG_BENCH_OTHERS_MAX", "0.5"))
MAX_REDO = 2


def size(full: int, quick: int) -> int:
    """``full``, or ``quick`` under ``MG_BENCH_QUICK=1``."""
    return quick if QUICK else full


@dataclass
class Timing:
    """The repeats of one case: seconds (or any measure), the load around each, redos."""

    values: list[float] = field(default_factory=list)
    loads: list[tuple[float, float]] = field(default_factory=list)
    others: list[float] = field(default_factory=list)
    redone: int = 0

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    def load_text(self) -> str:
        """``"3.9-4.6"``: the lowest load before and the highest after any kept repeat."""
        lo = min(b for b, _ in self.loads)
        hi = max(a for _, a in self.loads)
        return f"{lo:.1f}-{hi:.1f}"

    def others_text(self) -> str:
        """Cores other processes used during the kept repeats: median (max)."""
        return f"{statistics.median(self.others):.2f} ({max(self.others):.2f})"


def load1() -> float:
    return os.getloadavg()[0]


_HZ = os.sysconf("SC_CLK_TCK")


def _busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy since boot (``/proc/stat``)."""
    with open("/proc/stat") as f:
        user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, f.readline().split()[1:9])
    return (user + nice + system + irq + softirq + steal) / _HZ


def _own_seconds() -> float:
    """CPU seconds of this process, its live descendants and its waited-for children."""
    import resource

    import psutil

    me = psutil.Process()
    total = sum(me.cpu_times()[:2])
    for child in me.children(recursive=True):
        try:
            total += sum(child.cpu_times()[:2])
        except psutil.Error:  # it ended meanwhile: counted below once waited for
            pass
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return total + kids.ru_utime + kids.ru_stime


class OtherLoad:
    """Cores used by *other* processes between ``start()`` and ``stop()``.

    The machine's busy CPU time (``/proc/stat``) minus that of this process tree (psutil), over
    the wall time. Descendants that end without being waited for (rare) are counted as other.
    """

    def start(self) -> None:
        self.t, self.busy, self.own = time.perf_counter(), _busy_seconds(), _own_seconds()

    def stop(self) -> float:
        wall = time.perf_counter() - self.t
        other = (_busy_seconds() - self.busy) - (_own_seconds() - self.own)
        return max(0.0, other / wall)


def measure(fn: Callable[[], Any]) -> float:
    """Wall-clock seconds of one call (after a garbage collection, so no case pays another's)."""
    gc.collect()
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def interleaved(
    cases: dict[str, Callable[[], Any]],
    repeats: int = REPEATS,
    *,
    probe: Callable[[Callable[[], Any]], float] = measure,
    warm: bool = True,
) -> dict[str, Timing]:
    """Run every case ``repeats`` times in turn and return its timings by name.

    Parameters
    ----------
    cases
        name -> a callable doing one repeat of that case.
    repeats
        how many kept repeats each case gets.
    probe
        turns a case into its figure; wall-clock seconds by default (W6 returns megabytes).
    warm
        run each case once, untimed, first (pools started, code paths imported).
    """
    if warm:
        for fn in cases.values():
            fn()
    out = {name: Timing() for name in cases}
    meter = OtherLoad()
    for _ in range(repeats):
        for name, fn in cases.items():
            timing = out[name]
            attempts = []
            for _attempt in range(MAX_REDO + 1):
                before = load1()
                meter.start()
                value = probe(fn)
                others = meter.stop()
                after = load1()
                attempts.append((others, value, before, after))
                if after - before <= LOAD_JUMP and others <= OTHERS_MAX:
                    break
                timing.redone += 1  # the machine got busier during this repeat: run it again
            # keep the least disturbed attempt (the last one, unless an earlier one was calmer)
            others, value, before, after = min(attempts, key=lambda a: a[0])
            timing.values.append(value)
            timing.loads.append((before, after))
            timing.others.append(others)
    return out


def row(
    workload: str,
    case: str,
    timing: Timing | None,
    *,
    rate: str = "",
    ratio: float | None = None,
    goal: str = "",
    value: str | None = None,
) -> dict[str, Any]:
    """One table row; every module uses the same columns so ``run.py`` prints one table."""
    return {
        "workload": workload,
        "case": case,
        "median": value if value is not None else (f"{timing.median:.3f} s" if timing else ""),
        "rate": rate,
        "ratio": "" if ratio is None else f"{ratio:.2f}",
        "goal": goal,
        "load": timing.load_text() if timing else "",
        "others": timing.others_text() if timing else "",
        "redone": timing.redone if timing else "",
    }


def per_s(count: float, seconds: float) -> str:
    """``"2.31M/s"``-style rate."""
    r = count / seconds
    if r >= 1e6:
        return f"{r / 1e6:.2f}M/s"
    if r >= 1e3:
        return f"{r / 1e3:.1f}k/s"
    return f"{r:.1f}/s"


def machine() -> dict[str, Any]:
    """What ran the figures: for the row that opens each module's table."""
    return {
        "workload": "machine",
        "case": f"Python {platform.python_version()}, {os.cpu_count()} cores, {platform.system()}"
        f" {platform.release()}",
        "median": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "rate": "",
        "ratio": "",
        "goal": "quick sizes (MG_BENCH_QUICK=1)" if QUICK else "",
        "load": f"{load1():.1f} at start",
        "others": "",
        "redone": "",
    }


def table(rows: list[dict[str, Any]]) -> str:
    cols = list(rows[0]) if rows else []
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(r.get(c, "")) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def print_table(rows: list[dict[str, Any]]) -> None:
    print(table(rows), flush=True)
    sys.stdout.flush()
