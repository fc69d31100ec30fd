"""``backend="dask"``: chunks as tasks of a distributed cluster, same semantics as threads."""

from __future__ import annotations

import logging
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import minigun_nb as mg

from ._helpers import assert_conserved, descendants, notebook, wait_until

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def client():
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            silence_logs=logging.ERROR,
        ) as cluster,
        Client(cluster) as c,
    ):
        yield c


def test_a_notebook_closure_and_lambda_run_on_dask_workers(client):
    cell = notebook(
        """
import os
import minigun_nb as mg
step = 5
def shift(x):
    return x + step, os.getpid()
def build(client):
    pipe = mg.Pipeline("nb", dask_client=client)
    pipe.processor(shift, backend="dask", workers=2)
    pipe.processor(lambda pair: pair, name="same", backend="dask")
    return pipe
"""
    )
    result = cell["build"](client).run(items=range(20), display="none")
    assert sorted(v for v, _ in result.outputs) == [x + 5 for x in range(20)]
    worker_pids = set(client.run(os.getpid).values())
    assert {pid for _, pid in result.outputs} <= worker_pids
    assert_conserved(result)


def test_dynamic_routing_errors_and_outputs_from_dask(client):
    cell = notebook(
        """
import minigun_nb as mg
def build(client):
    pipe = mg.Pipeline("dyn", dask_client=client)

    @pipe.processor(backend="dask", workers=2)
    def triage(x, output):
        if x == 4:
            raise ValueError("four")
        output.emit([x])
        yield mg.to("odd" if x % 2 else "even", x)

    @pipe.processor(dynamic=True)
    def odd(x):
        return ("odd", x)

    @pipe.processor(dynamic=True)
    def even(x):
        return ("even", x)

    return pipe
"""
    )
    result = cell["build"](client).run(items=range(8), display="none")
    assert sorted(result.outputs_by_stage["odd"]) == [("odd", x) for x in (1, 3, 5, 7)]
    assert sorted(result.outputs_by_stage["even"]) == [("even", x) for x in (0, 2, 6)]
    assert sorted(result.outputs_by_stage["triage"]) == [[x] for x in range(8) if x != 4]
    errors = result.errors
    assert errors["exc_type"].tolist() == ["ValueError"]
    assert 'raise ValueError("four")' in errors["traceback"][0]
    assert "dask pid=" in errors["worker"][0]
    assert_conserved(result)


def _f(x):
    if x % 7 == 0:
        raise KeyError(x)
    return None if x % 3 == 0 else [x] * (x % 4)


@settings(
    max_examples=3,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(st.lists(st.integers(0, 40), max_size=15))
def test_a_dask_stage_gives_what_a_thread_stage_gives(client, items):
    f = notebook("def f(x):\n    return g(x)\n", g=_f)["f"]
    got = mg.Pipeline([mg.processor(f, backend="dask", workers=2)], dask_client=client).run(
        items=items, display="none"
    )
    ref = mg.Pipeline([mg.processor(f)]).run(items=items, display="none")
    assert sorted(map(repr, got.outputs)) == sorted(map(repr, ref.outputs))
    cols = ["items_in", "items_out", "done", "failed", "filtered"]
    assert got.stats[cols].equals(ref.stats[cols])


def test_the_address_in_the_environment_is_used(client, monkeypatch):
    monkeypatch.setenv("MINIGUN_DASK_ADDRESS", client.scheduler.address)
    cell = notebook(
        "def where(x):\n    from distributed import get_worker\n"
        "    return get_worker().scheduler.address\n"
    )
    pipe = mg.Pipeline([mg.processor(cell["where"], backend="dask")])
    result = pipe.run(items=range(3), display="none")
    assert set(result.outputs) == {client.scheduler.address}


def test_a_cluster_started_for_the_run_does_not_outlive_it():
    def spawned():
        # loky workers and the interpreter-wide resource tracker are not the run's cluster
        return {
            p
            for p, _state, cmd in descendants()
            if "popen_loky" not in cmd and "resource_tracker" not in cmd
        }

    before = spawned()
    cell = notebook("def double(x):\n    return 2 * x\n")
    pipe = mg.Pipeline([mg.processor(cell["double"], backend="dask", workers=2)])
    result = pipe.run(items=range(10), display="none")
    assert sorted(result.outputs) == [2 * x for x in range(10)]
    assert wait_until(lambda: spawned() <= before, 15), spawned() - before


def test_without_dask_installed_the_error_names_the_extra(monkeypatch):
    from minigun_nb.executors import dask as dask_executor

    monkeypatch.setattr(dask_executor, "available", lambda: False)
    pipe = mg.Pipeline("nodask")

    @pipe.producer
    def gen():
        yield from range(3)

    pipe.processor(lambda x: x, name="f", backend="dask")
    with pytest.raises(mg.DefinitionError, match=r"pip install minigun_nb\[dask\]"):
        pipe.run(display="none")
