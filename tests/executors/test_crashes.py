"""A worker that dies (``os._exit``, SIGKILL, a segfault) costs no items; an item that keeps
killing workers ends in the error table as ``WorkerCrashed``; the run never hangs."""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import time

import cloudpickle
import pytest

import minigun_nb as mg

from ._helpers import assert_conserved, assert_no_leftover_processes

pytestmark = pytest.mark.timeout(120)
cloudpickle.register_pickle_by_value(sys.modules[__name__])

KINDS = ["os._exit", "SIGKILL", "segfault"]


def die(kind):
    if kind == "os._exit":
        os._exit(3)
    if kind == "SIGKILL":
        os.kill(os.getpid(), signal.SIGKILL)
    ctypes.string_at(0)  # reads address 0: SIGSEGV


def crashing_stage(backend, kind, marker=None, poison=7, **opts):
    """Item ``poison`` kills its worker: always, or only while ``marker`` does not exist."""

    def work(x):
        if x == poison and (marker is None or not os.path.exists(marker)):
            if marker is not None:
                open(marker, "w").close()
            die(kind)
        time.sleep(0.001)
        return x

    return mg.processor(work, backend=backend, workers=2, **opts)


@pytest.mark.parametrize("backend", ["process", "fork"])
@pytest.mark.parametrize("kind", KINDS)
def test_a_worker_that_dies_once_costs_no_item(backend, kind, tmp_path):
    stage = crashing_stage(backend, kind, marker=str(tmp_path / "crashed"))
    result = mg.Pipeline([stage]).run(items=range(30), display="none")
    assert (tmp_path / "crashed").exists()
    assert sorted(result.outputs) == list(range(30))
    assert result.errors.empty, result.errors[["item", "exc_type", "message"]]
    assert_conserved(result)


@pytest.mark.parametrize("backend", ["process", "fork"])
@pytest.mark.parametrize("kind", KINDS)
def test_a_poison_item_ends_as_worker_crashed(backend, kind):
    stage = crashing_stage(backend, kind)
    t = time.monotonic()
    result = mg.Pipeline([stage]).run(items=range(30), display="none")
    assert time.monotonic() - t < 60
    assert sorted(result.outputs) == [x for x in range(30) if x != 7]
    errors = result.errors
    assert errors["exc_type"].tolist() == ["WorkerCrashed"]
    assert errors["item"].tolist() == [7]
    assert errors["attempts"].tolist() == [2]  # crash_retries=2 crashes, counted alone
    assert result.stats.loc["work", "failed"] == 1
    assert_conserved(result)
    assert_no_leftover_processes()


def test_crash_retries_is_an_option():
    stage = crashing_stage("fork", "os._exit", crash_retries=3)
    result = mg.Pipeline([stage]).run(items=range(10), display="none")
    assert result.errors["attempts"].tolist() == [3]
    assert result.errors["exc_type"].tolist() == ["WorkerCrashed"]


def test_the_pool_works_again_after_a_crash():
    stage = crashing_stage("process", "os._exit")
    pipe = mg.Pipeline([stage])
    pipe.run(items=range(10), display="none")
    result = pipe.run(items=range(20, 40), display="none")  # no item 7: nothing dies
    assert sorted(result.outputs) == list(range(20, 40))
    assert result.errors.empty
