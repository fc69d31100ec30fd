"""The steps of the DAG layout (see :mod:`minigun_nb.display.layout`), on integer node ids.

Real nodes are ``0..n-1`` in the given order; dummy nodes (one per layer a long edge passes)
come after. Sets serve only for membership, never for an order, so results depend only on the
order of the input.
"""

from __future__ import annotations

import heapq

PATIENCE = 4  # barycenter sweeps without improvement before giving up


def break_cycles(n: int, pairs: list[tuple[int, int]]
                  ) -> tuple[list[tuple[int, int]], set[tuple[int, int]]]:
    """The edges as a DAG: in order, an edge that would close a cycle is reversed."""
    if acyclic(n, pairs):
        return pairs, set()
    succ: list[list[int]] = [[] for _ in range(n)]
    links: list[tuple[int, int]] = []
    linked: set[tuple[int, int]] = set()
    flipped: set[tuple[int, int]] = set()
    for s, t in pairs:
        if reaches(succ, t, s):
            flipped.add((s, t))
            s, t = t, s
        if (s, t) not in linked:  # a 2-cycle gives the same link twice
            linked.add((s, t))
            succ[s].append(t)
            links.append((s, t))
    return links, flipped


def acyclic(n: int, pairs: list[tuple[int, int]]) -> bool:
    """True when ``pairs`` has no cycle (Kahn's algorithm)."""
    indeg = [0] * n
    succ: list[list[int]] = [[] for _ in range(n)]
    for s, t in pairs:
        succ[s].append(t)
        indeg[t] += 1
    todo = [v for v in range(n) if indeg[v] == 0]
    seen = 0
    while todo:
        v = todo.pop()
        seen += 1
        for w in succ[v]:
            indeg[w] -= 1
            if indeg[w] == 0:
                todo.append(w)
    return seen == n


def reaches(succ: list[list[int]], start: int, goal: int) -> bool:
    """True when a path leads from ``start`` to ``goal``."""
    stack, seen = [start], {start}
    while stack:
        v = stack.pop()
        if v == goal:
            return True
        for w in succ[v]:
            if w not in seen:
                seen.add(w)
                stack.append(w)
    return False


def layers(n: int, links: list[tuple[int, int]]) -> list[int]:
    """Longest-path layering from the sources; sources then move next to their successors."""
    succ: list[list[int]] = [[] for _ in range(n)]
    indeg = [0] * n
    for s, t in links:
        succ[s].append(t)
        indeg[t] += 1
    layer = [0] * n
    heap = [v for v in range(n) if indeg[v] == 0]  # by node order: deterministic
    heapq.heapify(heap)
    while heap:
        v = heapq.heappop(heap)
        for w in succ[v]:
            layer[w] = max(layer[w], layer[v] + 1)
            indeg[w] -= 1
            if indeg[w] == 0:
                heapq.heappush(heap, w)
    has_pred = {t for _, t in links}
    for v in range(n):
        if v not in has_pred and succ[v]:
            layer[v] = min(layer[w] for w in succ[v]) - 1
    low = min(layer, default=0)
    return [x - low for x in layer]


class Slots:
    """The layered graph: real nodes ``0..n-1``, dummy nodes after; edges span one layer."""

    def __init__(self, n: int, layer: list[int], links: list[tuple[int, int]]) -> None:
        self.n = n
        self.layer = list(layer)
        self.succ: list[list[int]] = [[] for _ in range(n)]
        self.pred: list[list[int]] = [[] for _ in range(n)]
        self.chains: dict[tuple[int, int], list[int]] = {}
        self.key: list[float] = [float(v) for v in range(n)]  # initial order within a layer
        for s, t in links:
            chain = [s]
            for k in range(layer[s] + 1, layer[t]):
                d = len(self.layer)
                self.layer.append(k)
                self.succ.append([])
                self.pred.append([])
                self.key.append(s + 0.5)  # a long edge starts next to its source
                chain.append(d)
            chain.append(t)
            for a, b in zip(chain, chain[1:], strict=False):
                self.succ[a].append(b)
                self.pred[b].append(a)
            self.chains[s, t] = chain

    def initial(self) -> list[list[int]]:
        depth = max(self.layer, default=-1) + 1
        order: list[list[int]] = [[] for _ in range(depth)]
        for v in sorted(range(len(self.layer)), key=lambda v: (self.key[v], v)):
            order[self.layer[v]].append(v)
        return order


def arrange(g: Slots, iterations: int) -> list[list[int]]:
    """The order within each layer with the fewest crossings seen (the initial one included)
    over ``iterations`` barycenter sweeps, alternately down and up, each then transposed."""
    order = g.initial()
    best = [list(lv) for lv in order]
    best_c = crossings(g, order)
    idle = 0
    for it in range(iterations):
        if best_c == 0 or idle >= PATIENCE:
            break
        down = it % 2 == 0
        rng = range(1, len(order)) if down else range(len(order) - 2, -1, -1)
        for i in rng:
            ref = order[i - 1] if down else order[i + 1]
            pos = {v: k for k, v in enumerate(ref)}
            here = {v: k for k, v in enumerate(order[i])}

            def bary(v: int, pos: dict[int, int] = pos, here: dict[int, int] = here,
                     down: bool = down) -> float:
                near = g.pred[v] if down else g.succ[v]
                return sum(pos[u] for u in near) / len(near) if near else float(here[v])

            order[i].sort(key=bary)  # stable: ties keep the current order
        transpose(g, order)
        c = crossings(g, order)
        if c < best_c:
            best, best_c, idle = [list(lv) for lv in order], c, 0
        else:
            idle += 1
    return best


def pair_crossings(u: int, v: int, near: list[list[int]], pos: dict[int, int]
                    ) -> tuple[int, int]:
    """Crossings between u's and v's edges to one neighbouring layer: (u before v, v before u)."""
    before = after = 0
    nv = [pos[b] for b in near[v]]
    if nv:
        for a in near[u]:
            pa = pos[a]
            for pb in nv:
                if pa > pb:
                    before += 1
                elif pa < pb:
                    after += 1
    return before, after


def transpose(g: Slots, order: list[list[int]]) -> None:
    pos = {v: k for lv in order for k, v in enumerate(lv)}
    for _ in range(len(order) + 4):  # bounded: each swap strictly lowers the crossings
        improved = False
        for lv in order:
            for j in range(len(lv) - 1):
                u, v = lv[j], lv[j + 1]
                up_now, up_swapped = pair_crossings(u, v, g.pred, pos)
                down_now, down_swapped = pair_crossings(u, v, g.succ, pos)
                if up_swapped + down_swapped < up_now + down_now:
                    lv[j], lv[j + 1] = v, u
                    pos[u], pos[v] = j + 1, j
                    improved = True
        if not improved:
            return


def crossings(g: Slots, order: list[list[int]]) -> int:
    """Edge crossings between consecutive layers (inversions, counted with a Fenwick tree)."""
    total = 0
    for upper, lower in zip(order, order[1:], strict=False):
        pos = {v: k for k, v in enumerate(lower)}
        ends = [pos[w] for v in upper for w in sorted(g.succ[v], key=pos.__getitem__)]
        tree = [0] * (len(lower) + 1)
        for seen, e in enumerate(ends):
            i, below = e + 1, 0  # how many earlier edges end at or left of e
            while i > 0:
                below += tree[i]
                i -= i & -i
            total += seen - below
            i = e + 1
            while i <= len(lower):
                tree[i] += 1
                i += i & -i
    return total


def cross_coords(g: Slots, order: list[list[int]], size: float, gap: float,
                  margin: float) -> list[float]:
    """Across-the-flow centres (the priority method).

    Sweeping down, up, down, up, down, each layer is placed after its neighbouring layer:
    a slot wants the mean of its neighbours there (a stage: of its neighbouring *stages* when
    it has any, so a chain stays straight and a long edge bends around it). Slots are placed
    by priority (stages with more neighbours first, then long edges, then slots with no
    neighbour on that side); each class is placed as close to what it wants as the order,
    the gaps and the already placed slots allow (a weighted isotonic regression), so equal
    slots share the room symmetrically (a fan-out is centred on its source).
    """
    dummy_gap = 14.0
    coord = [0.0] * len(g.layer)

    def sep(a: int, b: int) -> float:
        real = (a < g.n) + (b < g.n)
        return real * size / 2 + (gap if real else dummy_gap)

    def offsets(lv: list[int]) -> list[float]:
        out = [0.0]
        for a, b in zip(lv, lv[1:], strict=False):
            out.append(out[-1] + sep(a, b))
        return out

    widest = max((offsets(lv)[-1] for lv in order if lv), default=0.0)
    for lv in order:
        if lv:
            off = offsets(lv)
            shift = (widest - off[-1]) / 2
            for v, o in zip(lv, off, strict=True):
                coord[v] = o + shift
    for down in (True, False, True, False, True):
        rng = range(1, len(order)) if down else range(len(order) - 2, -1, -1)
        for i in rng:
            lv = order[i]
            off = offsets(lv)
            want: list[float] = []
            rank: list[float] = []
            for v in lv:
                near = g.pred[v] if down else g.succ[v]
                if v < g.n and any(u < g.n for u in near):
                    near = [u for u in near if u < g.n]
                want.append(sum(coord[u] for u in near) / len(near) if near else coord[v])
                rank.append(0.0 if not near else 0.5 if v >= g.n else 1.0 + len(near))
            done = [False] * len(lv)
            for level in sorted(set(rank), reverse=True):
                target = [coord[v] if done[k] else want[k] if rank[k] == level else coord[v]
                          for k, v in enumerate(lv)]
                weight = [1e6 if done[k] else 1.0 if rank[k] == level else 1e-6
                          for k in range(len(lv))]
                for k, c in enumerate(isotonic(target, weight, off)):
                    coord[lv[k]] = c
                    done[k] = done[k] or rank[k] == level
    low = min((coord[v] - (size / 2 if v < g.n else 0.0) for v in range(len(coord))),
              default=0.0)
    return [c - low + margin for c in coord]


def isotonic(want: list[float], weight: list[float], off: list[float]) -> list[float]:
    """Closest ``x`` to ``want`` (weighted squares) with ``x[k+1] - x[k] >= off[k+1] - off[k]``.

    Pool adjacent violators on ``want[k] - off[k]``: the offsets turn the gaps into a plain
    monotonicity constraint.
    """
    blocks: list[list[float]] = []  # [mean, weight, count]
    for w_, o, wt in zip(want, off, weight, strict=True):
        blocks.append([w_ - o, wt, 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            m2, w2, c2 = blocks.pop()
            m1, w1, c1 = blocks.pop()
            total = w1 + w2
            blocks.append([(m1 * w1 + m2 * w2) / total, total, c1 + c2])
    out: list[float] = []
    for mean, _, count in blocks:
        out.extend([mean] * int(count))
    return [y + o for y, o in zip(out, off, strict=True)]


def ports(g: Slots, cross: list[float], size: float) -> dict[tuple[int, int], float]:
    """Where on its border each edge leaves or enters a real box (offset from its centre).

    Ports are spread along the border in the order of the other ends, so they add no
    crossing and several edges do not meet in one point.
    """
    ports: dict[tuple[int, int], float] = {}
    for v in range(g.n):
        for near in (g.succ[v], g.pred[v]):
            ends = sorted(near, key=lambda u: (cross[u], u))
            if len(ends) == 1:
                ports[v, ends[0]] = 0.0
            elif ends:
                step = min(size * 0.5 / (len(ends) - 1), 14.0)
                for k, u in enumerate(ends):
                    ports[v, u] = (k - (len(ends) - 1) / 2) * step
    return ports
