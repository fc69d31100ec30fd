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


def test_names_must_be_strings():
    with pytest.raises(mg.DefinitionError, match=r"to=3 is not valid; use a stage name"):
        mg.processor(lambda item: item, name="f", to=3)
    with pytest.raises(mg.DefinitionError, match=r"name='a/b' is not valid"):
        mg.processor(lambda item: item, name="a/b")
