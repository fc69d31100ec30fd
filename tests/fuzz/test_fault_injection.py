"""Fault injection (issue 15): random small DAGs x random backends x random faults per item
x random retries x a stop or a cancel at a random moment, each run checked against a
plain-Python reference and the accounting rules of SPEC §5/§12/§14.

Two profiles: a quick one in the normal suite, and a long one (``@pytest.mark.slow``,
``MINIGUN_FUZZ_EXAMPLES`` examples, 1000 by default). The counts of the last session (runs,
violations, hangs, orphans) are written to ``MINIGUN_FUZZ_REPORT`` (a JSON file, default
``$TMPDIR/minigun_fuzz_counts.json``).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass

import cloudpickle
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import minigun_nb as mg

pytestmark = pytest.mark.timeout(3600)
cloudpickle.register_pickle_by_value(sys.modules[__name__])

BACKENDS = ("thread", "inline", "process", "fork", "async")
SHAPES = ("chain", "broadcast", "round_robin", "fan_in", "parallel", "nested", "routes")
RUN_TIMEOUT = 60.0
MAX_WORKERS = 3
COUNTS = Counter()


# -- what a stage does to one item ----------------------------------------------------------------
@dataclass(frozen=True)
class Spec:
    backend: str
    retries: int
    seed: int
    workers: int
    exits: bool  # may an item os._exit its worker (process and fork only)


def fault(spec: Spec, x: int) -> str:
    """The fault an item meets in a stage: a pure function of the stage's seed and the item."""
    r = (x * 2654435761 + spec.seed * 40503) % 23
    if r == 0:
        return "raise"
    if r == 1:
        return "none"
    if r in (2, 3):
        return "several"
    if r == 4:
        return "sleep"
    if r == 5 and spec.exits and spec.backend in ("process", "fork"):
        return "exit"
    return "ok"


def transform(spec: Spec, x: int) -> int:
    return (x * 3 + spec.seed) % 997


def reference(spec: Spec, x: int) -> tuple[list[int], str | None]:
    """What the stage emits for ``x`` in plain Python, and the error type it records."""
    kind = fault(spec, x)
    if kind == "raise":
        return [], "ValueError"
    if kind == "exit":
        return [], "WorkerCrashed"
    if kind == "none":
        return [], None
    y = transform(spec, x)
    if kind == "several":
        return [y, y + 1000, y + 2000], None
    return [y], None


def _many(values):
    yield from values


def body(spec: Spec, x: int):
    kind = fault(spec, x)
    if kind == "raise":
        raise ValueError(f"injected fault for {x}")
    if kind == "exit":
        os._exit(3)
    if kind == "none":
        return None
    if kind == "sleep":
        time.sleep(0.002)
    y = transform(spec, x)
    if kind == "several":
        return _many([y, y + 1000, y + 2000])
    return y


def make_function(spec: Spec, name: str):
    if spec.backend == "async":
        async def fn(x):
            return body(spec, x)
    else:
        def fn(x):
            return body(spec, x)
    fn.__name__ = fn.__qualname__ = name
    return fn


def stage(pipe_or_none, spec: Spec, name: str, **extra):
    opts = dict(backend=spec.backend, retries=spec.retries, workers=spec.workers, **extra)
    if spec.backend == "fork":
        opts["crash_retries"] = 1
    return mg.processor(make_function(spec, name), name=name, **opts)


# -- random scenarios ---------------------------------------------------------------------------
def specs(exits: bool):
    return st.builds(
        Spec,
        backend=st.sampled_from(BACKENDS),
        retries=st.integers(0, 2),
        seed=st.integers(0, 10_000),
        workers=st.integers(1, MAX_WORKERS),
        exits=st.just(exits) if not exits else st.booleans(),
    )


@dataclass
class Scenario:
    shape: str
    specs: list[Spec]
    items: list[int]
    producer: bool
    control: str  # none | stop | cancel
    delay: float
    queue_size: int


def scenarios(exits: bool):
    return st.builds(
        Scenario,
        shape=st.sampled_from(SHAPES),
        specs=st.lists(specs(exits), min_size=4, max_size=4),
        items=st.lists(st.integers(0, 500), max_size=30),
        producer=st.booleans(),
        control=st.sampled_from(["none", "none", "stop", "cancel"]),
        delay=st.sampled_from([0.0, 0.001, 0.005, 0.02]),
        queue_size=st.sampled_from([2, 5, 1000]),
    )


def build(sc: Scenario):
    """The pipeline, and a reference: item -> the (outputs, errors) plain Python gives."""
    a, b, c, d = sc.specs
    pipe = mg.Pipeline("fuzz", queue_size=sc.queue_size)
    if sc.shape == "fan_in":
        sc.producer = False  # two entry stages fed by items=, one stage they both feed
    if sc.producer:
        items = list(sc.items)
        pipe.add(mg.producer(lambda: iter(items), name="gen"))

    def seq(x, *chain):
        """Items through stages in a row: outputs of the last, errors of each."""
        vals, errs = [x], []
        for _name, spec in chain:
            nxt = []
            for v in vals:
                out, err = reference(spec, v)
                nxt += out
                if err:
                    errs.append((err, v))
            vals = nxt
        return vals, errs

    if sc.shape == "chain":
        for name, spec in (("s0", a), ("s1", b), ("s2", c)):
            pipe.add(stage(pipe, spec, name))

        def ref(x):
            return seq(x, ("s0", a), ("s1", b), ("s2", c))
    elif sc.shape in ("broadcast", "round_robin"):
        rr = sc.shape == "round_robin"
        left, right = (b, b) if rr else (b, c)  # round-robin siblings do the same thing
        pipe.add(stage(pipe, a, "s0", to=["s1", "s2"],
                       **({"route": "round_robin"} if rr else {})))
        pipe.add(stage(pipe, left, "s1"))
        pipe.add(stage(pipe, right, "s2"))
        pipe.add(stage(pipe, d, "s3"))

        def ref(x):
            mid, errs = seq(x, ("s0", a))
            outs = []
            for v in mid:
                for spec in ((left,) if rr else (left, right)):
                    o, e = seq(v, ("s", spec), ("s3", d))
                    outs += o
                    errs += e
            return outs, errs
    elif sc.shape == "fan_in":
        pipe.add(stage(pipe, a, "s0", to="s3"))  # two entry stages, one fan-in stage
        pipe.add(stage(pipe, b, "s1", to="s3"))
        pipe.add(stage(pipe, d, "s3"))

        def ref(x):
            outs, errs = [], []
            for spec in (a, b):
                o, e = seq(x, ("s", spec), ("s3", d))
                outs += o
                errs += e
            return outs, errs
    elif sc.shape == "parallel":
        pipe.add(stage(pipe, a, "s0"))
        with pipe.parallel():
            pipe.add(stage(pipe, b, "s1"))
            pipe.add(stage(pipe, c, "s2"))
        pipe.add(stage(pipe, d, "s3"))

        def ref(x):
            mid, errs = seq(x, ("s0", a))
            outs = []
            for v in mid:
                for spec in (b, c):
                    o, e = seq(v, ("s", spec), ("s3", d))
                    outs += o
                    errs += e
            return outs, errs
    elif sc.shape == "nested":
        pipe.add(stage(pipe, a, "s0"))
        with pipe.pipeline("inner"):
            pipe.add(stage(pipe, b, "s1"))
            pipe.add(stage(pipe, c, "s2"))
        pipe.add(stage(pipe, d, "s3"))

        def ref(x):
            return seq(x, ("s0", a), ("s1", b), ("s2", c), ("s3", d))
    else:  # routes: s0 sends odd results to the dynamic "side" stage, the rest on to s1
        def router(x, spec=a):
            kind = fault(spec, x)
            if kind == "raise":
                raise ValueError(f"injected fault for {x}")
            if kind == "none":
                return None
            y = transform(spec, x)
            return mg.to("side", y) if y % 2 else y

        if a.backend == "async":
            async def s0(x):
                return router(x)
        else:
            def s0(x):
                return router(x)
        pipe.add(mg.processor(s0, name="s0", routes=["side"], retries=a.retries,
                              workers=a.workers,
                              backend=a.backend if a.backend != "fork" else "thread"))
        pipe.add(stage(pipe, b, "s1"))
        pipe.add(stage(pipe, c, "side", dynamic=True))

        def ref(x):
            kind = fault(a, x)
            if kind == "raise":
                return [], [("ValueError", x)]
            if kind == "none":
                return [], []
            y = transform(a, x)
            return seq(y, ("side", c)) if y % 2 else seq(y, ("s1", b))
    return pipe, ref


# -- processes ------------------------------------------------------------------------------------
def child_processes() -> dict[int, str]:
    me = os.getpid()
    out = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[1]) == me and fields[0] != "Z":
                with open(f"/proc/{name}/cmdline") as f:
                    out[int(name)] = f.read()
        except OSError:
            continue
    return out


def leftovers() -> tuple[int, int]:
    """(fork children still alive, loky workers) among our children."""
    kids = child_processes()
    loky = sum(1 for cmd in kids.values() if "LokyProcess" in cmd)
    forks = sum(1 for cmd in kids.values() if "resource_tracker" not in cmd
                and "LokyProcess" not in cmd)
    return forks, loky


# -- one run, checked -------------------------------------------------------------------------------
def check(sc: Scenario) -> None:
    from minigun_nb.executors import process_pool

    pipe, ref = build(sc)
    feed = None if sc.producer else sc.items  # build() may have turned the producer off
    COUNTS["runs"] += 1
    handle = pipe.start(items=feed, display="none")
    if sc.control != "none":
        time.sleep(sc.delay)
        handle.stop(drain=sc.control == "stop")
    try:
        result = handle.wait(timeout=RUN_TIMEOUT)
    except TimeoutError:
        COUNTS["hangs"] += 1
        handle.stop(drain=False)
        raise
    try:
        stats = result.stats
        errors = result.errors
        rows = Counter(errors["stage"])
        for path, row in stats.iterrows():
            if row["kind"] == "producer":
                continue
            assert row["items_in"] == row["done"] + row["failed"] + row["cancelled"], (
                path, row[["items_in", "done", "failed", "cancelled"]].to_dict())
            assert row["failed"] == rows[path], (path, row["failed"], rows[path])
            assert row["in_flight"] == 0, path
        assert int(stats["cancelled"].sum()) == len(result.cancelled_items)
        want_out, want_err = Counter(), Counter()
        for x in sc.items:
            outs, errs = ref(x)
            want_out.update(outs)
            want_err.update(errs)
        got_out = Counter(result.outputs)
        got_err = Counter(zip(errors["exc_type"], errors["item"], strict=True))
        if sc.control == "none":
            assert result.status == "done", result.status
            assert got_out == want_out, (got_out - want_out, want_out - got_out)
            assert got_err == want_err, (got_err - want_err, want_err - got_err)
        else:
            assert not got_out - want_out, got_out - want_out  # only what survivors give
            assert not got_err - want_err, got_err - want_err
            if sc.control == "cancel" and result.status == "cancelled":
                assert result.stopped
    except AssertionError:
        COUNTS["violations"] += 1
        raise
    # idle warm workers are capped, but the pool released last stays whole; a closed pool's
    # workers are killed asynchronously: give them a moment
    bound = max(process_pool.MAX_IDLE_WORKERS, MAX_WORKERS)
    for _ in range(100):
        forks, loky = leftovers()
        if not forks and loky <= bound:
            break
        time.sleep(0.05)
    if forks or loky > bound:
        COUNTS["orphans"] += 1
    assert forks == 0, "a fork child outlived its run"
    assert loky <= bound, f"{loky} warm loky workers"


@pytest.fixture(scope="module", autouse=True)
def _report():
    COUNTS.clear()
    yield
    mg.shutdown()
    path = os.environ.get("MINIGUN_FUZZ_REPORT",
                          os.path.join(tempfile.gettempdir(), "minigun_fuzz_counts.json"))
    counts = {k: COUNTS[k] for k in ("runs", "violations", "hangs", "orphans")}
    with open(path, "w") as f:
        json.dump(counts, f)
    print(f"\nfault injection: {counts}")


COMMON = dict(deadline=None, derandomize=False, database=None, print_blob=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@settings(max_examples=int(os.environ.get("MINIGUN_FUZZ_QUICK", 120)), **COMMON)
@given(scenarios(exits=False))
def test_random_pipelines_under_faults_quick(sc):
    check(sc)


@pytest.mark.slow
@settings(max_examples=int(os.environ.get("MINIGUN_FUZZ_EXAMPLES", 1000)), **COMMON)
@given(scenarios(exits=True))
def test_random_pipelines_under_faults_long(sc):
    check(sc)
