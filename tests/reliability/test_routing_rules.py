"""SPEC §14: ``to=`` or ``routes=`` naming a producer is a DefinitionError; a dynamic route to
a producer is an error row that says why (issue 15, finding 6)."""

from __future__ import annotations

import pytest

import minigun_nb as mg

from ._helpers import assert_conserved

pytestmark = pytest.mark.timeout(60)


def test_to_a_producer_is_a_definition_error_before_anything_runs():
    pipe = mg.Pipeline("p")
    ran = []

    @pipe.producer
    def gen():
        ran.append("gen")
        yield from range(3)

    @pipe.processor(to="other")
    def work(x):
        ran.append(x)
        return x

    @pipe.producer
    def other():
        yield 1

    with pytest.raises(mg.DefinitionError, match="'other' is a producer, which takes no input"):
        pipe.run(display="none")
    assert ran == []


def test_a_nested_pipeline_stage_routing_to_a_parent_producer_is_a_definition_error():
    pipe = mg.Pipeline("p")

    @pipe.producer
    def gen():
        yield 1

    with pipe.pipeline("inner"):
        @pipe.processor(to="gen")
        def work(x):
            return x

    with pytest.raises(mg.DefinitionError, match="'gen' is a producer"):
        pipe.run(display="none")


def test_routes_naming_a_producer_is_a_definition_error():
    pipe = mg.Pipeline("p")

    @pipe.producer
    def gen():
        yield 1

    @pipe.processor(routes=["gen"])
    def work(x):
        yield mg.to("gen", x)

    with pytest.raises(mg.DefinitionError, match="routes= names 'gen', a producer"):
        pipe.run(display="none")


def test_a_dynamic_route_to_a_producer_is_an_error_row_saying_why():
    pipe = mg.Pipeline("p")

    @pipe.producer
    def gen():
        yield from range(4)

    @pipe.processor
    def work(x):
        if x == 2:
            yield mg.to("gen", x)
        else:
            yield x

    result = pipe.run(display="none")
    assert sorted(result.outputs) == [0, 1, 3]
    assert list(result.errors["item"]) == [2]
    message = result.errors["message"][0]
    assert "producer" in message and "routes=" not in message
    assert_conserved(result)


def test_a_nested_stage_routing_to_a_parent_stage_keeps_the_nested_exit_edge():
    """SPEC §12 (issue 15, finding 9): a nested pipeline chains like a stage; ``work``'s
    ``to=`` replaces only ``work``'s default edge, so ``tail`` still feeds ``report``."""
    outer = mg.Pipeline("outer")

    @outer.producer
    def gen():
        yield from range(3)

    with outer.pipeline("inner") as inner:
        @inner.processor(to=["tail", "report"])
        def work(x):
            return x

        @inner.processor
        def tail(x):
            return ("tail", x)

    @outer.consumer
    def report(x):
        return ("report", x)

    assert mg.Edge("inner/tail", "report", "nested") in outer.edges
    result = outer.run(display="none")
    assert sorted(result.outputs, key=repr) == sorted(
        [("report", x) for x in range(3)] + [("report", ("tail", x)) for x in range(3)],
        key=repr)
    assert set(result.outputs_by_stage) == {"report"}
    assert_conserved(result)
