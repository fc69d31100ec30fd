"""SPEC 2.6 and 12: nested pipelines chain like stages, at any depth and in all directions."""

from __future__ import annotations

import pytest

import minigun_nb as mg

from ._helpers import edges, proc, prod

pytestmark = pytest.mark.timeout(30)



def test_add_nests_a_pipeline_between_two_stages():
    clean = mg.Pipeline("clean")
    proc(clean, "strip")
    proc(clean, "lower")

    pipe = mg.Pipeline("etl")
    prod(pipe, "read")
    assert pipe.add(clean) is clean
    proc(pipe, "save")

    assert edges(pipe) == [
        ("read", "clean/strip", "nested"),
        ("clean/strip", "clean/lower", "default"),
        ("clean/lower", "save", "nested"),
    ]
    assert pipe.pipelines == [clean]
    assert clean.parent is pipe


def test_with_pipeline_adds_the_decorated_stages_to_the_nested_one():
    pipe = mg.Pipeline("etl")

    @pipe.producer
    def read():
        yield 1

    with pipe.pipeline("inner") as inner:

        @pipe.processor
        def load(item):
            return item

        @inner.processor
        def parse(item):
            return item

    @pipe.consumer
    def save(item):
        pass

    assert [s.name for s in pipe.stages] == ["read", "save"]
    assert [s.name for s in inner.stages] == ["load", "parse"]
    assert pipe["inner/load"] is load
    assert edges(pipe) == [
        ("read", "inner/load", "nested"),
        ("inner/load", "inner/parse", "default"),
        ("inner/parse", "save", "nested"),
    ]


def test_nesting_two_and_three_levels_deep():
    pipe = mg.Pipeline("outer")
    prod(pipe, "gen")
    with pipe.pipeline("l1"):
        proc(pipe, "a")
        with pipe.pipeline("l2"):
            proc(pipe, "b")
            with pipe.pipeline("l3"):
                proc(pipe, "c")
            proc(pipe, "d")
    proc(pipe, "save")
    assert edges(pipe) == [
        ("gen", "l1/a", "nested"),
        ("l1/a", "l1/l2/b", "nested"),
        ("l1/l2/b", "l1/l2/l3/c", "nested"),
        ("l1/l2/l3/c", "l1/l2/d", "nested"),
        ("l1/l2/d", "save", "nested"),
    ]
    assert [p.name for p in pipe.pipelines] == ["l1"]
    assert pipe.graph().pipelines == ("l1", "l1/l2", "l1/l2/l3")


def test_a_nested_pipeline_first_in_the_parent_receives_run_items():
    pipe = mg.Pipeline()
    with pipe.pipeline("inner"):
        proc(pipe, "a")
        proc(pipe, "b")
    proc(pipe, "save")
    graph = pipe.graph()
    assert graph.entries == ("inner/a",)
    assert graph.ports["inner"] == (("inner/a",), ("inner/b",))


def test_three_terminal_stages_of_a_nested_pipeline_drain_into_the_next_stage():
    pipe = mg.Pipeline()
    prod(pipe, "gen")
    with pipe.pipeline("inner"):
        proc(pipe, "split")
        with pipe.parallel():
            proc(pipe, "x")
            proc(pipe, "y")
            proc(pipe, "z")
    proc(pipe, "save")
    assert edges(pipe) == [
        ("gen", "inner/split", "nested"),
        ("inner/split", "inner/x", "parallel"),
        ("inner/split", "inner/y", "parallel"),
        ("inner/split", "inner/z", "parallel"),
        ("inner/x", "save", "nested"),
        ("inner/y", "save", "nested"),
        ("inner/z", "save", "nested"),
    ]
    assert pipe.graph().ports["inner"] == (("inner/split",), ("inner/x", "inner/y", "inner/z"))


def test_a_nested_pipeline_containing_a_producer_gets_no_default_incoming_edge():
    pipe = mg.Pipeline()
    prod(pipe, "gen")
    proc(pipe, "a")
    with pipe.pipeline("source"):
        prod(pipe, "more")
        proc(pipe, "b")
    proc(pipe, "save")
    assert edges(pipe) == [
        ("gen", "a", "default"),
        ("a", "save", "default"),
        ("source/more", "source/b", "default"),
        ("source/b", "save", "nested"),
    ]


def test_stage_to_pipeline_and_pipeline_to_stage():
    pipe = mg.Pipeline()
    prod(pipe, "gen", to="inner")  # a pipeline name as target: its entry stages
    with pipe.pipeline("inner", to="save"):  # as source: its terminal stages
        proc(pipe, "f")
        with pipe.parallel():
            proc(pipe, "g1")
            proc(pipe, "g2")
    proc(pipe, "mid")
    proc(pipe, "save")
    assert edges(pipe) == [
        ("gen", "inner/f", "explicit"),
        ("inner/f", "inner/g1", "parallel"),
        ("inner/f", "inner/g2", "parallel"),
        ("inner/g1", "save", "explicit"),
        ("inner/g2", "save", "explicit"),
        ("mid", "save", "default"),
    ]


def test_from_may_name_a_pipeline():
    pipe = mg.Pipeline()
    prod(pipe, "gen")
    with pipe.pipeline("inner"):
        proc(pipe, "f")
    proc(pipe, "save")
    proc(pipe, "audit", from_="inner")
    assert edges(pipe) == [
        ("gen", "inner/f", "nested"),
        ("inner/f", "save", "nested"),
        ("inner/f", "audit", "explicit"),
    ]


def test_add_with_to_and_from():
    sub = mg.Pipeline("sub")
    proc(sub, "f")
    pipe = mg.Pipeline()
    prod(pipe, "gen")
    proc(pipe, "a")
    pipe.add(sub, from_="gen", to="save")
    proc(pipe, "b")
    proc(pipe, "save")
    assert edges(pipe) == [
        ("gen", "a", "default"),
        ("gen", "sub/f", "explicit"),
        ("a", "b", "default"),
        ("sub/f", "save", "explicit"),
        ("b", "save", "default"),
    ]


def test_one_pipeline_to_many_and_many_to_one():
    pipe = mg.Pipeline()
    with pipe.pipeline("src", to=["t1", "t2"]):
        prod(pipe, "gen")
    with pipe.pipeline("t1", to="sink"):
        proc(pipe, "f1")
    with pipe.pipeline("t2", to="sink"):
        proc(pipe, "f2")
    proc(pipe, "sink")
    assert edges(pipe) == [
        ("src/gen", "t1/f1", "explicit"),
        ("src/gen", "t2/f2", "explicit"),
        ("t1/f1", "sink", "explicit"),
        ("t2/f2", "sink", "explicit"),
    ]


def test_two_source_pipelines_times_three_target_pipelines():
    pipe = mg.Pipeline()
    for source in ("s1", "s2"):
        with pipe.pipeline(source, to=["t1", "t2", "t3"]):
            prod(pipe, "gen")
    for target in ("t1", "t2", "t3"):
        with pipe.pipeline(target):
            proc(pipe, "work")
    # t1, t2, t3 share their upstreams, so they are fan-out siblings: no t1 -> t2 chaining
    assert edges(pipe) == [
        (f"{s}/gen", f"{t}/work", "explicit") for s in ("s1", "s2") for t in ("t1", "t2", "t3")
    ]
    assert pipe.graph().terminals == ("t1/work", "t2/work", "t3/work")


def test_pipelines_fanned_out_to_join_again_like_stages():
    pipe = mg.Pipeline()
    prod(pipe, "gen", to=["left", "right"])
    with pipe.pipeline("left"):
        proc(pipe, "l")
    with pipe.pipeline("right"):
        proc(pipe, "r")
    proc(pipe, "join")
    assert edges(pipe) == [
        ("gen", "left/l", "explicit"),
        ("gen", "right/r", "explicit"),
        ("left/l", "join", "nested"),
        ("right/r", "join", "nested"),
    ]


def test_entries_and_terminals_of_a_nested_pipeline_follow_its_own_edges():
    pipe = mg.Pipeline()
    prod(pipe, "gen")
    with pipe.pipeline("inner"):
        proc(pipe, "a", to="c")
        proc(pipe, "b")
        proc(pipe, "c")
    proc(pipe, "save")
    # inside `inner`: a -> c (explicit), b -> c (default); so a and b are its entries
    assert pipe.graph().ports["inner"] == (("inner/a", "inner/b"), ("inner/c",))
    assert edges(pipe) == [
        ("gen", "inner/a", "nested"),
        ("gen", "inner/b", "nested"),
        ("inner/a", "inner/c", "explicit"),
        ("inner/b", "inner/c", "default"),
        ("inner/c", "save", "nested"),
    ]


def test_a_pipeline_cannot_be_nested_twice_or_in_itself():
    sub = mg.Pipeline("sub")
    proc(sub, "f")
    first, second = mg.Pipeline("first"), mg.Pipeline("second")
    first.add(sub)
    with pytest.raises(mg.DefinitionError, match=r"pipeline 'sub' is already nested in 'first'"):
        second.add(sub)
    with pytest.raises(mg.DefinitionError, match=r"cannot nest pipeline 'first' inside itself"):
        sub.add(first)


def test_two_nested_pipelines_may_not_share_a_name():
    pipe = mg.Pipeline("etl")
    pipe.add(mg.Pipeline("clean"))
    with pytest.raises(mg.DuplicateStageError) as info:
        pipe.add(mg.Pipeline("clean"))
    assert str(info.value) == (
        "pipeline 'clean': pipeline 'etl' already has a pipeline of that name; "
        "give the nested pipeline another name."
    )


def test_rerouting_a_nested_pipeline_into_a_cycle_is_undone():
    pipe = mg.Pipeline()
    proc(pipe, "a")
    with pipe.pipeline("inner") as inner:
        proc(pipe, "f")
    with pytest.raises(mg.CycleError):
        with pipe.pipeline("inner", to="a"):  # a re-run cell that adds to="a"
            pass
    assert inner.to is None
    assert edges(pipe) == [("a", "inner/f", "nested")]


def test_rerunning_a_with_pipeline_cell_reuses_the_nested_pipeline():
    pipe = mg.Pipeline()
    prod(pipe, "gen")
    for _ in range(2):  # the same cell, run twice
        with pipe.pipeline("inner") as inner:

            @pipe.processor
            def f(item):
                return item

    assert pipe.pipelines == [inner]
    assert edges(pipe) == [("gen", "inner/f", "nested")]


# -- a nested pipeline without entry stages --------------------------------------------------


def test_routing_to_a_nested_pipeline_without_entry_stages_is_a_definition_error():
    pipe = mg.Pipeline("etl")
    prod(pipe, "gen", to="load")  # defining is fine: `load` may get an entry stage later
    with pipe.pipeline("load"):
        proc(pipe, "save", dynamic=True)
    with pytest.raises(mg.DefinitionError) as info:
        pipe.graph()
    message = str(info.value)
    assert message.startswith(
        "stage 'gen': routes to nested pipeline 'load', which has no entry stage"
    )
    assert "so they would be lost" in message
    assert "route to one of its stages by path (to='load/save')" in message
    assert "give it a stage that is not dynamic=True" in message
    with pytest.raises(mg.DefinitionError, match=r"no entry stage"):
        pipe.run(display="none")

    fixed = mg.Pipeline("etl")
    prod(fixed, "gen", to="load/save")
    with fixed.pipeline("load"):
        proc(fixed, "save", dynamic=True)
    assert edges(fixed) == [("gen", "load/save", "explicit")]
    assert fixed.run(display="none").outputs == [1]


def test_routing_to_an_empty_nested_pipeline_is_a_definition_error():
    pipe = mg.Pipeline("etl")
    with pipe.pipeline("load"):
        pass
    prod(pipe, "gen", to="load")
    with pytest.raises(mg.DefinitionError, match=r"'load', which has no entry stage .*it is empty"):
        _ = pipe.edges


def test_a_nested_pipeline_routed_to_one_without_entry_stages_is_named():
    pipe = mg.Pipeline("etl")
    prod(pipe, "gen")
    with pipe.pipeline("a", to="b"):
        proc(pipe, "f")
    with pipe.pipeline("b"):
        proc(pipe, "g", dynamic=True)
    with pytest.raises(mg.DefinitionError, match=r"^pipeline 'a': routes to nested pipeline 'b'"):
        pipe.graph()


# -- failed and re-run `with pipe.pipeline(...)` blocks ---------------------------------------


def test_a_failed_nested_pipeline_block_is_undone_and_the_corrected_cell_runs():
    pipe = mg.Pipeline("etl")
    prod(pipe, "gen")
    with pipe.pipeline("A", to="B"):
        proc(pipe, "a")
    with pytest.raises(mg.CycleError, match=r"cycle: A/a -> B/b -> A/a\."):
        with pipe.pipeline("B", to="A"):
            proc(pipe, "b")
    assert [p.name for p in pipe.pipelines] == ["A"]  # no half-registered B
    with pytest.raises(mg.UnknownStageError, match=r"no stage or pipeline named 'B'"):
        pipe.graph()  # as before the failed cell: A's to="B" is still a forward reference
    with pipe.pipeline("B"):  # the corrected cell
        proc(pipe, "b")
    assert edges(pipe) == [("gen", "A/a", "nested"), ("A/a", "B/b", "explicit")]
    assert pipe["B"].to is None


def test_rerunning_a_pipeline_block_sets_exactly_the_routing_it_gives():
    pipe = mg.Pipeline("etl")
    prod(pipe, "gen")
    proc(pipe, "x", dynamic=True)
    with pipe.pipeline("inner", to="x", workers=3) as inner:
        proc(pipe, "f")
    assert ("inner/f", "x", "explicit") in edges(pipe)
    with pipe.pipeline("inner"):  # the re-run cell without to= and workers=
        proc(pipe, "f")
    assert pipe["inner"] is inner
    assert (inner.to, inner.from_, inner.options) == (None, None, {})
    assert edges(pipe) == [("gen", "inner/f", "nested")]
    assert pipe.graph().stages["inner/f"].options["workers"] == 1


def test_a_rerun_pipeline_block_that_fails_leaves_the_old_definition():
    pipe = mg.Pipeline("etl")
    prod(pipe, "gen")
    with pipe.pipeline("inner", workers=2) as inner:
        f = proc(pipe, "f")
    with pytest.raises(mg.DefinitionError, match=r"takes no item"):
        with pipe.pipeline("inner", to="gen2", workers=5):
            proc(pipe, "f")  # replaced...
            proc(pipe, "g")
            pipe.producer(lambda item: item, name="bad")  # ...then the block fails
    assert pipe["inner"] is inner and inner.parent is pipe
    assert inner.stages == [f]
    assert (inner.to, inner.options) == (None, {"workers": 2})
    assert edges(pipe) == [("gen", "inner/f", "nested")]


def test_a_block_failing_with_any_error_removes_the_pipeline_it_created():
    pipe = mg.Pipeline("etl")
    prod(pipe, "gen")
    with pytest.raises(ZeroDivisionError):
        with pipe.pipeline("inner") as inner:
            proc(pipe, "f")
            with pipe.pipeline("deeper"):
                proc(pipe, "g")
            raise ZeroDivisionError("a bug in the cell")
    assert pipe.pipelines == [] and inner.parent is None
    assert edges(pipe) == []
    proc(pipe, "f")  # `pipe` defines into itself again
    assert edges(pipe) == [("gen", "f", "default")]
