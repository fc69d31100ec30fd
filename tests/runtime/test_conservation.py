"""The conservation law (SPEC §5) as a property over random small DAGs.

Each example builds a random DAG of 2-6 stages (producers and processors; random ``to=`` and
``from_=`` edges on top of default chaining, so fan-out, fan-in and entry stages fed by
``items=``; random workers and queue sizes) whose functions fail on some items, runs it, and
compares it with a plain-Python reference run of the same functions over the resolved edges:
outputs as multisets, and for every stage the counts ``items_in, done, failed, filtered,
items_out``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import minigun_nb as mg

from ._helpers import assert_conserved

pytestmark = pytest.mark.timeout(30)


class Boom(Exception):
    pass


@dataclass(frozen=True)
class Spec:
    name: str
    kind: str  # "producer" or one of FUNCTIONS
    from_: tuple[str, ...] | None
    to: tuple[str, ...] | None
    workers: int
    queue_size: int
    count: int  # producers: how many items
    modulus: int  # items with x % modulus == 0 fail (0: none fail)


def make_fn(spec: Spec):
    m = spec.modulus

    def fails(x):
        return m and x % m == 0

    if spec.kind == "producer":
        base = 1 + 100 * int(spec.name[1:])
        return lambda: range(base, base + spec.count)
    if spec.kind == "inc":
        def inc(x):
            if fails(x):
                raise Boom(x)
            return x + 1
        return inc
    if spec.kind == "double":
        def double(x):
            if fails(x):
                raise Boom(x)
            return 2 * x
        return double
    if spec.kind == "odd_only":
        def odd_only(x):
            if fails(x):
                raise Boom(x)
            return x if x % 2 else None  # filters even numbers
        return odd_only
    if spec.kind == "pair":
        def pair(x):
            yield x
            if fails(x):  # fails half-way: what it yielded must be withdrawn
                raise Boom(x)
            yield x + 1000
        return pair
    raise AssertionError(spec.kind)


FUNCTIONS = ("inc", "double", "odd_only", "pair")


@st.composite
def dags(draw):
    n = draw(st.integers(2, 6))
    kinds = ["producer" if draw(st.integers(0, 5)) == 0 else draw(st.sampled_from(FUNCTIONS))
             for _ in range(n)]
    specs = []
    for i in range(n):
        name = f"s{i}"
        # edges only point forward (to= later stages, from_= earlier ones): never a cycle
        from_ = to = None
        if kinds[i] != "producer" and i > 0 and draw(st.booleans()):
            picks = draw(st.lists(st.integers(0, i - 1), min_size=1, max_size=3, unique=True))
            from_ = tuple(f"s{j}" for j in sorted(picks))
        later = [j for j in range(i + 1, n) if kinds[j] != "producer"]
        if later and draw(st.integers(0, 2)) == 0:
            picks = draw(st.lists(st.sampled_from(later), min_size=1, max_size=3, unique=True))
            to = tuple(f"s{j}" for j in sorted(picks))
        specs.append(Spec(
            name=name, kind=kinds[i], from_=from_, to=to,
            workers=draw(st.integers(1, 3)),
            queue_size=draw(st.sampled_from([1, 3, 1000])),
            count=draw(st.integers(0, 25)),
            modulus=draw(st.sampled_from([0, 0, 3, 4, 7])),
        ))
    return specs


def build(specs: list[Spec]) -> mg.Pipeline:
    pipe = mg.Pipeline("random")
    for s in specs:
        fn = make_fn(s)
        edges = {"to": s.to} if s.to else {}
        if s.kind == "producer":
            pipe.producer(fn, name=s.name, **edges)
        else:
            if s.from_:
                edges["from_"] = s.from_
            pipe.processor(fn, name=s.name, workers=s.workers, queue_size=s.queue_size,
                           **edges)
    return pipe


def reference(specs: list[Spec], graph: mg.Graph, items: list):
    """The same functions in plain Python over the resolved edges: per-stage counts, failed
    items, terminal outputs."""
    downstreams = graph.downstreams
    inputs: dict[str, list] = {s.name: [] for s in specs}
    for entry in graph.entries:
        inputs[entry].extend(items)
    counts: dict[str, dict[str, int]] = {}
    failed_items: dict[str, list] = {}
    outputs: list = []
    for s in specs:  # upstreams always come earlier: definition order is topological
        fn = make_fn(s)
        emitted: list = []
        c = dict(items_in=len(inputs[s.name]), done=0, failed=0, filtered=0)
        failed_items[s.name] = []
        if s.kind == "producer":
            emitted = list(fn())
        for x in inputs[s.name]:
            try:
                r = fn(x)
                out = list(r) if s.kind == "pair" else ([] if r is None else [r])
            except Boom:
                c["failed"] += 1
                failed_items[s.name].append(x)
                continue
            c["done"] += 1
            c["filtered"] += not out
            emitted.extend(out)
        c["items_out"] = len(emitted)
        counts[s.name] = c
        for d in downstreams[s.name]:
            inputs[d].extend(emitted)
        if not downstreams[s.name]:
            outputs.extend(emitted)
    return counts, failed_items, outputs


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dags())
def test_random_dag_matches_plain_python_and_conserves_items(specs):
    pipe = build(specs)
    graph = pipe.graph()
    items = list(range(500, 520)) if graph.entries else None
    result = pipe.run(items=items, display="none")
    counts, failed_items, outputs = reference(specs, graph, items or [])

    assert result.ok
    assert_conserved(result)
    assert Counter(result.outputs) == Counter(outputs)
    stats = result.stats
    for s in specs:
        got = {k: int(stats.loc[s.name, k]) for k in ("items_in", "done", "failed",
                                                       "filtered", "items_out")}
        assert got == counts[s.name], s.name
        assert stats.loc[s.name, "cancelled"] == 0
    errors = result.errors
    for s in specs:
        rows = errors[errors["stage"] == s.name]
        assert Counter(rows["item"]) == Counter(failed_items[s.name]), s.name
        assert set(rows["exc_type"]) <= {"Boom"}
