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


def spawned():
    """Our descendants that may belong to a run's cluster (loky workers and the
    interpreter-wide resource tracker do not)."""
    return {
        p
        for p, _state, cmd in descendants()
        if "popen_loky" not in cmd and "resource_tracker" not in cmd
    }


def test_a_cluster_started_for_the_run_does_not_outlive_it():
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


# -- worker deaths and concurrency (a cluster started for the run) --------------------------------
CRASHING = """
import os
import signal
def build(kind, poison, marker=None, **opts):
    def work(x):
        if x == poison and (marker is None or not os.path.exists(marker)):
            if marker is not None:
                open(marker, "w").close()
            if kind == "SIGKILL":
                os.kill(os.getpid(), signal.SIGKILL)
            os._exit(3)
        return x
    return mg.Pipeline([mg.processor(work, backend="dask", workers=2, **opts)])
"""


@pytest.mark.timeout(90)
@pytest.mark.parametrize(("kind", "crash_retries"), [("os._exit", None), ("SIGKILL", 3)])
def test_a_poison_item_ends_as_worker_crashed_and_costs_no_other_item(kind, crash_retries):
    # the job used to be scattered once: workers dying took it with them and the remaining
    # tasks came back cancelled, with no error row
    before = spawned()
    opts = {} if crash_retries is None else {"crash_retries": crash_retries}
    pipe = notebook(CRASHING, mg=mg)["build"](kind, 7, **opts)
    result = pipe.run(items=range(20), display="none")
    assert sorted(result.outputs) == [x for x in range(20) if x != 7]
    errors = result.errors
    assert errors["exc_type"].tolist() == ["WorkerCrashed"]
    assert errors["item"].tolist() == [7]
    assert errors["attempts"].tolist() == [crash_retries or 2]  # crashes counted alone
    row = result.stats.loc["work"]
    assert (row["done"], row["failed"], row["cancelled"]) == (19, 1, 0)
    assert result.cancelled_items == []
    assert_conserved(result)
    assert wait_until(lambda: spawned() <= before, 15), spawned() - before


@pytest.mark.timeout(90)
def test_a_worker_that_dies_once_costs_no_item(tmp_path):
    marker = tmp_path / "crashed"
    pipe = notebook(CRASHING, mg=mg)["build"]("os._exit", 3, marker=str(marker))
    result = pipe.run(items=range(20), display="none")
    assert marker.exists()
    assert sorted(result.outputs) == list(range(20))
    assert result.errors.empty, result.errors[["item", "exc_type", "message"]]
    assert_conserved(result)


@pytest.mark.timeout(90)
def test_a_worker_of_a_given_cluster_that_dies_costs_no_item(client, tmp_path):
    # the restarted worker lacks the job: it asks for it and gets the task again with it
    marker = tmp_path / "crashed"
    work = notebook(
        "import os\n"
        "def work(x):\n"
        "    if x == 3 and not os.path.exists(marker):\n"
        "        open(marker, 'w').close()\n"
        "        os._exit(3)\n"
        "    return x\n",
        marker=str(marker),
    )["work"]
    pipe = mg.Pipeline([mg.processor(work, backend="dask", workers=2)], dask_client=client)
    result = pipe.run(items=range(20), display="none")
    assert marker.exists()
    assert sorted(result.outputs) == list(range(20))
    assert result.errors.empty, result.errors[["item", "exc_type", "message"]]
    assert_conserved(result)
    assert wait_until(lambda: len(client.scheduler_info()["workers"]) == 2, 30)


@pytest.mark.timeout(90)
def test_workers_is_the_number_of_concurrent_calls(tmp_path):
    # each call holds a file while it runs and waits (a bounded while) to see `workers`
    # of them: fewer concurrent calls show as a lower peak, more as a higher one
    cell = notebook(
        """
import os
import time
def work(x):
    mine = os.path.join(folder, str(x))
    open(mine, "w").close()
    peak = len(os.listdir(folder))
    give_up = time.monotonic() + 10
    while peak < 3 and time.monotonic() < give_up:
        time.sleep(0.01)
        peak = max(peak, len(os.listdir(folder)))
    time.sleep(0.05)
    peak = max(peak, len(os.listdir(folder)))
    os.remove(mine)
    return peak, os.getpid()
""",
        folder=str(tmp_path),
    )
    before = spawned()
    stage = mg.processor(cell["work"], backend="dask", workers=3, chunk_size=1)
    result = mg.Pipeline([stage]).run(items=range(9), display="none")
    assert len(result.outputs) == 9
    assert max(peak for peak, _pid in result.outputs) == 3
    assert len({pid for _peak, pid in result.outputs}) == 3  # one worker process per call
    assert_conserved(result)
    assert wait_until(lambda: spawned() <= before, 15), spawned() - before
