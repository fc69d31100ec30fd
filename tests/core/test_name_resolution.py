"""SPEC 2.8: a name resolves in the stage's own pipeline, then below it, then above it."""

from __future__ import annotations

import pytest

import minigun_nb as mg
from minigun_nb.core.graph import resolve

from ._helpers import edges, proc, prod

pytestmark = pytest.mark.timeout(30)



def test_own_pipeline_wins_over_nested_ones():
    pipe = mg.Pipeline("etl")
    prod(pipe, "gen", to="save")
    with pipe.pipeline("x"):
        proc(pipe, "save", dynamic=True)
    proc(pipe, "save")
    assert ("gen", "save", "explicit") in edges(pipe)
    assert resolve(pipe).lookup("save", "") == ("stage", "save")


def test_nested_pipelines_are_searched_nearest_level_first():
    pipe = mg.Pipeline("etl")
    prod(pipe, "gen", to="save")
    with pipe.pipeline("x"):
        proc(pipe, "save", dynamic=True)
    with pipe.pipeline("y"):
        with pipe.pipeline("z"):
            proc(pipe, "save", dynamic=True)
    assert edges(pipe) == [("gen", "x/save", "explicit")]


def test_nested_pipelines_are_searched_before_ancestors():
    pipe = mg.Pipeline("etl")
    proc(pipe, "save", dynamic=True)
    with pipe.pipeline("x"):
        prod(pipe, "gen", to="save")
        with pipe.pipeline("deep"):
            proc(pipe, "save", dynamic=True)
    assert edges(pipe) == [("x/gen", "x/deep/save", "explicit")]


def test_ancestors_are_searched_nearest_first():
    pipe = mg.Pipeline("etl")
    proc(pipe, "save", dynamic=True)
    with pipe.pipeline("l1"):
        proc(pipe, "save", dynamic=True)
        with pipe.pipeline("l2"):
            prod(pipe, "gen", to="save")
    assert edges(pipe) == [("l1/l2/gen", "l1/save", "explicit")]
    graph = resolve(pipe)
    assert graph.lookup("save", "l1/l2") == ("stage", "l1/save")
    assert graph.lookup("save", "") == ("stage", "save")


def test_two_matches_at_the_same_level_are_ambiguous_and_list_full_paths():
    pipe = mg.Pipeline("etl")
    prod(pipe, "gen", to="save")
    with pipe.pipeline("x"):
        proc(pipe, "save", dynamic=True)
    with pipe.pipeline("y"):
        proc(pipe, "save", dynamic=True)
    with pytest.raises(mg.AmbiguousStageError) as info:
        pipe.graph()
    message = str(info.value)
    assert message.startswith("stage 'gen': stage name 'save' (seen from 'etl')")
    assert "matches several stages at the same level: 'etl/x/save', 'etl/y/save'" in message
    assert "use the full path instead" in message


def test_a_full_path_always_resolves_with_or_without_the_root_name():
    for target in ("x/save", "etl/x/save"):
        pipe = mg.Pipeline("etl")
        prod(pipe, "gen", to=target)
        with pipe.pipeline("x"):
            proc(pipe, "save", dynamic=True)
        with pipe.pipeline("y"):
            proc(pipe, "save", dynamic=True)
        assert edges(pipe) == [("gen", "x/save", "explicit")]


def test_a_path_may_be_relative_to_the_declaring_pipeline():
    pipe = mg.Pipeline("etl")
    with pipe.pipeline("x"):
        prod(pipe, "gen", to="deep/save")
        with pipe.pipeline("deep"):
            proc(pipe, "save", dynamic=True)
    assert edges(pipe) == [("x/gen", "x/deep/save", "explicit")]


def test_a_sibling_pipelines_stage_needs_a_path():
    pipe = mg.Pipeline("etl")
    with pipe.pipeline("x"):
        prod(pipe, "gen", to="save")
    with pipe.pipeline("y"):
        proc(pipe, "save", dynamic=True)
    with pytest.raises(mg.UnknownStageError, match=r"no stage or pipeline named 'save'"):
        pipe.graph()


def test_lookup_and_targets_for_the_runtime():
    pipe = mg.Pipeline("etl")
    with pipe.pipeline("inner"):
        proc(pipe, "a")
        with pipe.parallel():
            proc(pipe, "b")
            proc(pipe, "c")
    graph = resolve(pipe)
    assert graph.lookup("inner", "") == ("pipeline", "inner")
    assert graph.targets("inner", "") == ("inner/a",)
    assert graph.targets("b", "") == ("inner/b",)
    with pytest.raises(mg.UnknownStageError, match=r"known: 'inner', 'inner/a'"):
        graph.lookup("nope", "")


def test_forward_reference_binds_to_the_local_stage_not_a_same_named_one_elsewhere():
    # Ruby regression: `to: :save` bound to the first `save` defined anywhere.
    pipe = mg.Pipeline("etl")
    with pipe.pipeline("y"):
        proc(pipe, "save")  # defined first, in another pipeline
    with pipe.pipeline("x"):
        prod(pipe, "gen", to="save")  # forward reference: x's own `save` comes later
        proc(pipe, "mid")
        proc(pipe, "save")
    assert edges(pipe) == [("x/gen", "x/save", "explicit"), ("x/mid", "x/save", "default")]


def test_forward_reference_binds_locally_even_when_an_ancestor_has_the_name():
    pipe = mg.Pipeline("etl")
    proc(pipe, "save", dynamic=True)  # while `x/gen` is defined, this is the only `save`
    with pipe.pipeline("x"):
        prod(pipe, "gen", to="save")
        proc(pipe, "save")
    assert edges(pipe) == [("x/gen", "x/save", "explicit")]


def test_a_forward_reference_is_no_cycle_through_a_same_named_nested_stage():
    # SPEC 2.2/11: while `a` is defined, its `save` binds to inner/save, which feeds `a` by
    # default chaining; that must not be reported as a cycle: root's own `save` comes next.
    pipe = mg.Pipeline("root")
    pipe.add(mg.producer(lambda: [1], name="gen"))
    with pipe.pipeline("inner"):
        pipe.add(mg.processor(lambda x: x, name="save"))
    pipe.add(mg.processor(lambda x: x, name="a", to="save"))  # root's save, defined next
    pipe.add(mg.processor(lambda x: x, name="save"))
    assert [s.name for s in pipe.stages] == ["gen", "a", "save"]
    assert edges(pipe) == [
        ("gen", "inner/save", "nested"),
        ("inner/save", "a", "nested"),
        ("a", "save", "explicit"),
    ]
    assert pipe.run(display="none").outputs == [1]


def test_a_forward_reference_is_no_cycle_through_a_same_named_ancestor_stage():
    pipe = mg.Pipeline("etl")
    prod(pipe, "gen")
    proc(pipe, "save")  # feeds `x` by default chaining
    with pipe.pipeline("x"):
        proc(pipe, "f", to="save")  # x's own `save`, defined next
        proc(pipe, "save")
    assert edges(pipe) == [
        ("gen", "save", "default"),
        ("save", "x/f", "nested"),
        ("x/f", "x/save", "explicit"),
    ]


def test_a_nested_pipelines_forward_routing_is_no_cycle_through_its_own_stage():
    pipe = mg.Pipeline("etl")
    prod(pipe, "gen")
    with pipe.pipeline("x", to="save"):  # root's `save`, defined after the block
        proc(pipe, "save")
    proc(pipe, "save")
    assert edges(pipe) == [("gen", "x/save", "nested"), ("x/save", "save", "explicit")]


def test_a_cycle_through_a_name_bound_elsewhere_fails_at_resolution():
    pipe = mg.Pipeline("root")
    prod(pipe, "gen")
    with pipe.pipeline("inner"):
        proc(pipe, "save")
    proc(pipe, "a", to="save")  # accepted: root may still get a `save` of its own
    with pytest.raises(mg.CycleError, match=r"cycle: inner/save -> a -> inner/save\."):
        pipe.graph()
    with pytest.raises(mg.CycleError):
        pipe.run(display="none")
    proc(pipe, "save")  # defining it settles the name: no cycle any more
    assert ("a", "save", "explicit") in edges(pipe)


def test_a_cycle_among_own_pipeline_names_still_fails_at_definition():
    pipe = mg.Pipeline("root")
    prod(pipe, "gen")
    proc(pipe, "a")
    with pipe.pipeline("inner"):
        proc(pipe, "save")
    with pytest.raises(mg.CycleError, match=r"cycle: a -> inner/save -> save -> a\."):
        proc(pipe, "save", to="a")  # root's own `a`: no later definition can rebind it
    assert [s.name for s in pipe.stages] == ["gen", "a"]


def test_names_must_be_strings():
    with pytest.raises(mg.DefinitionError, match=r"to=3 is not valid; use a stage name"):
        mg.processor(lambda item: item, name="f", to=3)
    with pytest.raises(mg.DefinitionError, match=r"name='a/b' is not valid"):
        mg.processor(lambda item: item, name="a/b")
