"""The executor seam, driven directly: an executor made from an ExecutorSpec, opened with a
Job, fed chunks; the Outcomes it reports are checked (values, routed items, errors of their
real types, retries, a failed attempt's emissions taken back, setup and teardown), the same
for the inline test double, the process, fork and async backends."""

from __future__ import annotations

import asyncio
import os
import threading
import uuid
from functools import partial

import pytest

import minigun_nb as mg
from minigun_nb.executors import BACKENDS, ExecutorSpec, executor_class, make_executor
from minigun_nb.executors.base import Executor
from minigun_nb.executors.inline import InlineExecutor
from minigun_nb.stagefn.outcome import Job, TaskCancelled, load_exception

pytestmark = pytest.mark.timeout(120)

SYNC = ["inline", "process", "fork"]
_tries: dict[object, int] = {}


def _executor(backend: str, workers: int = 2) -> Executor:
    spec = ExecutorSpec(path="seam", backend=backend, workers=workers, pipeline="seam-tests",
                        worker_idle_timeout=30.0, log_extra={"run_id": None, "stage": "seam"})
    return InlineExecutor(spec) if backend == "inline" else make_executor(backend, spec)


def _job(fn, **options) -> Job:
    token = uuid.uuid4().hex
    return Job(token=token, run_token=token, path="seam", fn=fn, **options)


def _run(backend: str, job: Job, chunks: list[list], workers: int = 2):
    """Each chunk's outcomes, merged: (values, routed, errors by index, outcomes)."""
    ex = _executor(backend, workers)
    got: list[list] = [[] for _ in chunks]
    lock = threading.Lock()

    def report(k, oc):
        with lock:
            got[k].append(oc)

    ex.open(job)
    try:
        futures = [ex.submit(chunk, partial(report, k)) for k, chunk in enumerate(chunks)]
        for fut in futures:
            fut.result(timeout=60)
        torn = ex.finish()
    finally:
        ex.close()
    merged = []
    for outcomes in got:
        outcomes.sort(key=lambda oc: oc.start)
        values = [v for oc in outcomes for v in oc.out]
        routed = [(d[1], d[2]) for oc in outcomes for d in oc.dyn]
        errors = {e.index: e for oc in outcomes for e in oc.errors}
        merged.append((values, routed, errors, outcomes))
    return merged, torn


def mixed(x):
    if x == 3:
        raise ValueError(f"bad {x}")
    if x == 4:
        return (v for v in (x, mg.to("side", -x)))
    if x == 5:
        return None
    return 2 * x


def test_the_registry_names_a_class_per_pooled_backend():
    assert set(BACKENDS) == {"process", "fork", "async", "dask"}
    for backend in ("process", "fork", "async"):
        cls = executor_class(backend)
        for trait in ("depth", "isolates_crashes", "target_seconds", "moves_bytes"):
            assert hasattr(cls, trait), (backend, trait)
    with pytest.raises(ValueError):
        executor_class("thread")


@pytest.mark.parametrize("backend", SYNC)
def test_values_routed_items_and_errors_come_back_in_their_outcomes(backend):
    (chunk_a, chunk_b), _ = _run(backend, _job(mixed), [[0, 1, 2], [3, 4, 5, 6]])
    values, routed, errors, outcomes = chunk_a
    assert values == [0, 2, 4] and routed == [] and errors == {}
    values, routed, errors, outcomes = chunk_b
    assert values == [4, 12] and routed == [("side", -4)]
    assert list(errors) == [0]  # relative to the chunk: its first item, 3
    exc = load_exception(errors[0])
    assert type(exc) is ValueError and str(exc) == "bad 3"
    assert sum(oc.n for oc in outcomes) == 4
    assert sum(oc.done for oc in outcomes) == 3 and sum(oc.failed for oc in outcomes) == 1
    assert sum(oc.filtered for oc in outcomes) == 1
    assert all(oc.worker for oc in outcomes)


def flaky(item):
    """Fails the first attempt of every item, after emitting something for it."""
    key = (os.getpid(), item)
    _tries[key] = _tries.get(key, 0) + 1
    yield ("attempt", item, _tries[key])
    if _tries[key] < 2:
        raise KeyError(item)


def always_fails(item):
    yield ("half-way", item)
    raise KeyError(item)


@pytest.mark.parametrize("backend", SYNC)
def test_a_retried_item_keeps_only_the_emissions_of_its_last_attempt(backend):
    items = [f"{backend}-{uuid.uuid4().hex[:6]}-{i}" for i in range(4)]
    [(values, _, errors, outcomes)], _ = _run(backend, _job(flaky, retries=2, retry_on=(KeyError,)),
                                              [items])
    assert errors == {}
    assert values == [("attempt", x, 2) for x in items]
    assert sum(oc.retried for oc in outcomes) == 4


@pytest.mark.parametrize("backend", SYNC)
def test_an_item_that_fails_every_attempt_leaves_nothing_behind(backend):
    [(values, routed, errors, outcomes)], _ = _run(
        backend, _job(always_fails, retries=1, retry_on=(KeyError,)), [["a", "b"]])
    assert values == [] and routed == []
    assert sorted(errors) == [0, 1]
    assert all(e.attempts == 2 and e.exc_type == "KeyError" for e in errors.values())
    assert type(load_exception(errors[0])) is KeyError


def broken_setup():
    raise RuntimeError("no connection")


def with_resource(x, conn):
    return (conn, x)


def open_conn():
    return {"conn": "db"}


def close_conn(conn):
    raise OSError(f"closing {conn}")


@pytest.mark.parametrize("backend", SYNC)
def test_a_failing_setup_is_the_outcomes_setup_error(backend):
    [(values, _, _, outcomes)], _ = _run(backend, _job(mixed, setup=broken_setup), [[1, 2]])
    assert values == []
    err = outcomes[0].setup_error
    assert err is not None and err.exc_type == "RuntimeError"
    assert "no connection" in err.message


@pytest.mark.parametrize("backend", SYNC)
def test_resources_are_injected_and_teardown_errors_are_returned(backend):
    [(values, _, _, outcomes)], torn = _run(
        backend, _job(with_resource, setup=open_conn, teardown=close_conn), [[1, 2]], workers=1)
    assert values == [("db", 1), ("db", 2)]
    hook_errors = [e for oc in outcomes for e in oc.hook_errors] + list(torn)
    assert [e.exc_type for e in hook_errors] == ["OSError"]


def test_a_cancelled_inline_executor_runs_no_more_chunks():
    ex = _executor("inline")
    ex.open(_job(mixed))
    ex.cancel()
    fut = ex.submit([1], lambda oc: None)
    with pytest.raises(TaskCancelled):
        fut.result()
    ex.close()


async def async_mixed(x):
    await asyncio.sleep(0)
    if x == 3:
        raise ValueError("bad 3")
    if x == 4:
        return mg.to("side", x)
    return 2 * x


_async_tries: dict[object, int] = {}


async def async_flaky(x, output):
    _async_tries[x] = _async_tries.get(x, 0) + 1
    output.emit(("attempt", x, _async_tries[x]))
    if _async_tries[x] < 2:
        raise KeyError(x)


def test_the_async_executor_reports_the_same_outcomes():
    [(values, routed, errors, outcomes)], _ = _run("async", _job(async_mixed), [[1, 2, 3, 4]])
    assert values == [2, 4] and routed == [("side", 4)]
    assert list(errors) == [2] and type(load_exception(errors[2])) is ValueError
    items = [uuid.uuid4().hex for _ in range(3)]
    [(values, _, errors, outcomes)], _ = _run(
        "async", _job(async_flaky, retries=1, retry_on=(KeyError,)), [items])
    assert errors == {}
    assert values == [("attempt", x, 2) for x in items]
    assert sum(oc.retried for oc in outcomes) == 3
