"""Orphans and leaks (SPEC §14): worker processes exit within a few seconds of their
parent's death; a stage re-defined by a re-run cell keeps at most one warm pool; idle warm
workers across all stages are capped (issue 15, finding 15)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import minigun_nb as mg

pytestmark = pytest.mark.timeout(120)


def children(of: int | None = None) -> dict[int, str]:
    """pid -> command line of the live (not zombie) children of ``of`` (default: us)."""
    of = os.getpid() if of is None else of
    out = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[1]) == of and fields[0] != "Z":
                with open(f"/proc/{name}/cmdline") as f:
                    out[int(name)] = f.read().replace("\0", " ")
        except OSError:
            continue
    return out


def loky_workers() -> set[int]:
    return {pid for pid, cmd in children().items() if "LokyProcess" in cmd}


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


CELL = """
import os
import minigun_nb as mg

pipe = mg.Pipeline("cellpipe")

@pipe.processor(backend="process", workers=2)
def work(x):
    return (os.getpid(), x * VERSION)

pipe
"""


def test_a_cell_rerun_ten_times_keeps_one_warm_pool_for_its_stage():
    mg.shutdown()
    out = []  # Out[]: every old pipeline stays alive
    for version in range(1, 11):
        namespace = {"__name__": "__main__", "VERSION": version}
        exec(compile(CELL, f"<cell-{version}>", "exec"), namespace)
        pipe = namespace["pipe"]
        out.append(pipe)
        result = pipe.run(items=range(6), display="none")
        assert sorted(v for _, v in result.outputs) == [x * version for x in range(6)]
    deadline = time.monotonic() + 20
    while len(loky_workers()) > 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(loky_workers()) <= 2
    mg.shutdown()
    assert not loky_workers()


def test_idle_warm_workers_across_stages_are_capped():
    from minigun_nb.executors import process_pool

    mg.shutdown()
    cap = process_pool.MAX_IDLE_WORKERS
    pipes = []
    for k in range(cap + 2):
        def work(x, k=k):
            return x + k
        pipes.append(mg.Pipeline(f"capped{k}", [mg.processor(work, backend="process",
                                                             workers=1)]))
    for pipe in pipes:
        pipe.run(items=range(3), display="none")
    deadline = time.monotonic() + 20  # a closed pool's workers are killed asynchronously
    while len(loky_workers()) > cap and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(loky_workers()) <= cap
    last = pipes[-1].run(items=[0], display="none")  # the newest pool is still warm
    assert last.outputs == [cap + 1]
    mg.shutdown()


SCRIPT = """
import os, sys, time
import minigun_nb as mg

def pid_of(x):
    return os.getpid()

def hold(x):
    print("fork", os.getpid(), flush=True)
    time.sleep(120)

if __name__ == "__main__":
    warm = mg.Pipeline([mg.processor(pid_of, backend="process", workers=2)])
    for pid in set(warm.run(items=range(50), display="none").outputs):
        print("loky", pid, flush=True)
    busy = mg.Pipeline([mg.processor(hold, backend="fork", workers=1)])
    handle = busy.start(items=[1], display="none")
    time.sleep(120)
"""


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_workers_and_fork_children_exit_soon_after_their_parent_dies(tmp_path, sig):
    path = tmp_path / "job.py"
    path.write_text(textwrap.dedent(SCRIPT))
    proc = subprocess.Popen([sys.executable, str(path)], stdout=subprocess.PIPE, text=True,
                            cwd=tmp_path)
    pids = {"loky": set(), "fork": set()}
    try:
        for line in proc.stdout:
            kind, pid = line.split()
            pids[kind].add(int(pid))
            if kind == "fork":
                break
        assert pids["loky"] and pids["fork"]
        workers = set(children(proc.pid))
        assert pids["fork"] <= workers and pids["loky"] <= workers
        proc.send_signal(sig)
        proc.wait(30)
        left = pids["loky"] | pids["fork"]
        deadline = time.monotonic() + 20  # "within a few seconds"; generous under load
        while left and time.monotonic() < deadline:
            left = {pid for pid in left if alive(pid)}
            time.sleep(0.1)
        assert not left, f"still alive after their parent died: {left}"
    finally:
        proc.kill()
        proc.wait()
        for pid in pids["loky"] | pids["fork"]:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
