"""SPEC 2.3 and 12: ``parallel()`` and ``sequential()`` blocks, as exact resolved edges."""

from __future__ import annotations

import pytest

import minigun_nb as mg

from ._helpers import edges, proc, prod

pytestmark = pytest.mark.timeout(30)



def test_parallel_stages_consume_from_the_stage_before_and_feed_the_stage_after():
    pipe = mg.Pipeline()
    prod(pipe, "gen")
    with pipe.parallel():
        proc(pipe, "a")
        proc(pipe, "b")
        proc(pipe, "c")
    proc(pipe, "join")
    assert edges(pipe) == [
        ("gen", "a", "parallel"),
        ("gen", "b", "parallel"),
        ("gen", "c", "parallel"),
        ("a", "join", "parallel"),
        ("b", "join", "parallel"),
        ("c", "join", "parallel"),
    ]


def test_parallel_stages_do_not_feed_each_other():
    pipe = mg.Pipeline()
    prod(pipe, "gen")
    with pipe.parallel():
        proc(pipe, "a")
        proc(pipe, "b")
    pairs = {(s, t) for s, t, _ in edges(pipe)}
    assert ("a", "b") not in pairs and ("b", "a") not in pairs
    assert pipe.graph().terminals == ("a", "b")


def test_a_diamond_via_a_parallel_block():
    pipe = mg.Pipeline()
    prod(pipe, "g")
    with pipe.parallel():
        proc(pipe, "a")
        proc(pipe, "b")
    proc(pipe, "c")
    assert edges(pipe) == [
        ("g", "a", "parallel"),
        ("g", "b", "parallel"),
        ("a", "c", "parallel"),
        ("b", "c", "parallel"),
    ]


def test_sequential_inside_parallel_is_one_branch():
    pipe = mg.Pipeline()
    prod(pipe, "gen")
    with pipe.parallel():
        proc(pipe, "a")
        with pipe.sequential():
            proc(pipe, "b1")
            proc(pipe, "b2")
    proc(pipe, "join")
    assert edges(pipe) == [
        ("gen", "a", "parallel"),
        ("gen", "b1", "parallel"),
        ("a", "join", "parallel"),
        ("b1", "b2", "default"),
        ("b2", "join", "parallel"),
    ]


def test_two_parallel_blocks_in_a_row_connect_every_end_to_every_start():
    pipe = mg.Pipeline()
    prod(pipe, "gen")
    with pipe.parallel():
        proc(pipe, "a")
        with pipe.sequential():
            proc(pipe, "b1")
            proc(pipe, "b2")
    with pipe.parallel():
        proc(pipe, "c")
        proc(pipe, "d")
    proc(pipe, "end")
    assert edges(pipe) == [
        ("gen", "a", "parallel"),
        ("gen", "b1", "parallel"),
        ("a", "c", "parallel"),
        ("a", "d", "parallel"),
        ("b1", "b2", "default"),
        ("b2", "c", "parallel"),
        ("b2", "d", "parallel"),
        ("c", "end", "parallel"),
        ("d", "end", "parallel"),
    ]


def test_producers_in_a_parallel_block_all_feed_the_stage_after():
    pipe = mg.Pipeline()
    with pipe.parallel():
        prod(pipe, "p1")
        prod(pipe, "p2")
    proc(pipe, "merge")
    assert edges(pipe) == [("p1", "merge", "parallel"), ("p2", "merge", "parallel")]


def test_a_branch_with_to_leaves_the_block_by_its_own_edge():
    pipe = mg.Pipeline()
    prod(pipe, "gen")
    with pipe.parallel():
        proc(pipe, "a")
        proc(pipe, "b", to="side")
    proc(pipe, "join")
    proc(pipe, "side", dynamic=True)
    assert edges(pipe) == [
        ("gen", "a", "parallel"),
        ("gen", "b", "parallel"),
        ("a", "join", "parallel"),
        ("b", "side", "explicit"),
    ]


def test_an_empty_block_leaves_no_trace():
    pipe = mg.Pipeline()
    prod(pipe, "gen")
    with pipe.parallel():
        pass
    proc(pipe, "a")
    assert edges(pipe) == [("gen", "a", "default")]


def test_a_block_that_fails_is_undone_as_a_whole():
    pipe = mg.Pipeline()
    prod(pipe, "gen")
    with pytest.raises(mg.DefinitionError, match=r"takes no parameter"):
        with pipe.parallel():
            proc(pipe, "a")
            with pipe.sequential():
                proc(pipe, "b")
            pipe.processor(lambda: 1, name="bad")
    assert [s.name for s in pipe.stages] == ["gen"]
    with pipe.parallel():  # the corrected cell
        proc(pipe, "a")
        proc(pipe, "b")
    assert edges(pipe) == [("gen", "a", "parallel"), ("gen", "b", "parallel")]


def test_a_backend_block_that_fails_is_undone_and_a_rerun_stage_is_put_back():
    pipe = mg.Pipeline()
    prod(pipe, "gen")
    a = proc(pipe, "a")
    with pytest.raises(ZeroDivisionError):
        with pipe.threads(4):
            proc(pipe, "a")  # a re-run of `a`, replaced in place...
            proc(pipe, "b")
            raise ZeroDivisionError("...then the cell fails")
    assert pipe.stages[1] is a and [s.name for s in pipe.stages] == ["gen", "a"]
    assert "workers" not in a.options
    proc(pipe, "b")
    assert pipe["b"].options == {}  # the block's workers=4 no longer applies
