"""SPEC 2.7, 2.9, 2.10 and 12: dynamic-only stages and their senders, cycles, pure resolution."""

from __future__ import annotations

import pytest

import minigun_nb as mg
from minigun_nb.core.graph import resolve

from ._helpers import edges, proc, prod

pytestmark = pytest.mark.timeout(30)



# -- dynamic=True ------------------------------------------------------------------------------


def test_a_dynamic_stage_gets_no_default_edges_either_way():
    pipe = mg.Pipeline()
    prod(pipe, "gen")
    proc(pipe, "a")
    proc(pipe, "errors", dynamic=True)
    proc(pipe, "b")
    assert edges(pipe) == [("gen", "a", "default"), ("a", "b", "default")]
    graph = pipe.graph()
    assert graph.upstreams["errors"] == () and graph.downstreams["errors"] == ()
    assert graph.entries == ()  # a dynamic stage is not fed by run(items=...)
    assert graph.stages["errors"].dynamic is True


def test_a_dynamic_stages_senders_are_every_stage_that_is_not_its_descendant():
    pipe = mg.Pipeline()
    prod(pipe, "gen")
    proc(pipe, "a")
    proc(pipe, "retry", dynamic=True, to="b")
    proc(pipe, "b")
    proc(pipe, "c")
    assert edges(pipe) == [
        ("gen", "a", "default"),
        ("a", "b", "default"),
        ("retry", "b", "explicit"),
        ("b", "c", "default"),
    ]
    # b and c are downstream of `retry`: waiting for them would deadlock
    assert pipe.graph().senders["retry"] == ("gen", "a")


def test_dynamic_senders_span_nested_pipelines():
    pipe = mg.Pipeline()
    prod(pipe, "gen")
    with pipe.pipeline("inner"):
        proc(pipe, "f")
        proc(pipe, "dead_letters", dynamic=True)
    proc(pipe, "save")
    graph = pipe.graph()
    assert graph.senders["inner/dead_letters"] == ("gen", "inner/f", "save")
    assert pipe["inner"].graph().senders["dead_letters"] == ("f",)  # relative view


def test_routes_adds_senders_without_edges():
    pipe = mg.Pipeline()
    prod(pipe, "gen")
    proc(pipe, "a", routes=["c"])
    proc(pipe, "b")
    proc(pipe, "c")
    assert edges(pipe) == [("gen", "a", "default"), ("a", "b", "default"), ("b", "c", "default")]
    graph = pipe.graph()
    assert graph.senders["c"] == ("b", "a")
    assert graph.stages["a"].routes == ("c",)


def test_routes_names_resolve_like_any_name():
    pipe = mg.Pipeline()
    proc(pipe, "a", routes=["inner/fix"])
    with pipe.pipeline("inner"):
        proc(pipe, "fix", dynamic=True)
    assert pipe.graph().stages["a"].routes == ("inner/fix",)
    pipe2 = mg.Pipeline()
    proc(pipe2, "a", routes=["nowhere"])
    with pytest.raises(mg.UnknownStageError, match=r"stage 'a': no stage or pipeline named"):
        pipe2.graph()


def test_dynamic_and_from_do_not_mix():
    with pytest.raises(mg.DefinitionError) as info:
        mg.processor(lambda item: item, name="sink", dynamic=True, from_="a")
    assert str(info.value) == (
        "stage 'sink': dynamic=True stages receive only dynamically routed items, so from_= "
        "has no meaning; drop from_= or dynamic=True."
    )


# -- cycles ------------------------------------------------------------------------------------


def test_a_cycle_fails_at_definition_spelling_it_out():
    pipe = mg.Pipeline()
    prod(pipe, "gen")
    proc(pipe, "a")
    with pytest.raises(mg.CycleError) as info:
        proc(pipe, "b", to="a")
    assert str(info.value).startswith("the pipeline has a cycle: a -> b -> a.")
    assert "remove one of these to=/from_= edges" in str(info.value)


def test_a_failed_definition_leaves_the_pipeline_unchanged():
    pipe = mg.Pipeline()
    prod(pipe, "gen")
    proc(pipe, "a")
    before = edges(pipe)
    with pytest.raises(mg.CycleError):
        proc(pipe, "b", to="a")
    assert [s.name for s in pipe.stages] == ["gen", "a"]
    assert edges(pipe) == before
    proc(pipe, "b")  # the name is free again
    assert edges(pipe) == [("gen", "a", "default"), ("a", "b", "default")]


def test_a_stage_sending_to_itself_is_a_cycle():
    pipe = mg.Pipeline()
    with pytest.raises(mg.CycleError, match=r"cycle: again -> again\."):
        proc(pipe, "again", to="again")
    assert pipe.stages == []


def test_a_longer_cycle_through_a_forward_reference():
    pipe = mg.Pipeline()
    proc(pipe, "a", to="c")
    proc(pipe, "b")
    with pytest.raises(mg.CycleError, match=r"cycle: a -> c -> a\."):
        proc(pipe, "c", to="a")
    with pytest.raises(mg.UnknownStageError):  # `c` was not added: a's to="c" is dangling
        pipe.graph()


def test_a_cycle_through_a_nested_pipeline():
    pipe = mg.Pipeline()
    proc(pipe, "a")
    with pipe.pipeline("inner"):
        proc(pipe, "f")
    with pytest.raises(mg.CycleError, match=r"cycle: a -> inner/f -> back -> a\."):
        proc(pipe, "back", from_="inner", to="a")


def test_a_stage_routing_to_its_own_pipeline_is_a_cycle():
    pipe = mg.Pipeline()
    with pipe.pipeline("inner"):
        proc(pipe, "f")
        with pytest.raises(mg.CycleError, match=r"routes to its own pipeline 'inner'"):
            proc(pipe, "g", to="inner")
    assert [s.name for s in pipe["inner"].stages] == ["f"]


def test_a_nested_pipeline_with_a_cycle_fails_when_added_and_is_not_kept():
    sub = mg.Pipeline("sub")
    proc(sub, "f")
    pipe = mg.Pipeline()
    proc(pipe, "save", to="sub")
    with pytest.raises(mg.CycleError, match=r"cycle: save -> sub/f -> save\."):
        pipe.add(sub, to="save")
    assert pipe.pipelines == [] and sub.parent is None and sub.to is None


def test_a_cycle_through_a_parent_name_is_found_when_the_graph_is_resolved():
    sub = mg.Pipeline("sub")
    proc(sub, "f", to="save")  # `save` is the parent's stage, resolved once nested...
    pipe = mg.Pipeline()
    proc(pipe, "save", to="sub")
    pipe.add(sub)  # ...unless `sub` gets a `save` of its own later: not a cycle yet
    with pytest.raises(mg.CycleError, match=r"cycle: save -> sub/f -> save\."):
        pipe.graph()
    proc(sub, "save")
    assert edges(pipe) == [("save", "sub/f", "explicit"), ("sub/f", "sub/save", "explicit")]


# -- resolving is pure -------------------------------------------------------------------------


def test_resolving_twice_gives_equal_graphs_and_never_mutates_the_definition():
    pipe = mg.Pipeline("etl", workers=2)
    prod(pipe, "gen", to=["a", "b"], route="round_robin")
    proc(pipe, "a")
    proc(pipe, "b")
    with pipe.pipeline("inner"):
        with pipe.parallel():
            proc(pipe, "x")
            proc(pipe, "y")
    proc(pipe, "sink", dynamic=True)
    stage_options = {s.name: dict(s.options) for s in pipe.stages}
    before = edges(pipe)

    first, second = resolve(pipe), resolve(pipe)
    assert first == second
    assert first is not second
    assert edges(pipe) == before
    assert {s.name: dict(s.options) for s in pipe.stages} == stage_options
    assert [s.name for s in pipe.stages] == ["gen", "a", "b", "sink"]


def test_the_resolved_graph_is_frozen():
    pipe = mg.Pipeline()
    prod(pipe, "gen")
    proc(pipe, "a")
    graph = pipe.graph()
    with pytest.raises(TypeError):
        graph.stages["b"] = graph.stages["a"]  # type: ignore[index]
    with pytest.raises(TypeError):
        graph.stages["a"].options["workers"] = 8  # type: ignore[index]
    with pytest.raises(AttributeError):
        graph.edges = ()  # type: ignore[misc]
