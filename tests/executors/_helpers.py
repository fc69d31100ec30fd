"""Shared checks for the executor tests: conservation, the process table, notebook cells."""

from __future__ import annotations

import linecache
import os
import time
from collections import Counter
from typing import Any


def assert_conserved(result: Any) -> None:
    """SPEC §5: for every non-producer stage ``items_in == done + failed + cancelled`` and
    every failed item is a row of the error table."""
    stats = result.stats
    rows = Counter(result.errors["stage"])
    for path, row in stats.iterrows():
        if row["kind"] == "producer":
            continue
        assert row["items_in"] == row["done"] + row["failed"] + row["cancelled"], (
            path,
            row[["items_in", "done", "failed", "cancelled"]].to_dict(),
        )
        assert row["in_flight"] == 0, path
        assert row["queue_depth"] == 0, (path, row["queue_depth"])  # a finished run holds nothing
        assert row["failed"] <= rows[path], (path, row["failed"], rows[path])
    assert int(stats["cancelled"].sum()) == len(result.cancelled_items)


def notebook(source: str, **names: Any) -> dict[str, Any]:
    """Run ``source`` as a notebook cell would: its functions live in ``__main__``, so
    cloudpickle ships them by value (closures, lambdas and all)."""
    global _cells
    _cells += 1
    filename = f"<cell-{_cells}>"  # the kernel keeps a cell's source in linecache, as IPython
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace: dict[str, Any] = {"__name__": "__main__", **names}
    exec(compile(source, filename, "exec"), namespace)
    return namespace


_cells = 0


def _proc_children(pid: int) -> list[int]:
    """Children of every thread of ``pid`` (a child belongs to the thread that forked it)."""
    out = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out.extend(int(p) for p in f.read().split())
        except OSError:
            pass
    return out


def descendants(pid: int | None = None) -> list[tuple[int, str, str]]:
    """(pid, state, command line) of every live descendant of ``pid`` (default: us)."""
    todo = _proc_children(os.getpid() if pid is None else pid)
    found = []
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
            with open(f"/proc/{p}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        found.append((p, state, cmd))
        todo.extend(_proc_children(p))
    return found


def loky_workers() -> list[tuple[int, str, str]]:
    return [d for d in descendants() if "popen_loky" in d[2]]


def zombies() -> list[tuple[int, str, str]]:
    return [d for d in descendants() if d[1] == "Z"]


def fork_children() -> list[tuple[int, str, str]]:
    """Direct children that are copies of us (fork children), not spawned interpreters."""
    me = open(f"/proc/{os.getpid()}/cmdline", "rb").read().replace(b"\0", b" ").decode()
    return [d for d in descendants() if d[2] == me]


def wait_until(check: Any, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return bool(check())


def assert_no_leftover_processes() -> None:
    """No fork child is alive and every exited child gets reaped.

    Fork children are reaped before their chunk is reported done, so none may be alive now.
    A zombie can still show up for a moment: a loky worker of a pool dropped earlier in the
    session (its stage was collected, or its idle timeout expired) is joined by loky's own
    manager thread a little after it exits. A child nobody reaps stays a zombie for good, so
    waiting for the table to clear still fails on a real leak."""
    assert not fork_children(), fork_children()
    assert wait_until(lambda: not zombies(), timeout=15), zombies()
