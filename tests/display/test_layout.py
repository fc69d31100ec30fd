"""The DAG layout: properties over random DAGs, small exact cases, and the graph trait."""

from __future__ import annotations

import json
import subprocess
import sys
from itertools import combinations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import minigun_nb as mg
from minigun_nb.display.layout import graph_trait, layout

pytestmark = pytest.mark.timeout(120)

SETTINGS = settings(max_examples=100, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow])


@st.composite
def dags(draw, max_nodes=30):
    """A random DAG: nodes given in a shuffled order, edges from a hidden topological order."""
    n = draw(st.integers(0, max_nodes))
    names = [f"n{i}" for i in range(n)]
    pairs = list(combinations(range(n), 2))
    chosen = draw(st.lists(st.sampled_from(pairs), max_size=min(len(pairs), 45),
                           unique=True)) if pairs else []
    edges = [(names[a], names[b]) for a, b in chosen]
    given_order = draw(st.permutations(names))
    return list(given_order), edges


@st.composite
def thin_dags(draw):
    """A long chain with a few extra forward edges: often laid out top to bottom."""
    n = draw(st.integers(7, 25))
    names = [f"s{i}" for i in range(n)]
    edges = list(zip(names, names[1:], strict=False))
    extra = draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=3))
    edges += [(names[a], names[b]) for a, b in extra if a + 1 < b]
    return names, list(dict.fromkeys(edges))


GRAPHS = st.one_of(dags(), thin_dags())


def _segments(lay, edge):
    pts = lay.edge_points[edge]
    return list(zip(pts, pts[1:], strict=False))


def _orient(a, b, c):
    v = (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])
    return (v > 1e-9) - (v < -1e-9)


def _cross(s, t):
    """True when segments s and t cross properly (touching at an end does not count)."""
    (a, b), (c, d) = s, t
    return (_orient(a, b, c) * _orient(a, b, d) < 0) and (_orient(c, d, a) * _orient(c, d, b) < 0)


def geometric_crossings(lay):
    edges = list(lay.edge_points)
    total = 0
    for e, f in combinations(edges, 2):
        total += sum(_cross(s, t) for s in _segments(lay, e) for t in _segments(lay, f))
    return total


def _on_border(point, centre, w, h):
    dx, dy = abs(point[0] - centre[0]), abs(point[1] - centre[1])
    return (abs(dx - w / 2) < 0.11 and dy <= h / 2 + 0.11) or (
        abs(dy - h / 2) < 0.11 and dx <= w / 2 + 0.11)


def _segment_enters_box(a, b, centre, w, h):
    """True when segment a-b passes through the inside of the box (sampled finely)."""
    for k in range(1, 200):
        t = k / 200
        x, y = a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t
        if abs(x - centre[0]) < w / 2 - 0.5 and abs(y - centre[1]) < h / 2 - 0.5:
            return True
    return False


@SETTINGS
@given(GRAPHS)
def test_boxes_never_overlap_and_fit_in_the_drawing(graph):
    nodes, edges = graph
    lay = layout(nodes, edges)
    w, h = lay.node_width, lay.node_height
    assert set(lay.positions) == set(nodes)
    assert sorted(n for layer in lay.layers for n in layer) == sorted(nodes)
    for a, b in combinations(nodes, 2):
        (xa, ya), (xb, yb) = lay.positions[a], lay.positions[b]
        assert abs(xa - xb) >= w or abs(ya - yb) >= h, (a, b)
    for x, y in lay.positions.values():
        assert w / 2 <= x <= lay.width - w / 2 and h / 2 <= y <= lay.height - h / 2
    for pts in lay.edge_points.values():
        assert all(0 <= x <= lay.width and 0 <= y <= lay.height for x, y in pts)


@SETTINGS
@given(GRAPHS)
def test_every_edge_goes_forward_from_border_to_border(graph):
    nodes, edges = graph
    lay = layout(nodes, edges)
    w, h = lay.node_width, lay.node_height
    axis = 0 if lay.direction == "LR" else 1
    assert lay.reversed_edges == ()
    for s, t in edges:
        assert lay.layer_of(s) < lay.layer_of(t)
        pts = lay.edge_points[s, t]
        assert len(pts) == 2 * (lay.layer_of(t) - lay.layer_of(s))  # bends at each dummy
        along = [p[axis] for p in pts]
        assert along == sorted(along) and len(set(along)) == len(along)
        assert _on_border(pts[0], lay.positions[s], w, h)
        assert _on_border(pts[-1], lay.positions[t], w, h)
        assert pts[0][axis] == lay.positions[s][axis] + (w if axis == 0 else h) / 2
        assert pts[-1][axis] == lay.positions[t][axis] - (w if axis == 0 else h) / 2


@SETTINGS
@given(dags(max_nodes=18))
def test_edges_pass_around_the_boxes_they_do_not_join(graph):
    nodes, edges = graph
    lay = layout(nodes, edges)
    for s, t in edges:
        for a, b in _segments(lay, (s, t)):
            for n in nodes:
                if n not in (s, t):
                    assert not _segment_enters_box(a, b, lay.positions[n], lay.node_width,
                                                   lay.node_height), ((s, t), n)


@SETTINGS
@given(dags(max_nodes=20))
def test_sweeps_never_add_crossings_and_the_count_is_the_drawn_one(graph):
    nodes, edges = graph
    lay = layout(nodes, edges)
    initial = layout(nodes, edges, iterations=0)
    assert lay.crossings == geometric_crossings(lay)
    assert initial.crossings == geometric_crossings(initial)
    assert lay.crossings <= initial.crossings


@SETTINGS
@given(dags())
def test_layout_is_deterministic(graph):
    nodes, edges = graph
    assert layout(nodes, edges) == layout(list(nodes), list(edges))


@st.composite
def digraphs(draw, max_nodes=16):
    """Any directed graph: cycles, 2-cycles, self-loops and repeated edges included."""
    n = draw(st.integers(1, max_nodes))
    names = [f"n{i}" for i in range(n)]
    edges = draw(st.lists(st.tuples(st.sampled_from(names), st.sampled_from(names)),
                          max_size=40))
    return names, edges


@SETTINGS
@given(digraphs())
def test_cycles_never_hang_and_still_give_a_clean_drawing(graph):
    nodes, edges = graph
    lay = layout(nodes, edges)
    w, h = lay.node_width, lay.node_height
    for a, b in combinations(nodes, 2):
        (xa, ya), (xb, yb) = lay.positions[a], lay.positions[b]
        assert abs(xa - xb) >= w or abs(ya - yb) >= h
    assert set(lay.edge_points) == set(edges)
    for s, t in edges:
        pts = lay.edge_points[s, t]
        assert _on_border(pts[0], lay.positions[s], w, h)
        assert _on_border(pts[-1], lay.positions[t], w, h)
        assert all(0 <= x <= lay.width and 0 <= y <= lay.height for x, y in pts)
        if s != t and (s, t) not in lay.reversed_edges:
            assert lay.layer_of(s) < lay.layer_of(t)
    assert layout(nodes, edges) == lay


def test_same_layout_under_another_hash_seed():
    code = (
        "import json\nfrom minigun_nb.display.layout import layout\n"
        "nodes = ['gen', 'parse', 'x', 'y', 'z', 'merge', 'save', 'alone']\n"
        "edges = [('gen', 'parse'), ('parse', 'x'), ('parse', 'y'), ('parse', 'z'),\n"
        "         ('x', 'merge'), ('y', 'merge'), ('z', 'save'), ('merge', 'save'),\n"
        "         ('gen', 'save')]\n"
        "lay = layout(nodes, edges)\n"
        "print(json.dumps([lay.layers, sorted(lay.positions.items()),\n"
        "                  sorted((list(k), v) for k, v in lay.edge_points.items())]))\n"
    )
    outs = {
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                       timeout=60, env={"PYTHONHASHSEED": seed, "PATH": ""}).stdout
        for seed in ("0", "1", "12345")
    }
    assert len(outs) == 1


def test_a_chain_is_one_straight_row():
    names = ["a", "b", "c", "d"]
    lay = layout(names, [("a", "b"), ("b", "c"), ("c", "d")])
    assert lay.direction == "LR"
    assert lay.layers == (("a",), ("b",), ("c",), ("d",))
    assert len({y for _, y in lay.positions.values()}) == 1
    xs = [lay.positions[n][0] for n in names]
    assert xs == sorted(xs)
    assert lay.edge_points["a", "b"] == ((lay.positions["a"][0] + 85, lay.positions["a"][1]),
                                         (lay.positions["b"][0] - 85, lay.positions["b"][1]))


def test_a_diamond_is_symmetric():
    lay = layout(["g", "a", "b", "c"], [("g", "a"), ("g", "b"), ("a", "c"), ("b", "c")])
    assert lay.layers == (("g",), ("a", "b"), ("c",))
    (_, yg), (_, ya), (_, yb), (_, yc) = (lay.positions[n] for n in "gabc")
    assert yg == yc == (ya + yb) / 2
    assert lay.crossings == 0
    # two edges leave g at two different points of its border, in the order of their targets
    assert lay.edge_points["g", "a"][0][1] < lay.edge_points["g", "b"][0][1]


def test_fan_out_and_fan_in_centre_on_the_hub():
    mids = [f"m{i}" for i in range(5)]
    edges = [("src", m) for m in mids] + [(m, "sink") for m in mids]
    lay = layout(["src", *mids, "sink"], edges)
    assert lay.layers == (("src",), tuple(mids), ("sink",))
    ys = [lay.positions[m][1] for m in mids]
    assert lay.positions["src"][1] == lay.positions["sink"][1] == pytest.approx(sum(ys) / 5)
    starts = [lay.edge_points["src", m][0] for m in mids]
    assert len(set(starts)) == 5  # one port per edge


def test_a_long_edge_bends_around_the_chain_it_skips():
    lay = layout(["a", "b", "c", "d"], [("a", "b"), ("b", "c"), ("c", "d"), ("a", "d")])
    assert len({lay.positions[n][1] for n in "abcd"}) == 1  # the chain stays straight
    pts = lay.edge_points["a", "d"]
    assert len(pts) == 6  # out of a, through the columns of b and c, into d
    assert len({y for _, y in pts}) > 1  # it bends
    ya = lay.positions["a"][1]
    assert all(abs(y - ya) >= lay.node_height / 2 for _, y in pts[1:-1])  # clear of b and c


def test_a_second_producer_sits_next_to_the_stage_it_feeds():
    lay = layout(["p1", "a", "b", "p2", "c"], [("p1", "a"), ("a", "b"), ("b", "c"),
                                                ("p2", "c")])
    assert lay.layer_of("p2") == lay.layer_of("c") - 1


def test_a_twenty_stage_chain_goes_top_to_bottom():
    names = [f"s{i}" for i in range(20)]
    lay = layout(names, list(zip(names, names[1:], strict=False)))
    assert lay.direction == "TB"
    assert len({x for x, _ in lay.positions.values()}) == 1
    ys = [lay.positions[n][1] for n in names]
    assert ys == sorted(ys)
    assert lay.height > lay.width
    s0, s1 = lay.positions["s0"], lay.positions["s1"]
    assert lay.edge_points["s0", "s1"] == ((s0[0], s0[1] + 32), (s1[0], s1[1] - 32))
    # six layers, or a wide one, stay left to right
    assert layout(names[:6], list(zip(names, names[1:6], strict=False))).direction == "LR"
    wide = list(zip(names, names[1:], strict=False)) + [("s0", "x"), ("s0", "y")]
    assert layout([*names, "x", "y"], wide).direction == "LR"
    assert layout(names[:3], [], direction="TB").direction == "TB"


def test_isolated_nodes_get_a_place():
    lay = layout(["a", "b", "lonely", "c"], [("a", "b")])
    assert set(lay.positions) == {"a", "b", "lonely", "c"}
    assert layout([], []).positions == {} and layout([], []).layers == ()


def test_cycles_and_self_loops_are_broken_not_looped_on():
    lay = layout(["a", "b", "c"], [("a", "b"), ("b", "c"), ("c", "a"), ("b", "b")])
    assert lay.reversed_edges == (("c", "a"),)
    assert lay.layers == (("a",), ("b",), ("c",))
    w, h = lay.node_width, lay.node_height
    back = lay.edge_points["c", "a"]
    assert _on_border(back[0], lay.positions["c"], w, h)
    assert _on_border(back[-1], lay.positions["a"], w, h)
    loop = lay.edge_points["b", "b"]
    assert _on_border(loop[0], lay.positions["b"], w, h)
    assert _on_border(loop[-1], lay.positions["b"], w, h)
    assert all(p[1] >= 0 for p in loop)
    names = [f"s{i}" for i in range(10)]
    tall = layout(names, [*zip(names, names[1:], strict=False), ("s3", "s3")])
    assert tall.direction == "TB"
    loop = tall.edge_points["s3", "s3"]
    assert _on_border(loop[0], tall.positions["s3"], w, h)
    assert _on_border(loop[-1], tall.positions["s3"], w, h)
    assert all(x <= tall.width for x, _ in loop)
    two = layout(["x", "y"], [("x", "y"), ("y", "x")])
    assert two.reversed_edges == (("y", "x"),) and two.layer_of("y") == 1


def test_bad_input_names_the_problem():
    with pytest.raises(ValueError, match="unknown node 'zz'; known nodes: 'a'"):
        layout(["a"], [("a", "zz")])
    with pytest.raises(ValueError, match="node 'a' is given twice"):
        layout(["a", "a"], [])
    with pytest.raises(ValueError, match="direction='up' is not valid"):
        layout(["a"], [], direction="up")


def _etl() -> mg.Pipeline:
    pipe = mg.Pipeline("etl")

    @pipe.producer
    def gen():
        yield from range(3)

    @pipe.processor(workers=4, to=["a", "inner"])
    def parse(x):
        return x

    @pipe.processor(routes=["audit"])
    def a(x):
        return x

    with pipe.pipeline("inner"):
        @pipe.processor(backend="process", workers=2)
        def b(x):
            return x

    @pipe.consumer(from_=["a", "inner"])
    def save(x):
        return None

    @pipe.consumer(dynamic=True)
    def audit(x):
        return None

    return pipe


def test_graph_trait_has_the_display_contract_shape():
    trait = graph_trait(_etl().graph())
    assert json.loads(json.dumps(trait, allow_nan=False)) == trait
    assert set(trait) == {"direction", "width", "height", "node_width", "node_height",
                          "nodes", "edges"}
    nodes = {n["id"]: n for n in trait["nodes"]}
    assert list(nodes) == ["gen", "parse", "a", "inner/b", "save", "audit"]
    assert nodes["inner/b"] == {"id": "inner/b", "label": "b", "kind": "processor",
                                "backend": "process", "workers": 2,
                                "x": nodes["inner/b"]["x"], "y": nodes["inner/b"]["y"]}
    assert nodes["parse"]["workers"] == 4 and nodes["gen"]["kind"] == "producer"
    kinds = {(e["source"], e["target"]): e["kind"] for e in trait["edges"]}
    assert kinds[("gen", "parse")] == "default"
    assert kinds[("parse", "inner/b")] == "explicit"
    assert kinds[("a", "audit")] == "routes"  # the dynamic stage is drawn where it is fed
    for e in trait["edges"]:
        assert len(e["points"]) >= 2 and all(len(p) == 2 for p in e["points"])
    assert nodes["audit"]["x"] > nodes["a"]["x"]
