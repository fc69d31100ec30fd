"""SPEC §12/§14: an item whose dynamic route names no stage is failed (an UnknownStageError
row, not retried) and leaves nothing downstream, its plain emissions included, whatever the
backend (issue 15). Routes are resolved in the kernel, so a pooled stage's worker sends each
routed outcome's per-item ``ends`` and the kernel drops the failed item's slice of ``out``."""

from __future__ import annotations

import pickle
import threading

import pytest

import minigun_nb as mg
from minigun_nb.runtime.dispatch import drop_items
from minigun_nb.stagefn.outcome import Outcome
from minigun_nb.stagefn.wire import dump_outcome, unpack, with_ends

from ._helpers import assert_conserved

pytestmark = pytest.mark.timeout(120)

BACKENDS = ["thread", "inline", "process", "fork", "async"]
STATS = ["items_in", "items_out", "done", "filtered", "failed", "cancelled", "retried"]


def output_then_unknown(x, output):
    """A plain emit, then ``output.to`` an unknown stage on odd items (the general loop)."""
    output.emit(x)
    if x % 2:
        output.to("nowhere").emit(x)
    if x % 10 == 4:
        raise ValueError(f"boom {x}")


def yields_then_unknown(x):
    """Values, then ``mg.to`` an unknown stage on odd items, then more values (fast loop)."""
    if x % 7 == 6:
        return None
    yield x
    if x % 10 == 4:
        raise ValueError(f"boom {x}")
    yield mg.to("nowhere" if x % 2 else "sink", x)
    yield -x


async def output_then_unknown_async(x, output):
    output.emit(x)
    if x % 2:
        output.to("nowhere").emit(x)
    if x % 10 == 4:
        raise ValueError(f"boom {x}")


async def yields_then_unknown_async(x):
    if x % 7 == 6:
        return
    yield x
    if x % 10 == 4:
        raise ValueError(f"boom {x}")
    yield mg.to("nowhere" if x % 2 else "sink", x)
    yield -x


#: the async backend runs the same steps written as coroutines
ASYNC = {output_then_unknown: output_then_unknown_async,
         yields_then_unknown: yields_then_unknown_async}

SCENARIOS = {
    "output.to": (output_then_unknown, {}),
    "mg.to in a generator": (yields_then_unknown, {}),
    "mg.to in a generator, retries": (yields_then_unknown, {"retries": 2}),
    "output.to, retries": (output_then_unknown, {"retries": 2}),
}


def observed(backend, scenario, client=None, n=20):
    fn, opts = SCENARIOS[scenario]
    kw = {} if backend == "thread" else {"backend": backend}
    if backend == "async":
        fn = ASYNC[fn]
    pipe = mg.Pipeline("p", dask_client=client) if client is not None else mg.Pipeline("p")
    pipe.add(mg.processor(fn, name="f", workers=2, chunk_size=4, **kw, **opts))
    pipe.add(mg.processor(lambda v: ("s", v), name="sink", from_="f"))
    result = pipe.run(items=range(n), display="none")
    assert_conserved(result)
    stats = {s: tuple(int(result.stats.loc[s][c]) for c in STATS) for s in ("f", "sink")}
    rows = sorted(
        (r.stage, r.item_repr, r.exc_type, int(r.attempts)) for r in result.errors.itertuples()
    )
    return sorted(result.outputs), rows, stats


def expected(scenario, n=20):
    """What a thread stage gives (SPEC §12): odd items fail on their route, leaving nothing."""
    fn, opts = SCENARIOS[scenario]
    outs, rows = [], []
    done = filtered = 0
    for x in range(n):
        if fn is yields_then_unknown and x % 7 == 6:
            filtered += 1
            done += 1
            continue
        if x % 10 == 4:
            attempts = 1 + opts.get("retries", 0)
            rows.append(("f", repr(x), "ValueError", attempts))
        elif x % 2:
            rows.append(("f", repr(x), "UnknownStageError", 1))
        else:
            done += 1
            outs += [("s", x), ("s", x), ("s", -x)] if fn is yields_then_unknown else [("s", x)]
    retried = sum(r[3] - 1 for r in rows)
    return sorted(outs), sorted(rows), len(rows), done, filtered, retried, len(outs)


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_the_thread_stage_drops_the_failed_items_emissions(scenario):
    outs, rows, failed, done, filtered, retried, n_out = expected(scenario)
    got_outs, got_rows, stats = observed("thread", scenario)
    assert got_outs == outs
    assert got_rows == rows
    assert stats["f"] == (20, n_out, done, filtered, failed, 0, retried)
    assert stats["sink"] == (n_out, n_out, n_out, 0, 0, 0, 0)


@pytest.mark.parametrize("scenario", list(SCENARIOS))
@pytest.mark.parametrize("backend", BACKENDS[1:])
def test_every_backend_matches_the_thread_stage(backend, scenario):
    assert observed(backend, scenario) == observed("thread", scenario)


@pytest.fixture(scope="module")
def client():
    import logging

    from distributed import Client, LocalCluster

    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                     dashboard_address=":0", silence_logs=logging.ERROR) as cluster,
        Client(cluster) as c,
    ):
        yield c


@pytest.mark.slow
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_dask_matches_the_thread_stage(client, scenario):
    assert observed("dask", scenario, client) == observed("thread", scenario)


# -- the pieces --------------------------------------------------------------------------------
def test_drop_items_keeps_the_other_items_emissions_in_order():
    out = ["a0", "b1", "b2", "c", "d0", "d1"]
    ends = [1, 3, 3, 4, 6]  # item 2 emitted nothing
    assert drop_items(out, ends, [1]) == ["a0", "c", "d0", "d1"]
    assert drop_items(out, ends, [0, 4]) == ["b1", "b2", "c"]
    assert drop_items(out, ends, [2, 3]) == ["a0", "b1", "b2", "d0", "d1"]


def test_only_a_routed_outcome_carries_ends():
    plain = Outcome(0, 2, [1, 2], (), 2)
    assert with_ends(plain, [1, 2]) is plain  # the fast path pays nothing
    routed = Outcome(0, 3, [1, 2, 3], [(1, "x", 9)], 3)
    assert with_ends(routed, [1, 1, 3]).ends == [1, 1, 3]
    # the fast loop's layout: (items that returned None, emissions per generator/mg.to item)
    fast = Outcome(0, 3, ["g0", "g1", "v"], [(0, "x", 9)], 3)
    assert with_ends(fast, ([1], {0: 3})).ends == [2, 2, 3]


def test_an_unpicklable_item_is_dropped_with_its_ends():
    lock = threading.Lock()
    oc = Outcome(0, 3, ["a", lock, "c1", "c2"], [(0, "x", 1), (2, "y", 2)], 3)
    back = unpack(dump_outcome(oc, [1, 2, 4]))
    assert (back.out, back.dyn, back.ends) == (["a", "c1", "c2"], [(0, "x", 1), (2, "y", 2)],
                                               [1, 1, 3])
    assert (back.done, back.failed, [e.index for e in back.errors]) == (2, 1, [1])
    with pytest.raises(TypeError):
        pickle.dumps(lock)
