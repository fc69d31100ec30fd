"""``backend="fork"``: a copy-on-write child per chunk; results streamed back over a pipe."""

from __future__ import annotations

import os
import threading
import time

import pytest

import minigun_nb as mg

from ._helpers import assert_conserved, assert_no_leftover_processes, fork_children

pytestmark = pytest.mark.timeout(120)


def run(pipe, **kw):
    return pipe.run(display="none", **kw)


def test_a_child_returning_10_mb_neither_blocks_nor_deadlocks():
    @mg.processor(backend="fork", workers=2)
    def big(x):
        return bytes([x]) * (10 << 20)

    result = run(mg.Pipeline([big]), items=[1, 2, 3])
    assert sorted(len(b) for b in result.outputs) == [10 << 20] * 3
    assert sorted(b[:1] for b in result.outputs) == [b"\x01", b"\x02", b"\x03"]
    assert_no_leftover_processes()


def test_a_child_raising_on_2_of_10_items_costs_only_those_items():
    @mg.processor(backend="fork", workers=2, chunk_size=10)  # one child holds them all
    def picky(x):
        if x in (3, 7):
            raise ValueError(f"no {x}")
        return x * 10

    result = run(mg.Pipeline([picky]), items=range(10))
    assert sorted(result.outputs) == [x * 10 for x in range(10) if x not in (3, 7)]
    assert sorted(result.errors["item"]) == [3, 7]
    assert set(result.errors["exc_type"]) == {"ValueError"}
    assert all("raise ValueError" in tb for tb in result.errors["traceback"])
    assert result.stats.loc["picky", "done"] == 8
    assert result.stats.loc["picky", "failed"] == 2
    assert_conserved(result)


def test_children_see_kernel_memory_without_pickling_and_lists_stay_items():
    lock = threading.Lock()  # cannot be pickled: a fork stage does not need to
    big = list(range(100_000))

    @mg.processor(backend="fork", workers=2)
    def look(i):
        with lock:
            pass
        return [big[i], (i,)] if i else None

    result = run(mg.Pipeline([look]), items=range(5))
    assert sorted(result.outputs) == [[i, (i,)] for i in range(1, 5)]
    assert result.stats.loc["look", "filtered"] == 1


def test_after_fork_runs_in_every_child_before_its_first_item():
    pipe = mg.Pipeline("forked")
    before = []
    state = {"reseeded": None}
    pipe.before_fork(lambda: before.append(os.getpid()))

    @pipe.after_fork
    def reseed():
        state["reseeded"] = os.getpid()  # the child's own copy of ``state``

    @pipe.processor(backend="fork", workers=2, chunk_size=3)
    def where(x):
        return os.getpid(), state["reseeded"]

    result = run(pipe, items=range(12))
    pids = {pid for pid, _ in result.outputs}
    assert all(pid == seen for pid, seen in result.outputs)
    assert os.getpid() not in pids and len(pids) == 4  # a child per chunk of 3
    assert state["reseeded"] is None  # never ran in the kernel
    assert before == [os.getpid()]


def test_setup_and_teardown_run_in_the_child(tmp_path):
    def setup():
        return {"conn": os.getpid()}

    def teardown(conn):
        (tmp_path / f"down-{conn}").write_text("x")

    @mg.processor(backend="fork", workers=2, chunk_size=5, setup=setup, teardown=teardown)
    def use(x, conn):
        return conn, os.getpid()

    result = run(mg.Pipeline([use]), items=range(10))
    assert all(conn == pid for conn, pid in result.outputs)
    assert {p.name for p in tmp_path.iterdir()} == {f"down-{pid}" for _, pid in result.outputs}


def test_at_most_workers_children_are_alive():
    alive = []

    def sample():
        while not done.is_set():
            alive.append(len(fork_children()))
            time.sleep(0.01)

    done = threading.Event()
    watcher = threading.Thread(target=sample, daemon=True)
    watcher.start()

    @mg.processor(backend="fork", workers=2, chunk_size=1)
    def nap(x):
        time.sleep(0.05)
        return x

    result = run(mg.Pipeline([nap]), items=range(12))
    done.set()
    watcher.join(5)
    assert sorted(result.outputs) == list(range(12))
    assert 1 <= max(alive) <= 2, alive
    assert_no_leftover_processes()


def test_results_stream_back_before_the_child_exits():
    arrivals = []
    pipe = mg.Pipeline("stream")

    @pipe.processor(backend="fork", chunk_size=6)  # one child for all six items
    def slowly(x):
        time.sleep(0.3)
        return x

    @pipe.consumer
    def note(x):
        arrivals.append((x, time.monotonic()))

    t = time.monotonic()
    run(pipe, items=range(6))
    first = min(at for _, at in arrivals) - t
    last = max(at for _, at in arrivals) - t
    assert len(arrivals) == 6
    assert first < last - 0.6  # the first result did not wait for the child to finish


def test_a_timeout_in_a_fork_child_records_timeout_error():
    @mg.processor(backend="fork", workers=2, timeout=0.3)
    def slow(x):
        if x == 2:
            time.sleep(60)
        return x

    result = run(mg.Pipeline([slow]), items=range(5))
    assert sorted(result.outputs) == [0, 1, 3, 4]
    assert result.errors["exc_type"].tolist() == ["TimeoutError"]
    assert_conserved(result)


def test_dynamic_routing_from_a_fork_child():
    pipe = mg.Pipeline("dyn")

    @pipe.processor(backend="fork", workers=2)
    def triage(x):
        yield mg.to("small" if x < 5 else "large", x)

    @pipe.processor(dynamic=True)
    def small(x):
        return ("s", x)

    @pipe.processor(dynamic=True)
    def large(x):
        return ("l", x)

    result = run(pipe, items=range(10))
    assert sorted(result.outputs_by_stage["small"]) == [("s", x) for x in range(5)]
    assert sorted(result.outputs_by_stage["large"]) == [("l", x) for x in range(5, 10)]
    assert_conserved(result)


def test_a_cancelling_stop_kills_and_reaps_the_children():
    @mg.processor(backend="fork", workers=2, chunk_size=2)
    def slow(x):
        time.sleep(0.2)
        return x

    handle = mg.Pipeline([slow]).start(items=range(100), display="none")
    time.sleep(0.5)
    handle.stop(drain=False)
    result = handle.wait(timeout=30)
    assert result.cancelled_items
    assert_conserved(result)
    assert_no_leftover_processes()
