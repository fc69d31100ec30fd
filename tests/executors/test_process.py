"""``backend="process"``: loky pools private to a stage, same semantics as threads."""

from __future__ import annotations

import os
import sys
import threading
import time
import warnings

import cloudpickle
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import minigun_nb as mg

from ._helpers import assert_conserved, loky_workers, notebook, wait_until

pytestmark = pytest.mark.timeout(120)
# functions of this module travel by value, as a notebook's do (workers never import tests)
cloudpickle.register_pickle_by_value(sys.modules[__name__])


def run(pipe, **kw):
    return pipe.run(display="none", **kw)


# -- notebook functions ----------------------------------------------------------------------------
def test_a_notebook_closure_and_lambda_run_in_worker_processes():
    cell = notebook(
        """
import os
import minigun_nb as mg
factor = 3
def scale(x):                      # a closure over a notebook global
    return (x * factor, os.getpid())
pipe = mg.Pipeline("nb")
pipe.processor(scale, backend="process", workers=2)
pipe.processor(lambda pair: (pair[0] + 1, pair[1]), name="inc", backend="process")
"""
    )
    result = run(cell["pipe"], items=range(50))
    assert sorted(v for v, _ in result.outputs) == [3 * x + 1 for x in range(50)]
    pids = {pid for _, pid in result.outputs}
    assert os.getpid() not in pids
    assert_conserved(result)


@pytest.mark.parametrize("backend", ["process", "fork", "thread"])
def test_items_of_a_class_defined_in_a_notebook_cell_travel_by_value(backend, monkeypatch):
    # In a kernel a cell's globals are __main__'s, so plain pickle succeeds and stores the
    # class as "__main__.Reading", a name a worker process cannot import.
    cell = notebook(
        f"""
from dataclasses import dataclass
import minigun_nb as mg

@dataclass
class Reading:
    sensor: str
    value: float

pipe = mg.Pipeline("nb")
pipe.processor(lambda r: Reading(r.sensor.upper(), r.value * 2), name="double",
               backend={backend!r}, workers=2)
items = [Reading(f"s{{i}}", float(i)) for i in range(30)]
"""
    )
    monkeypatch.setattr(sys.modules["__main__"], "Reading", cell["Reading"], raising=False)
    result = run(cell["pipe"], items=cell["items"])
    assert result.errors.empty, result.errors[["exc_type", "message"]].to_dict("records")
    got = sorted((r.sensor, r.value) for r in result.outputs)
    assert got == sorted((f"S{i}", 2.0 * i) for i in range(30))
    assert_conserved(result)


def test_a_closure_defined_in_a_function_runs_in_a_worker():
    offset = 10

    def add(x):
        return x + offset, os.getpid()

    result = run(mg.Pipeline([mg.processor(add, backend="process")]), items=[1, 2])
    assert sorted(v for v, _ in result.outputs) == [11, 12]
    assert all(pid != os.getpid() for _, pid in result.outputs)


# -- emitting across the boundary ------------------------------------------------------------------
def _routing_pipeline(backend):
    pipe = mg.Pipeline("routing")

    @pipe.processor(backend=backend, workers=2, routes=["audit"])
    def explode(x, output):
        output.emit([x])  # a list stays one item
        output << (x, "t")  # so does a tuple
        yield None  # a yielded None is an item too (only a bare None return is not)
        if x % 2:
            output.to("odd").emit(x)
        yield mg.to("audit", x)

    @pipe.consumer
    def sink(item):
        return ("got", item)

    @pipe.processor(dynamic=True)
    def odd(x):
        return ("odd", x)

    @pipe.processor(dynamic=True)
    def audit(x):
        return ("audit", x)

    return pipe


def test_generators_output_and_dynamic_routes_cross_the_process_boundary():
    got = run(_routing_pipeline("process"), items=range(10))
    ref = run(_routing_pipeline("thread"), items=range(10))
    for res in (got, ref):
        assert_conserved(res)
        assert res.errors.empty
    for path in ("sink", "odd", "audit"):
        assert sorted(map(repr, got.outputs_by_stage[path])) == sorted(
            map(repr, ref.outputs_by_stage[path])
        )
    sink = got.outputs_by_stage["sink"]
    assert ("got", [3]) in sink and ("got", (3, "t")) in sink
    assert sink.count(("got", None)) == 10
    assert sorted(got.outputs_by_stage["odd"]) == [("odd", x) for x in (1, 3, 5, 7, 9)]
    cols = ["items_in", "items_out", "done", "failed", "filtered"]
    assert got.stats[cols].equals(ref.stats[cols])


def test_an_unknown_dynamic_target_is_an_error_row_of_the_sender():
    @mg.processor(backend="process")
    def lost(x):
        yield mg.to("nowhere", x)

    result = run(mg.Pipeline([lost]), items=[1, 2])
    assert result.errors["exc_type"].tolist() == ["UnknownStageError", "UnknownStageError"]
    assert "nowhere" in result.errors["message"][0]
    assert_conserved(result)


# -- errors, retries, timeouts ---------------------------------------------------------------------
def test_item_errors_carry_the_remote_type_message_traceback_and_worker():
    @mg.processor(backend="process", workers=2)
    def picky(x):
        if x % 4 == 0:
            raise ValueError(f"bad {x}")
        return x

    result = run(mg.Pipeline([picky]), items=range(12))
    errors = result.errors.sort_values("item")
    assert errors["item"].tolist() == [0, 4, 8]
    assert set(errors["exc_type"]) == {"ValueError"}
    assert errors["message"].tolist() == ["bad 0", "bad 4", "bad 8"]
    assert all('raise ValueError(f"bad {x}")' in tb for tb in errors["traceback"])
    assert all(f"pid={os.getpid()} " not in w and "pid=" in w for w in errors["worker"])
    assert sorted(result.outputs) == [x for x in range(12) if x % 4]
    assert result.stats.loc["picky", "failed"] == 3
    assert_conserved(result)


def test_on_error_raise_gives_a_stage_error_with_the_remote_traceback():
    class Boom(Exception):
        pass

    @mg.processor(backend="process", on_error="raise")
    def boom(x):
        raise Boom("no")

    with pytest.raises(mg.StageError) as info:
        run(mg.Pipeline([boom]), items=[1])
    err = info.value
    assert err.stage == "boom" and err.item == 1
    assert "raise Boom" in err.remote_traceback
    assert type(err.__cause__).__name__ == "Boom"


def test_retries_happen_in_the_worker_and_are_counted():
    seen = set()

    @mg.processor(backend="process", workers=2, retries=2, retry_on=(OSError,))
    def flaky(x):
        if x == 99:
            raise KeyError(x)  # not in retry_on: fails at once
        if x not in seen:  # the worker's own copy of ``seen``
            seen.add(x)
            raise OSError("first attempt fails")
        return x

    result = run(mg.Pipeline([flaky]), items=[*range(10), 99])
    assert sorted(result.outputs) == list(range(10))
    assert result.stats.loc["flaky", "retried"] == 10
    assert result.errors["exc_type"].tolist() == ["KeyError"]
    assert result.errors["attempts"].tolist() == [1]
    assert_conserved(result)


def test_a_per_item_timeout_records_timeout_error_and_the_rest_goes_on():
    @mg.processor(backend="process", workers=2, timeout=0.5)
    def slow(x):
        if x == 3:
            time.sleep(60)
        return x

    t = time.monotonic()
    result = run(mg.Pipeline([slow]), items=range(8))
    assert time.monotonic() - t < 20
    assert sorted(result.outputs) == [0, 1, 2, 4, 5, 6, 7]
    assert result.errors["exc_type"].tolist() == ["TimeoutError"]
    assert "timeout=0.5" in result.errors["message"][0]
    assert_conserved(result)


def test_an_item_that_swallows_its_timeout_has_its_worker_killed_and_replaced():
    @mg.processor(backend="process", timeout=0.3, chunk_size=1)
    def stubborn(x):
        if x == 1:
            for _ in range(100):
                try:
                    time.sleep(60)
                except TimeoutError:
                    pass  # ignores the soft timeout: the watchdog ends the worker
        return x

    t = time.monotonic()
    result = run(mg.Pipeline([stubborn]), items=range(4))
    assert time.monotonic() - t < 30
    assert sorted(result.outputs) == [0, 2, 3]
    assert result.errors["exc_type"].tolist() == ["TimeoutError"]
    assert result.errors["item"].tolist() == [1]
    assert_conserved(result)


def test_an_item_or_result_that_cannot_be_pickled_costs_only_that_item():
    lock = threading.Lock()

    @mg.processor(backend="process")
    def echo(x):
        if x == "give-lock":
            return threading.Lock()
        return x

    result = run(mg.Pipeline([echo]), items=["a", lock, "give-lock", "b"])
    assert sorted(result.outputs) == ["a", "b"]
    errors = result.errors
    assert set(errors["exc_type"]) == {"PicklingError"}
    assert errors["item"].tolist()[0] is lock or lock in errors["item"].tolist()
    assert "give-lock" in errors["item"].tolist()
    assert_conserved(result)


# -- setup, teardown and hooks ---------------------------------------------------------------------
def test_setup_and_teardown_run_in_each_worker(tmp_path):
    def setup():
        return {"conn": os.getpid()}

    def teardown(conn):
        (tmp_path / f"teardown-{conn}").write_text("done")

    @mg.processor(backend="process", workers=2, setup=setup, teardown=teardown)
    def use(x, conn):
        time.sleep(0.01)
        return conn, os.getpid()

    result = run(mg.Pipeline([use]), items=range(40))
    assert all(conn == pid != os.getpid() for conn, pid in result.outputs)
    served = {pid for _, pid in result.outputs}
    assert {p.name for p in tmp_path.iterdir()} == {f"teardown-{pid}" for pid in served}


def test_a_failing_setup_is_one_error_row_and_the_stage_cancels_its_items():
    def setup():
        raise RuntimeError("no database")

    @mg.processor(backend="process", setup=setup)
    def use(x):
        return x

    result = run(mg.Pipeline([use]), items=range(30))
    assert result.errors["exc_type"].tolist() == ["RuntimeError"]
    assert result.outputs == []
    assert result.stats.loc["use", "status"] == "failed"
    assert result.status == "failed" and not result.ok
    assert_conserved(result)


def test_before_fork_once_per_run_in_the_kernel_and_after_fork_in_every_worker(tmp_path):
    kernel_calls = []
    pipe = mg.Pipeline("hooks")
    pipe.before_fork(lambda: kernel_calls.append(os.getpid()))

    @pipe.after_fork
    def reopen():
        with open(tmp_path / f"after-fork-{os.getpid()}", "a") as f:
            f.write("x")

    @pipe.processor(backend="process", workers=2)
    def where(x):
        time.sleep(0.005)
        return os.getpid()

    served: list[set] = []
    for _ in range(2):
        result = run(pipe, items=range(40))
        served.append(set(result.outputs))
    assert kernel_calls == [os.getpid(), os.getpid()]
    for pid in served[0] | served[1]:
        runs = sum(pid in s for s in served)
        # warm workers run after_fork again before the first item of each run they serve
        assert (tmp_path / f"after-fork-{pid}").read_text() == "x" * runs


def test_the_pool_stays_warm_between_runs():
    @mg.processor(backend="process", workers=2)
    def pid(x):
        time.sleep(0.01)
        return os.getpid()

    pipe = mg.Pipeline([pid])
    first = set(run(pipe, items=range(20)).outputs)
    second = set(run(pipe, items=range(20)).outputs)
    assert first & second


def test_max_processes_caps_workers_with_one_capacity_warning():
    pipe = mg.Pipeline("capped", max_processes=3)
    pipe.processor(lambda x: x, name="a", backend="process", workers=2)
    pipe.processor(lambda x: x, name="b", backend="process", workers=2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = run(pipe, items=range(10))
    capacity = [w for w in caught if issubclass(w.category, mg.CapacityWarning)]
    assert len(capacity) == 1 and "'b'" in str(capacity[0].message)
    assert "but max_processes=3 leaves it 1; raise max_processes" in str(capacity[0].message)
    assert result.stats["workers"].tolist() == [2, 1]
    assert sorted(result.outputs) == list(range(10))


def test_ordered_keeps_input_order():
    @mg.processor(backend="process", workers=2, ordered=True)
    def jitter(x):
        time.sleep((x * 7 % 5) / 1000)
        return x

    result = run(mg.Pipeline([jitter]), items=range(60))
    assert result.outputs == list(range(60))


# -- stopping and the process table ----------------------------------------------------------------
def _pending_tasks():
    from minigun_nb.executors import process_pool

    return sum(
        len(p._ex._pending_work_items)
        for p in list(process_pool._registry.values())
        if p._ex is not None
    )


def test_a_cancelling_stop_conserves_items_and_leaves_no_worker_busy():
    @mg.processor(backend="process", workers=2)
    def slow(x):
        time.sleep(0.02)
        return x

    handle = mg.Pipeline([slow]).start(items=range(500), display="none")
    time.sleep(0.5)
    handle.stop(drain=False)
    result = handle.wait(timeout=30)
    assert result.stopped
    assert 0 < len(result.cancelled_items) < 500
    assert_conserved(result)
    assert _pending_tasks() == 0


def test_a_draining_stop_finishes_what_was_taken():
    pipe = mg.Pipeline("drain")

    @pipe.producer
    def endless():
        i = 0
        while True:
            yield i
            i += 1

    @pipe.processor(backend="process", workers=2, queue_size=50)
    def slow(x):
        time.sleep(0.002)
        return x

    handle = pipe.start(display="none")
    time.sleep(0.5)
    handle.stop()
    result = handle.wait(timeout=30)
    assert result.stopped and result.cancelled_items == []
    assert sorted(result.outputs) == list(range(len(result.outputs)))
    assert_conserved(result)
    assert _pending_tasks() == 0


def test_shutdown_and_the_idle_timeout_leave_no_loky_worker():
    @mg.processor(backend="process", workers=2)
    def f(x):
        return x

    run(mg.Pipeline([f]), items=range(10))
    assert loky_workers()
    mg.shutdown()
    assert wait_until(lambda: not loky_workers(), 10), loky_workers()

    @mg.processor(backend="process", workers=2, worker_idle_timeout=0.5)
    def g(x):
        return x

    run(mg.Pipeline([g]), items=range(10))
    assert wait_until(lambda: not loky_workers(), 10), loky_workers()


# -- the same results as threads -------------------------------------------------------------------
def _mixed_function(x):
    if x % 5 == 0:
        raise ValueError(x)
    if x % 3 == 0:
        return None
    if x % 2:
        return [x, (x,)]
    return (y for y in (x, -x))


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.integers(-50, 50), max_size=25))
def test_a_process_stage_gives_what_a_thread_stage_gives(items):
    results = {}
    for backend in ("thread", "process"):
        stage = mg.processor(_mixed_function, backend=backend, workers=2)
        results[backend] = run(mg.Pipeline([stage]), items=items)
    thread, proc = results["thread"], results["process"]
    assert sorted(map(repr, proc.outputs)) == sorted(map(repr, thread.outputs))
    assert sorted(proc.errors["item"]) == sorted(thread.errors["item"])
    cols = ["items_in", "items_out", "done", "failed", "filtered"]
    assert proc.stats[cols].equals(thread.stats[cols])
    assert_conserved(proc)


# -- the connection to the workers -----------------------------------------------------------------
def test_big_items_and_results_cross_intact_and_arrays_arrive_writable():
    import numpy as np

    @mg.processor(backend="process", workers=2, chunk_size=3)
    def double_in_place(a):
        a *= 2  # an array rebuilt on an out-of-band buffer must be writable, as with pickle
        return a, bytes(300_000)

    arrays = [np.arange(100_000, dtype=np.int64) + i for i in range(12)]  # 800 KB each
    result = run(mg.Pipeline([double_in_place]), items=arrays)
    assert result.errors.empty, result.errors[["exc_type", "message"]]
    got = sorted(result.outputs, key=lambda r: int(r[0][0]))
    assert len(got) == 12
    for i, (a, blob) in enumerate(got):
        assert np.array_equal(a, (np.arange(100_000, dtype=np.int64) + i) * 2)
        assert blob == bytes(300_000)
    assert_conserved(result)


def test_a_run_leaves_its_workers_free_for_the_next_and_no_task_pending():
    from minigun_nb.executors import process_pool

    @mg.processor(backend="process", workers=2)
    def pid(x):
        return os.getpid()

    pipe = mg.Pipeline([pid])
    for _ in range(3):
        result = run(pipe, items=range(2000))
        assert sorted(result.outputs) and len(result.outputs) == 2000
        assert _pending_tasks() == 0  # every serve task returned: the workers are idle
    pools = [p for p in list(process_pool._registry.values()) if p._ex is not None]
    assert pools and all(not p._ex._flags.broken for p in pools)


def test_an_item_that_cannot_be_unpickled_in_the_worker_fails_its_chunk_not_the_run():
    class OnlyHere:  # unpickling it in a worker raises: the class refuses to be rebuilt
        def __reduce__(self):
            return (_refuse, ())

    @mg.processor(backend="process", workers=2, chunk_size=1)
    def same(x):
        return x

    items = [1, 2, OnlyHere(), 4, 5]
    result = run(mg.Pipeline([same]), items=items)
    assert sorted(o for o in result.outputs if isinstance(o, int)) == [1, 2, 4, 5]
    assert list(result.errors["exc_type"]) == ["ValueError"]
    assert "refused" in result.errors["message"].iloc[0]
    assert_conserved(result)


def _refuse():
    raise ValueError("refused to be rebuilt in a worker")


def test_the_first_worker_to_connect_does_not_take_the_chunks_meant_for_the_other():
    @mg.processor(backend="process", workers=2, chunk_size=1)
    def slow(x):
        time.sleep(0.5)
        return os.getpid()

    pipe = mg.Pipeline([slow])
    run(pipe, items=range(2))  # warm: both workers exist, so both connect within moments
    for _ in range(2):
        result = run(pipe, items=range(4))
        # all four chunks are submitted before any worker connects; the first to connect
        # holds at most its share (two) and the other takes the rest
        assert len(set(result.outputs)) == 2, result.outputs
        assert_conserved(result)


def test_a_global_socket_timeout_in_the_kernel_does_not_break_the_workers_connections():
    import socket

    @mg.processor(backend="process", workers=2, chunk_size=5)
    def slow_double(x):
        time.sleep(0.05)  # the kernel reads while the worker is busy: a blocking read
        return 2 * x

    before = socket.getdefaulttimeout()
    socket.setdefaulttimeout(10)  # as a notebook that set it for urllib might
    try:
        handle = mg.Pipeline([slow_double]).start(items=range(40), display="none")
        result = handle.wait(timeout=60)
    finally:
        socket.setdefaulttimeout(before)
    assert result.errors.empty, result.errors[["exc_type", "message"]]
    assert sorted(result.outputs) == [2 * i for i in range(40)]


def test_a_silent_local_connection_does_not_stall_the_workers(monkeypatch):
    import socket

    from minigun_nb.executors import process

    monkeypatch.setattr(process, "HANDSHAKE_SECONDS", 0.5)
    squatters = []
    opened = process.ProcessExecutor.open

    def open_then_squat(self, job):
        opened(self, job)  # any local process could connect first and say nothing
        family = socket.AF_UNIX if isinstance(self.address, str) else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.connect(self.address)
        squatters.append(sock)

    monkeypatch.setattr(process.ProcessExecutor, "open", open_then_squat)

    @mg.processor(backend="process", workers=2)
    def double(x):
        return 2 * x

    try:
        result = mg.Pipeline([double]).start(items=range(10), display="none").wait(timeout=60)
    finally:
        for sock in squatters:
            sock.close()
    assert squatters and sorted(result.outputs) == [2 * i for i in range(10)]


def test_two_runs_of_one_pipeline_at_once_each_get_workers(tmp_path):
    gate, started = str(tmp_path / "open"), str(tmp_path / "started")

    @mg.processor(backend="process", workers=2, chunk_size=1)
    def held(x):
        if x == "hold":  # the first run's items keep its workers until the test opens the gate
            open(started, "w").close()
            deadline = time.monotonic() + 60
            while not os.path.exists(gate) and time.monotonic() < deadline:
                time.sleep(0.02)
        return x

    pipe = mg.Pipeline([held])
    first = pipe.start(items=["hold", "hold"], display="none")
    try:
        assert wait_until(lambda: os.path.exists(started), timeout=30)
        # the first run holds its pool's workers: the second gets a pool of its own
        second = pipe.start(items=list(range(10)), display="none").wait(timeout=60)
        assert sorted(second.outputs) == list(range(10))
        assert_conserved(second)
        assert not first.done  # still held: the second did not wait for it
    finally:
        open(gate, "w").close()
    done = first.wait(timeout=60)
    assert done.outputs == ["hold", "hold"]
    assert_conserved(done)
    rerun = run(pipe, items=list(range(6)))  # both pools are free again
    assert sorted(rerun.outputs) == list(range(6))


def _crash_on_minus_one(x):
    if x == -1:
        os._exit(1)
    time.sleep(0.002)
    return x


def _pass_slowly(x):
    time.sleep(0.002)
    return x


def test_overlapping_runs_through_two_process_stages_survive_a_crash():
    # a crash replaces f's pool while both runs are going; sharing pools, the second run
    # could take f's new workers while the first held g's, each then waiting for the other
    f = mg.processor(_crash_on_minus_one, name="f", backend="process", workers=2,
                     chunk_size=1, queue_size=10, crash_retries=1)
    g = mg.processor(_pass_slowly, name="g", backend="process", workers=2, chunk_size=1,
                     queue_size=10)
    pipe = mg.Pipeline([f, g])
    run(pipe, items=range(4))  # warm
    for _ in range(2):
        one = pipe.start(items=[*range(30), -1, *range(100)], display="none")
        time.sleep(0.05)
        two = pipe.start(items=range(100), display="none")
        first, second = one.wait(timeout=90), two.wait(timeout=90)
        assert sorted(first.outputs) == sorted([*range(30), *range(100)])
        assert list(first.errors["exc_type"]) == ["WorkerCrashed"]
        assert sorted(second.outputs) == list(range(100)) and second.errors.empty
        assert_conserved(first)
        assert_conserved(second)
