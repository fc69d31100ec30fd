"""Laying out a pipeline's DAG: layers, order, node centres and edge polylines.

A pure function (no I/O, no UI import) in the Sugiyama style, shared by the live widget,
``pipe.to_svg()``, ``result.to_html()`` and the terminal HUD:

1. *Cycles* are broken first (the resolver rejects them, but ``routes=`` edges may point
   back): edges are taken in the order given and one that would close a cycle is laid out
   reversed (its polyline still runs from its source to its target). Self-loops take no part
   in layering and are drawn as a small loop on their box.
2. *Layers*: longest path from the sources, then each source moves next to its nearest
   successor, so a second producer feeding a late stage does not drag a long edge along.
3. *Dummy nodes* on every edge that spans more than one layer, so a long edge bends around
   the boxes in between instead of crossing them.
4. *Order*: barycenter sweeps, alternately down and up, each followed by adjacent-swap
   transposition; the ordering with the fewest crossings seen (the initial one included) wins.
5. *Coordinates*: layers at fixed steps along the flow; across it, each layer is placed as
   close as possible to the mean of its neighbours (a weighted isotonic regression, so boxes
   keep their order and their gaps), sweeping down, up and both ways.

Direction: left-to-right, unless the graph is long and thin: more than 6 layers with at most
2 slots (stages or long edges passing through) in every layer is laid out top-to-bottom, so a
20-stage chain does not become a 5000 px wide strip in a notebook.

Everything depends only on the order of the given nodes and edges (no hashing), so the same
input gives the same output in every process.

Examples
--------
>>> lay = layout(["gen", "a", "b", "save"],
...              [("gen", "a"), ("gen", "b"), ("a", "save"), ("b", "save")])
>>> lay.direction, lay.layers
('LR', (('gen',), ('a', 'b'), ('save',)))
>>> lay.positions["a"][0] < lay.positions["save"][0]
True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import _sugiyama as _s

if TYPE_CHECKING:
    from ..core.graph import Graph

__all__ = ["Layout", "graph_trait", "layout", "trait_from"]

Point = tuple[float, float]

#: long and thin: more layers than this, and no more than THIN_SLOTS slots in any layer
TALL_LAYERS = 6
THIN_SLOTS = 2
_SWEEPS = 16  # barycenter iterations (down/up alternate); stops early when nothing improves
_LOOP = 12.0  # how far a self-loop sticks out of its box


@dataclass(frozen=True)
class Layout:
    """Where every node and edge of a DAG goes.

    Attributes
    ----------
    direction : str
        ``"LR"`` (layers left to right) or ``"TB"`` (top to bottom).
    layers : tuple of tuple of str
        The nodes of each layer in drawing order (dummy nodes excluded).
    positions : dict
        Node id -> ``(x, y)``, the centre of its box in px.
    edge_points : dict
        ``(source, target)`` -> polyline ``((x, y), ...)`` from the source box's border to the
        target box's border, bending where a long edge passes a layer.
    width, height : float
        The drawing's size in px (margins included).
    node_width, node_height : float
        The size of every box.
    crossings : int
        Edge crossings of the chosen order.
    reversed_edges : tuple
        Edges laid out against the flow to break a cycle (empty for a DAG).

    Examples
    --------
    >>> lay = layout(["a", "b"], [("a", "b")])
    >>> lay.layer_of("b"), lay.edge_points["a", "b"]
    (1, ((190.0, 52.0), (254.0, 52.0)))
    """

    direction: str
    layers: tuple[tuple[str, ...], ...]
    positions: dict[str, Point]
    edge_points: dict[tuple[str, str], tuple[Point, ...]]
    width: float
    height: float
    node_width: float
    node_height: float
    crossings: int = 0
    reversed_edges: tuple[tuple[str, str], ...] = ()
    _layer_index: dict[str, int] = field(default_factory=dict, repr=False, compare=False)

    def layer_of(self, node: str) -> int:
        """The index of the layer holding ``node``."""
        if not self._layer_index:
            for i, layer in enumerate(self.layers):
                for n in layer:
                    self._layer_index[n] = i
        return self._layer_index[node]


def layout(
    nodes: Sequence[str], edges: Sequence[tuple[str, str]], *, node_width: float = 170,
    node_height: float = 64, direction: str = "auto", layer_gap: float | None = None,
    node_gap: float | None = None, margin: float = 20, iterations: int = _SWEEPS,
) -> Layout:
    """Lay out a directed graph (see the module docstring for the algorithm).

    Parameters
    ----------
    nodes : sequence of str
        Node ids, unique; their order breaks every tie.
    edges : sequence of (str, str)
        ``(source, target)`` pairs naming known nodes; a repeated pair counts once.
    node_width, node_height : float
        Box size in px.
    direction : {"auto", "LR", "TB"}
        ``"auto"`` picks TB for long and thin graphs (more than 6 layers, at most 2 slots
        in each), else LR.
    layer_gap, node_gap : float, optional
        Space between layers / between boxes of one layer (defaults depend on direction).
    margin : float
        Space around the drawing.
    iterations : int
        Barycenter sweeps; 0 keeps the initial order (node order, long edges after).

    Returns
    -------
    Layout

    Raises
    ------
    ValueError
        A node given twice, an edge naming an unknown node, or a bad ``direction``.

    Examples
    --------
    >>> layout([f"s{i}" for i in range(20)],
    ...        [(f"s{i}", f"s{i + 1}") for i in range(19)]).direction
    'TB'
    """
    if direction not in ("auto", "LR", "TB"):
        raise ValueError(f"layout direction={direction!r} is not valid; use 'auto', 'LR' or 'TB'.")
    index: dict[str, int] = {}
    for name in nodes:
        if name in index:
            raise ValueError(f"layout: node {name!r} is given twice; node ids must be unique.")
        index[name] = len(index)
    n = len(index)
    pairs: list[tuple[int, int]] = []
    seen: set[tuple[int, int]] = set()
    for edge in edges:
        src, dst = edge[0], edge[1]
        for end in (src, dst):
            if end not in index:
                known = ", ".join(map(repr, list(index)[:20])) or "(none)"
                raise ValueError(f"layout: edge {(src, dst)!r} names unknown node {end!r}; "
                                 f"known nodes: {known}")
        pair = (index[src], index[dst])
        if pair not in seen:
            seen.add(pair)
            pairs.append(pair)

    links, flipped = _s.break_cycles(n, [p for p in pairs if p[0] != p[1]])
    g = _s.Slots(n, _s.layers(n, links), links)
    order = _s.arrange(g, iterations)
    crossings = _s.crossings(g, order)
    slots_max = max((len(lv) for lv in order), default=0)
    if direction == "auto":
        direction = "TB" if len(order) > TALL_LAYERS and slots_max <= THIN_SLOTS else "LR"
    lr = direction == "LR"
    main_size, cross_size = (node_width, node_height) if lr else (node_height, node_width)
    if layer_gap is None:
        layer_gap = 64.0 if lr else 40.0
    if node_gap is None:
        node_gap = 24.0 if lr else 32.0
    cross = _s.cross_coords(g, order, cross_size, node_gap, margin)

    def main(i: int) -> float:
        return margin + main_size / 2 + i * (main_size + layer_gap)

    def point(m: float, c: float) -> Point:
        return (round(m, 1), round(c, 1)) if lr else (round(c, 1), round(m, 1))

    names = list(index)
    positions = {names[v]: point(main(g.layer[v]), cross[v]) for v in range(n)}
    ports = _s.ports(g, cross, cross_size)
    edge_points: dict[tuple[str, str], tuple[Point, ...]] = {}
    half = main_size / 2
    for s, t in pairs:
        if s == t:
            m, c = main(g.layer[s]), cross[s]
            side, edge_off = main_size / 4, cross_size / 2
            far = -(edge_off + _LOOP) if lr else edge_off + _LOOP  # LR: above; TB: right
            near = -edge_off if lr else edge_off
            loop = [(m + side, c + near), (m + side, c + far), (m - side, c + far),
                    (m - side, c + near)]
            edge_points[names[s], names[t]] = tuple(
                (round(x, 1), round(y, 1)) if lr else (round(y, 1), round(x, 1))
                for x, y in loop)
            continue
        a, b = (t, s) if (s, t) in flipped else (s, t)
        chain = g.chains[a, b]
        pts = [point(main(g.layer[a]) + half, cross[a] + ports[a, chain[1]])]
        for d in chain[1:-1]:
            pts.append(point(main(g.layer[d]) - half, cross[d]))
            pts.append(point(main(g.layer[d]) + half, cross[d]))
        pts.append(point(main(g.layer[b]) - half, cross[b] + ports[b, chain[-2]]))
        if (s, t) in flipped:
            pts.reverse()
        edge_points[names[s], names[t]] = tuple(pts)

    extent_main = 2 * margin + len(order) * main_size + max(len(order) - 1, 0) * layer_gap
    extent_cross = max([cross[v] + (cross_size / 2 if v < n else 0) for v in range(len(cross))]
                       + [0.0]) + margin
    if any(s == t for s, t in pairs) and not lr:
        extent_cross += _LOOP
    if n == 0:
        extent_main = extent_cross = 2 * margin
    width, height = (extent_main, extent_cross) if lr else (extent_cross, extent_main)
    return Layout(
        direction=direction,
        layers=tuple(tuple(names[v] for v in lv if v < n) for lv in order),
        positions=positions, edge_points=edge_points,
        width=round(width, 1), height=round(height, 1),
        node_width=node_width, node_height=node_height, crossings=crossings,
        reversed_edges=tuple((names[s], names[t]) for s, t in pairs if (s, t) in flipped),
    )


def trait_from(nodes: Sequence[Mapping[str, Any]], edges: Sequence[Sequence[str]], *,
               node_width: float = 170, node_height: float = 64) -> dict[str, Any]:
    """The SPEC §13 ``graph`` trait from node dicts and ``(source, target, kind)`` edges.

    Each node dict has ``id``, ``label``, ``kind``, ``backend``, ``workers``; ``x`` and ``y``
    are added. The result is plain JSON (str, float, int, list, dict).

    Examples
    --------
    >>> t = trait_from([{"id": "a", "label": "a", "kind": "producer", "backend": "thread",
    ...                  "workers": 1}], [])
    >>> t["nodes"][0]["x"], t["direction"], t["edges"]
    (105.0, 'LR', [])
    """
    lay = layout([str(node["id"]) for node in nodes], [(e[0], e[1]) for e in edges],
                 node_width=node_width, node_height=node_height)
    out_nodes = []
    for node in nodes:
        x, y = lay.positions[str(node["id"])]
        out_nodes.append({"id": str(node["id"]), "label": str(node["label"]),
                          "kind": str(node["kind"]), "backend": str(node["backend"]),
                          "workers": int(node["workers"]), "x": x, "y": y})
    out_edges = [{"source": e[0], "target": e[1], "kind": e[2] if len(e) > 2 else "default",
                  "points": [list(p) for p in lay.edge_points[e[0], e[1]]]} for e in edges]
    return {"direction": lay.direction, "width": lay.width, "height": lay.height,
            "node_width": node_width, "node_height": node_height,
            "nodes": out_nodes, "edges": out_edges}


def graph_trait(graph: Graph) -> dict[str, Any]:
    """The SPEC §13 ``graph`` trait of a resolved graph, laid out (JSON-serialisable).

    Nodes are the stages (``id`` = path, ``label`` = name); edges are the graph's edges, then
    one ``kind="routes"`` edge per name in a stage's ``routes=`` that no edge already joins.

    Examples
    --------
    >>> import minigun_nb as mg
    >>> pipe = mg.Pipeline([mg.producer(lambda: [1], name="gen"),
    ...                     mg.processor(lambda x: x, name="f", workers=4)])
    >>> t = graph_trait(pipe.graph())
    >>> [(n["id"], n["workers"]) for n in t["nodes"]], t["edges"][0]["points"]
    ([('gen', 1), ('f', 4)], [[190.0, 52.0], [254.0, 52.0]])
    """
    nodes = [{"id": path, "label": spec.name, "kind": spec.kind,
              "backend": spec.options["backend"], "workers": spec.options["workers"]}
             for path, spec in graph.stages.items()]
    edges: list[tuple[str, str, str]] = []
    joined: set[tuple[str, str]] = set()
    for e in graph.edges:
        if (e.source, e.target) not in joined:
            joined.add((e.source, e.target))
            edges.append((e.source, e.target, e.kind))
    for path, spec in graph.stages.items():
        for target in spec.routes:
            if target in graph.stages and (path, target) not in joined:
                joined.add((path, target))
                edges.append((path, target, "routes"))
    return trait_from(nodes, edges)
