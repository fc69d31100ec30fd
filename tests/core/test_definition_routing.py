"""Inside ``with pipe.pipeline("x")`` every definition method of ``pipe`` acts on ``x``.

Which methods those are is read from the class (the ``@definition`` marker), never from a list
kept by hand: a new public method is either marked, and then must be routed, or one of the
read-only façade methods named here.
"""

from __future__ import annotations

import inspect

import pytest

import minigun_nb as mg
from minigun_nb.core.building import is_definition
from minigun_nb.core.tree import Block

from ._helpers import proc

pytestmark = pytest.mark.timeout(30)

#: public methods that define nothing: they read the definition, or run it
READ_ONLY = {"graph", "to_mermaid", "to_dot", "to_svg", "run", "start"}


def _public_methods() -> dict[str, object]:
    return {
        name: value
        for name, value in inspect.getmembers(mg.Pipeline)
        if not name.startswith("_") and callable(value) and not isinstance(value, property)
    }


def _definition_methods() -> set[str]:
    return {name for name, value in _public_methods().items() if is_definition(value)}


def _with_stage(block):
    """Open ``block`` (a context manager) and define a stage inside it."""

    def call(pipe):
        with block(pipe):
            proc(pipe, "inside")

    return call


def _tasks(pipe):
    async def inside(item):
        return item

    with pipe.tasks(2):
        pipe.processor(inside)


#: one call of each definition method, made on the outer pipeline inside the nested block
CALLS = {
    "producer": lambda p: p.producer(lambda: [1], name="made"),
    "processor": lambda p: p.processor(lambda x: x, name="made"),
    "consumer": lambda p: p.consumer(lambda x: None, name="made"),
    "accumulator": lambda p: p.accumulator(sum, name="made", size=2),
    "stage": lambda p: p.stage(lambda x: x, name="made"),
    "batch": lambda p: p.batch(10),
    "debatch": lambda p: p.debatch(),
    "rebatch": lambda p: p.rebatch(10),
    "add": lambda p: p.add(mg.processor(lambda x: x, name="made")),
    "parallel": _with_stage(lambda p: p.parallel()),
    "sequential": _with_stage(lambda p: p.sequential()),
    "threads": _with_stage(lambda p: p.threads(2)),
    "processes": _with_stage(lambda p: p.processes(2)),
    "forks": _with_stage(lambda p: p.forks(2)),
    "tasks": _tasks,
    "pipeline": _with_stage(lambda p: p.pipeline("deeper")),
    "before_run": lambda p: p.before_run(lambda: None),
    "after_run": lambda p: p.after_run(lambda result: None),
    "before_fork": lambda p: p.before_fork(lambda: None),
    "after_fork": lambda p: p.after_fork(lambda: None),
    "on_error": lambda p: p.on_error(lambda exc, item, stage: None),
}


def _describe(pipe, skip=None):
    """What ``pipe`` holds: its blocks, stages (with options), nested pipelines and hooks."""

    def block(b):
        out = []
        for child in b.children:
            if isinstance(child, Block):
                out.append((child.kind, block(child)))
            elif isinstance(child, mg.Pipeline):
                out.append(("pipeline", child.name, "..." if child is skip else _describe(child)))
            else:
                out.append((child.kind, child.name, sorted(child.options.items(), key=str)))
        return out

    return block(pipe._body), {k: len(v) for k, v in pipe.hooks.items()}, list(pipe._contexts)


def test_every_public_method_is_a_marked_definition_or_a_read_only_method():
    methods = _public_methods()
    marked = _definition_methods()
    unclassified = set(methods) - marked - READ_ONLY
    assert not unclassified, (
        f"{sorted(unclassified)}: mark a definition method with @definition (so it is routed "
        f"into a nested pipeline), or add a read-only method to READ_ONLY"
    )
    assert not marked & READ_ONLY
    assert READ_ONLY <= set(methods)


def test_there_is_one_routing_check_per_definition_method():
    assert set(CALLS) == _definition_methods()


@pytest.mark.parametrize("name", sorted(CALLS))
def test_each_definition_method_acts_on_the_open_nested_pipeline(name):
    outer = mg.Pipeline("outer")
    proc(outer, "before")
    with outer.pipeline("inner") as inner:
        outer_before, inner_before = _describe(outer, skip=inner), _describe(inner)
        CALLS[name](outer)
        outer_after, inner_after = _describe(outer, skip=inner), _describe(inner)
    assert outer_after == outer_before, f"pipe.{name} changed the outer pipeline"
    assert inner_after != inner_before, f"pipe.{name} did not define into the nested pipeline"


@pytest.mark.parametrize("name", sorted(CALLS))
def test_each_definition_method_acts_on_its_own_pipeline_outside_the_block(name):
    outer = mg.Pipeline("outer")
    proc(outer, "before")
    with outer.pipeline("inner") as inner:
        pass
    inner_before, outer_before = _describe(inner), _describe(outer, skip=inner)
    CALLS[name](outer)
    assert _describe(inner) == inner_before
    assert _describe(outer, skip=inner) != outer_before


def test_a_definition_inside_two_open_blocks_goes_to_the_innermost_pipeline():
    outer = mg.Pipeline("outer")
    with outer.pipeline("a") as a, outer.pipeline("b") as b:
        f = proc(outer, "f")
        g = proc(a, "g")  # `a`'s methods are routed into `b` as well
    assert outer["a/b/f"] is f and outer["a/b/g"] is g
    assert b.stages == [f, g] and a.stages == [] and outer.stages == []


def test_the_routed_methods_keep_their_signature_and_docstring():
    for name in _definition_methods():
        method = getattr(mg.Pipeline, name)
        original = inspect.unwrap(method)
        assert method.__doc__ == original.__doc__ and method.__doc__, name
        assert inspect.signature(method) == inspect.signature(original), name


def test_routing_follows_the_call_not_the_lookup():
    pipe = mg.Pipeline("p")

    @pipe.producer
    def gen():
        yield 1

    before = pipe.processor  # looked up outside the block...
    with pipe.pipeline("inner"):
        before(lambda x: x, name="a")  # ...called inside: it goes into "inner"
        inside = pipe.processor
    inside(lambda x: x, name="b")  # looked up inside, called after: it goes into "p"
    assert [s.path for s in pipe.graph().stages.values()] == ["gen", "inner/a", "b"]
