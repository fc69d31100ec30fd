"""SPEC 2.1, 2.2, 2.4, 2.5 and 12: how stages connect, shown as the exact resolved edges.

Each test builds a small pipeline and compares ``pipe.edges`` with the list of
``(source, target, kind)`` it must resolve to.
"""

from __future__ import annotations

import pytest

import minigun_nb as mg

from ._helpers import edges, proc, prod

pytestmark = pytest.mark.timeout(30)



# -- 2.1 sequential by default -------------------------------------------------------------


def test_stages_chain_in_definition_order():
    pipe = mg.Pipeline("etl")

    @pipe.producer
    def paths():
        yield from ["a.csv", "b.csv"]

    @pipe.processor(workers=8)
    def load(path):
        return path.upper()

    @pipe.consumer
    def save(frame):
        pass

    assert edges(pipe) == [("paths", "load", "default"), ("load", "save", "default")]
    assert all(isinstance(e, mg.Edge) for e in pipe.edges)
    assert pipe.edges[0].source == "paths" and pipe.edges[0].kind == "default"


def test_a_consumer_still_chains_to_the_next_stage():
    pipe = mg.Pipeline()
    prod(pipe, "gen")
    pipe.consumer(lambda item: item, name="log")
    proc(pipe, "after")
    assert edges(pipe) == [("gen", "log", "default"), ("log", "after", "default")]


def test_a_producer_feeds_the_next_non_producer_stage():
    pipe = mg.Pipeline()
    prod(pipe, "first")
    prod(pipe, "second")
    proc(pipe, "work")
    assert ("first", "second", "default") not in edges(pipe)
    assert edges(pipe) == [("first", "work", "default"), ("second", "work", "default")]


def test_three_producers_in_a_row_all_feed_one_processor():
    pipe = mg.Pipeline()
    for name in ("p1", "p2", "p3"):
        prod(pipe, name)
    proc(pipe, "merge")
    assert edges(pipe) == [
        ("p1", "merge", "default"),
        ("p2", "merge", "default"),
        ("p3", "merge", "default"),
    ]
    graph = pipe.graph()
    assert graph.upstreams["merge"] == ("p1", "p2", "p3")
    assert graph.producers == ("p1", "p2", "p3")


def test_a_producer_interleaved_with_processors():
    pipe = mg.Pipeline()
    prod(pipe, "p1")
    proc(pipe, "a")
    prod(pipe, "p2")
    proc(pipe, "b")
    assert edges(pipe) == [("p1", "a", "default"), ("a", "b", "default"), ("p2", "b", "default")]


def test_a_producer_with_no_downstream_is_allowed_and_terminal():
    pipe = mg.Pipeline()
    prod(pipe, "alone")
    assert edges(pipe) == []
    assert pipe.graph().terminals == ("alone",)
    assert pipe.graph().entries == ()


def test_a_pipeline_without_producer_starts_with_an_entry_stage():
    pipe = mg.Pipeline()
    proc(pipe, "a")
    proc(pipe, "b")
    graph = pipe.graph()
    assert edges(pipe) == [("a", "b", "default")]
    assert graph.entries == ("a",)
    assert graph.terminals == ("b",)


# -- 2.2 explicit edges ----------------------------------------------------------------------


def test_to_replaces_the_default_outgoing_edge():
    pipe = mg.Pipeline()
    prod(pipe, "gen", to="b")
    proc(pipe, "a")
    proc(pipe, "b")
    assert edges(pipe) == [("gen", "b", "explicit"), ("a", "b", "default")]
    assert pipe.graph().entries == ("a",)  # nothing feeds `a` any more: it takes run(items=)


def test_from_replaces_the_default_incoming_edge():
    # SPEC 12: `gen; a; b(from_="gen")` gives gen->a, gen->b; `a` is terminal.
    pipe = mg.Pipeline()
    prod(pipe, "gen")
    proc(pipe, "a")
    proc(pipe, "b", from_="gen")
    assert edges(pipe) == [("gen", "a", "default"), ("gen", "b", "explicit")]
    assert pipe.graph().terminals == ("a", "b")


def test_from_accepts_several_upstreams():
    pipe = mg.Pipeline()
    prod(pipe, "x", to="merge")
    prod(pipe, "y", to="merge")
    proc(pipe, "other")
    proc(pipe, "merge", from_=["x", "y"])
    assert edges(pipe) == [("x", "merge", "explicit"), ("y", "merge", "explicit")]


def test_to_may_name_a_stage_defined_later():
    pipe = mg.Pipeline()
    prod(pipe, "gen", to="save")  # `save` does not exist yet
    proc(pipe, "skipped")
    proc(pipe, "save")
    assert edges(pipe) == [("gen", "save", "explicit"), ("skipped", "save", "default")]


def test_an_unknown_name_fails_at_resolution_with_the_known_names():
    pipe = mg.Pipeline("etl")
    prod(pipe, "gen", to="sav")  # accepted while defining: it may be defined later
    proc(pipe, "save")
    with pytest.raises(mg.UnknownStageError) as info:
        pipe.graph()
    message = str(info.value)
    assert "stage 'gen'" in message
    assert "'sav'" in message
    assert "known: 'gen', 'save'" in message


def test_to_a_list_fans_out_and_the_next_stage_joins_the_diamond():
    # g(to=["a","b"]); a; b; c  -> a and b share an upstream, so a does not chain into b
    pipe = mg.Pipeline()
    prod(pipe, "g", to=["a", "b"])
    proc(pipe, "a")
    proc(pipe, "b")
    proc(pipe, "c")
    assert edges(pipe) == [
        ("g", "a", "explicit"),
        ("g", "b", "explicit"),
        ("a", "c", "default"),
        ("b", "c", "default"),
    ]


def test_diamond_with_from():
    pipe = mg.Pipeline()
    prod(pipe, "g")
    proc(pipe, "a")
    proc(pipe, "b", from_="g")
    proc(pipe, "c", from_=["a", "b"])
    assert edges(pipe) == [
        ("g", "a", "default"),
        ("g", "b", "explicit"),
        ("a", "c", "explicit"),
        ("b", "c", "explicit"),
    ]


def test_an_edge_given_twice_appears_once():
    pipe = mg.Pipeline()
    prod(pipe, "gen", to="save")
    proc(pipe, "save", from_="gen")
    assert edges(pipe) == [("gen", "save", "explicit")]


# -- 2.4 fan-out policies are recorded on the source stage --------------------------------


def pick_a(item):
    return "a"


@pytest.mark.parametrize(
    "route", ["broadcast", "round_robin", "least_loaded", {"a": 3, "b": 1}, pick_a]
)
def test_route_policy_is_recorded(route):
    pipe = mg.Pipeline()
    prod(pipe, "gen", to=["a", "b"], route=route)
    proc(pipe, "a")
    proc(pipe, "b")
    graph = pipe.graph()
    assert graph.stages["gen"].options["route"] == route
    assert graph.downstreams["gen"] == ("a", "b")


def test_fan_out_broadcasts_by_default_without_copying():
    pipe = mg.Pipeline()
    prod(pipe, "gen", to=["a", "b"])
    proc(pipe, "a")
    proc(pipe, "b")
    options = pipe.graph().stages["gen"].options
    assert options["route"] == "broadcast"
    assert options["copy"] is False


def test_weights_must_name_downstream_stages():
    pipe = mg.Pipeline()
    prod(pipe, "gen", to=["a", "b"], route={"a": 1, "c": 2})
    proc(pipe, "a")
    proc(pipe, "b")
    proc(pipe, "c")
    with pytest.raises(mg.DefinitionError) as info:
        pipe.graph()
    message = str(info.value)
    assert "stage 'gen'" in message
    assert "route weight 'c' is not one of its downstream stages ('a', 'b')" in message
    assert "add 'c' to its to=" in message


def test_weights_naming_an_unknown_stage_fail():
    pipe = mg.Pipeline()
    prod(pipe, "gen", to=["a", "b"], route={"a": 1, "zz": 2})
    proc(pipe, "a")
    proc(pipe, "b")
    with pytest.raises(mg.UnknownStageError, match=r"stage 'gen': no stage or pipeline named 'zz'"):
        pipe.graph()


def test_weights_may_name_a_nested_pipeline():
    pipe = mg.Pipeline()
    prod(pipe, "gen", to=["fast", "slow"], route={"fast": 3, "slow": 1})
    with pipe.pipeline("fast"):
        proc(pipe, "f")
    with pipe.pipeline("slow"):
        proc(pipe, "s")
    assert pipe.graph().downstreams["gen"] == ("fast/f", "slow/s")


def test_bad_route_values_are_definition_errors():
    with pytest.raises(mg.DefinitionError, match=r"route='random' is not valid"):
        mg.processor(pick_a, route="random")
    with pytest.raises(mg.DefinitionError, match=r"route=\{'a': 0\} is not valid"):
        mg.processor(pick_a, route={"a": 0})


# -- 2.5 fan-in --------------------------------------------------------------------------------


def test_fan_in_several_upstreams_share_one_stage():
    pipe = mg.Pipeline()
    prod(pipe, "gen", to=["a", "b"])
    proc(pipe, "a", to="join")
    proc(pipe, "b", to="join")
    proc(pipe, "join")
    assert edges(pipe) == [
        ("gen", "a", "explicit"),
        ("gen", "b", "explicit"),
        ("a", "join", "explicit"),
        ("b", "join", "explicit"),
    ]
    assert pipe.graph().upstreams["join"] == ("a", "b")
    assert pipe.graph().senders["join"] == ("a", "b")
