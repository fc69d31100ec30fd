"""What the terminal HUD draws: pure functions from a snapshot to rich renderables.

Kept apart from :mod:`minigun_nb.display.hud` (the terminal and the keys) so each can be read
and tested on its own: every function here is a snapshot in, a renderable out, and is tested
with a recording ``Console`` and no terminal.

Examples
--------
>>> import io
>>> from rich.console import Console
>>> from minigun_nb.observe import RunSnapshot
>>> console = Console(record=True, width=100, height=30, file=io.StringIO())
>>> console.print(render_screen(RunSnapshot.empty(), width=100, height=30, console=console))
>>> "q stop" in console.export_text()
True
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rich import box
from rich.console import Console, Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from ..observe.summary import format_count, format_duration, format_ms, format_rate
from .layout import layout

__all__ = ["Dag", "error_rows", "render_dag", "render_errors", "render_header",
           "render_screen", "render_stages"]

_STATUS_STYLE = {"pending": "dim", "running": "green", "stopping": "yellow", "done": "blue",
                 "failed": "bold red", "stopped": "yellow", "cancelled": "magenta"}
_ENDED = ("done", "failed", "stopped", "cancelled")
_BUS = 5  # columns between two layers
# box-drawing junction by (up, down, left, right) for the connector between two layers
_JUNCTION = {(False, False, True, True): "─", (False, True, True, True): "┬",
             (True, False, True, True): "┴", (True, True, True, True): "┼",
             (False, True, True, False): "╮", (True, False, True, False): "╯",
             (True, True, True, False): "┤", (False, True, False, True): "╭",
             (True, False, False, True): "╰", (True, True, False, True): "├",
             (True, True, False, False): "│", (False, False, True, False): "─",
             (False, False, False, True): "─"}


@dataclass(frozen=True)
class Dag:
    """The DAG as the HUD draws it: the layout's layers, a label per stage, the edges.

    Examples
    --------
    >>> Dag.of(["gen", "a", "b", "save"],
    ...        [("gen", "a"), ("gen", "b"), ("a", "save"), ("b", "save")]).layers
    (('gen',), ('a', 'b'), ('save',))
    """

    layers: tuple[tuple[str, ...], ...]
    labels: dict[str, str]
    edges: tuple[tuple[str, str], ...]

    @classmethod
    def of(cls, nodes: Sequence[str], edges: Sequence[Sequence[str]],
           labels: dict[str, str] | None = None) -> Dag:
        """Lay out ``nodes`` and ``(source, target, ...)`` edges with the shared layout."""
        pairs = tuple(dict.fromkeys((str(e[0]), str(e[1])) for e in edges))
        lay = layout(list(nodes), pairs)
        names = {n: (labels or {}).get(n, n.rsplit("/", 1)[-1]) for n in nodes}
        return cls(lay.layers, names, pairs)

    @classmethod
    def of_graph(cls, graph: Any) -> Dag:
        """The DAG of a resolved graph (``handle.graph``): the same nodes and edges as the
        widget's ``graph`` trait (``routes=`` edges included)."""
        from .layout import graph_trait

        trait = graph_trait(graph)
        return cls.of([n["id"] for n in trait["nodes"]],
                      [(e["source"], e["target"]) for e in trait["edges"]],
                      {n["id"]: n["label"] for n in trait["nodes"]})

    @classmethod
    def of_snapshot(cls, snapshot: Any) -> Dag:
        """The DAG of a snapshot's stages and edges (when no graph is at hand)."""
        return cls.of(list(snapshot.paths), snapshot.edges)


def _style(status: str) -> str:
    return _STATUS_STYLE.get(status, "")


def _terminal_counts(snapshot: Any) -> tuple[int, float]:
    """Items the pipeline finished (its last stages' done) and their recent rate."""
    sources = {edge[0] for edge in snapshot.edges}
    last = [s for s in snapshot.stages if s.path not in sources and not s.is_producer]
    last = last or [s for s in snapshot.stages if not s.is_producer] or list(snapshot.stages)
    done = sum(s.items_out if s.is_producer else s.done for s in last)
    return done, sum(s.throughput for s in last)


def render_header(snapshot: Any, *, frozen: bool = False, stopping: bool = False) -> Table:
    """Two lines: pipeline, run id, status, elapsed and the keys; then the run's totals."""
    status = "stopping" if stopping and snapshot.status in ("running", "pending") else \
        snapshot.status
    left = Text()
    left.append(f" {snapshot.pipeline or 'pipeline'} ", style="bold reverse")
    if snapshot.run_id:
        left.append(f"  run {snapshot.run_id}", style="dim")
    left.append("  ")
    left.append(status, style=_style(status))
    left.append(f"  {format_duration(snapshot.elapsed_s)}")
    if frozen:
        left.append("  FROZEN", style="bold black on yellow")
    keys = Text("space resume" if frozen else "space freeze", style="dim")
    keys = Text.assemble(("q cancel" if stopping else "q stop", "bold"), " · ", keys)
    done, rate = _terminal_counts(snapshot)
    t = snapshot.totals
    totals = Text(f" {format_count(done)} done · ")
    totals.append(f"{format_count(t.failed)} failed", style="red" if t.failed else "")
    totals.append(f" · {format_count(t.in_flight)} in flight · {format_rate(rate)}/s")
    if snapshot.total is not None:
        fed = sum(s.items_in for s in snapshot.stages if not s.is_producer and
                  not any(e[1] == s.path for e in snapshot.edges))
        totals.append(f" · {format_count(fed)}/{format_count(snapshot.total)} fed")
    grid = Table.grid(expand=True)
    grid.add_column(no_wrap=True, overflow="ellipsis")
    grid.add_column(justify="right", no_wrap=True)
    grid.add_row(left, keys)
    grid.add_row(totals, "")
    return grid


def _node_lines(stage: Any, label: str, bottleneck: bool) -> tuple[Text, Text]:
    """A stage in the DAG: its name (coloured by status) and a line of counts."""
    style = "bold white on red" if bottleneck else f"bold {_style(stage.status) if stage else ''}"
    name = Text(label, style=style.strip(), no_wrap=True, overflow="ellipsis")
    if stage is None:
        return name, Text("")
    if stage.is_producer:
        counts = Text(f"{format_count(stage.items_out)} out", style="dim")
    else:
        counts = Text(f"{format_count(stage.done)} ✓", style="dim")
    if stage.failed:
        counts.append(f" {format_count(stage.failed)} ✗", style="red")
    if stage.stalled:
        counts.append(" stalled", style="bold yellow")
    elif stage.status == "running":
        counts.append(f" {format_rate(stage.throughput)}/s", style="dim")
    return name, counts


def _components(pairs: list[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    """The edges between two layers, split into connected groups (each drawn as one bus)."""
    groups: list[tuple[set[str], list[tuple[str, str]]]] = []
    for s, t in pairs:
        hit = [g for g in groups if s in g[0] or t in g[0]]
        nodes, edges = {s, t}, [(s, t)]
        for g in hit:
            nodes |= g[0]
            edges = g[1] + edges
            groups.remove(g)
        groups.append((nodes, edges))
    return [edges for _, edges in groups]


def _bus(out: list[str], sources: set[int], targets: set[int]) -> None:
    """Draw into ``out`` the bus joining lines ``sources`` (left) to ``targets`` (right)."""
    top, bottom = min(sources | targets), max(sources | targets)
    for y in range(top, bottom + 1):
        left, right = y in sources, y in targets
        mid = _JUNCTION.get((y > top, y < bottom, left, right), "│")
        out[y] = ("─" if left else " ") + mid + ("─▶ " if right else "   ")


def _between(pairs: list[tuple[str, str]], line_of: dict[str, int], height: int
             ) -> tuple[list[str], set[tuple[str, str]]]:
    """The connector column between two layers, and the edges it shows exactly.

    Each connected group of edges is one bus; a group is shown exactly when every source of
    it feeds every target (else its edges are listed under the drawing too). A group whose
    lines would overlap an earlier one's is not drawn.
    """
    out = [" " * _BUS] * height
    exact: set[tuple[str, str]] = set()
    taken: set[int] = set()
    for group in _components(pairs):
        sources = {line_of[s] for s, _ in group}
        targets = {line_of[t] for _, t in group}
        span = set(range(min(sources | targets), max(sources | targets) + 1))
        if span & taken:
            continue
        taken |= span
        _bus(out, sources, targets)
        if len(group) == len({s for s, _ in group}) * len({t for _, t in group}):
            exact.update(group)
    return out, exact


def _band(dag: Dag, stages: dict[str, Any], first: int, count: int, line_of: dict[str, int],
          height: int, col_width: int, compact: bool, bottleneck: str | None
          ) -> tuple[Text, set[tuple[str, str]]]:
    """Layers ``first .. first+count-1`` side by side, with the buses between them."""
    layer_of = {node: i for i, layer in enumerate(dag.layers) for node in layer}
    rows = [Text(no_wrap=True, overflow="crop") for _ in range(height)]
    exact: set[tuple[str, str]] = set()

    def pairs_after(i: int) -> list[tuple[str, str]]:
        return [(s, t) for s, t in dag.edges if layer_of.get(s) == i
                and layer_of.get(t) == i + 1]

    if first:  # this band continues the one above: its arrows come in from the left
        into = {line_of[t] for _, t in pairs_after(first - 1)}
        for y in range(height):
            rows[y].append("…──▶ " if y in into else " " * (_BUS + 1), style="cyan")
    for i in range(first, first + count):
        after = pairs_after(i) if i + 1 < len(dag.layers) else []
        if i + 1 == first + count and after:  # the band ends: the arrows go on below
            bus = [" " * _BUS] * height
            for s, _ in after:
                bus[line_of[s]] = "──▶… "
            exact.update(after)
        else:
            bus, shown = _between(after, line_of, height)
            exact |= shown
        feeding = {line_of[s] for s, _ in after}
        cells: dict[int, Text] = {}
        for node in dag.layers[i]:
            name, counts = _node_lines(stages.get(node), dag.labels.get(node, node),
                                       node == bottleneck)
            cells[line_of[node]] = name
            if not compact:
                cells[line_of[node] + 1] = counts
        for y in range(height):
            cell = cells.get(y, Text(""))
            if y in feeding and cell.cell_len < col_width - 1:  # the arrow starts at the name
                cell.append(" " + "─" * (col_width - cell.cell_len - 1), style="cyan")
            cell.truncate(col_width, overflow="ellipsis", pad=True)
            rows[y].append_text(cell)
            rows[y].append(bus[y], style="cyan")
    return Text("\n", no_wrap=True, overflow="crop").join(rows), exact


def render_dag(dag: Dag, snapshot: Any, *, width: int = 100, compact: bool = False
               ) -> RenderableType:
    """The DAG as columns of layers (left to right) joined by box-drawing arrows.

    A stage takes two lines (its name, then its counts) and a blank one, or one line with
    ``compact``. Edges between neighbouring layers are drawn as buses; an edge that skips a
    layer, or that a bus does not show exactly, is listed under the drawing. Layers that do
    not fit the width at 12 columns each go on to a band below.
    """
    if not dag.layers:
        return Panel(Text("(no stages)", style="dim"), title="DAG", box=box.ROUNDED)
    stages = {s.path: s for s in snapshot.stages}
    step = 1 if compact else 3
    tallest = max(len(layer) for layer in dag.layers)
    height = step * tallest - (0 if compact else 1)
    inner = max(width - 4, 12)  # the panel's borders and padding
    per_band = max(1, min(len(dag.layers), (inner - _BUS - 1) // (12 + _BUS)))
    line_of = {node: (step * (tallest - len(layer))) // 2 + step * j
               for layer in dag.layers for j, node in enumerate(layer)}
    exact: set[tuple[str, str]] = set()
    bands: list[Text] = []
    for first in range(0, len(dag.layers), per_band):
        count = min(per_band, len(dag.layers) - first)
        room = inner - (_BUS + 1 if first else 0) - _BUS * count
        col_width = min(24, max(6, room // count))
        band, shown = _band(dag, stages, first, count, line_of, height, col_width, compact,
                            snapshot.bottleneck)
        bands.append(band)
        exact |= shown
    others = [f"{dag.labels.get(s, s)} → {dag.labels.get(t, t)}" for s, t in dag.edges
              if (s, t) not in exact]
    parts: list[RenderableType] = [Text("\n\n").join(bands) if len(bands) > 1 else bands[0]]
    if others:
        parts.append(Text("also: " + ", ".join(others), style="dim", no_wrap=True,
                          overflow="ellipsis"))
    return Panel(Group(*parts), title="DAG", title_align="left", box=box.ROUNDED,
                 padding=(0, 1))


def _queue(stage: Any) -> str:
    if stage.is_producer or not stage.queue_size:
        return "-"
    return f"{format_count(stage.queue_depth)}/{format_count(stage.queue_size)}"


#: the stage table's columns in drawing order, and the order they give way on a narrow terminal
_COLUMNS = ("stage", "status", "in", "out", "failed", "items/s", "busy %", "queue", "P50 ms",
            "P99 ms")
_DROP_FIRST = ("busy %", "in", "queue", "items/s", "P50 ms", "failed")


def _stage_cells(s: Any, bottleneck: str | None) -> dict[str, Text]:
    status = Text(s.status, style=_style(s.status))
    if s.stalled and s.oldest_s is not None:
        status = Text(f"stalled {format_duration(s.oldest_s)}", style="bold yellow")
    name = Text(s.path)
    if s.path == bottleneck:
        name.stylize("bold red")
        name.append(" ◀ bottleneck", style="red")
    plain = (format_count(s.items_in), format_count(s.items_out))
    return {"stage": name, "status": status, "in": Text(plain[0]), "out": Text(plain[1]),
            "failed": Text(format_count(s.failed), style="red" if s.failed else ""),
            "items/s": Text(format_rate(s.throughput)),
            "busy %": Text(f"{round(s.busy * 100)}"), "queue": Text(_queue(s)),
            "P50 ms": Text(format_ms(s.p50_ms)), "P99 ms": Text(format_ms(s.p99_ms))}


def render_stages(snapshot: Any, width: int | None = None) -> Table:
    """The stage table: status, in/out, failed, items/s, busy %, queue depth/size, P50, P99.

    On a terminal narrower than the table, whole columns give way (busy %, in, queue,
    items/s, P50, failed, in that order) rather than every cell being cut.
    """
    rows = [_stage_cells(s, snapshot.bottleneck) for s in snapshot.stages]
    wide = {c: max([len(c)] + [r[c].cell_len for r in rows]) for c in _COLUMNS}
    wide["stage"] = min(wide["stage"], 24)
    shown = list(_COLUMNS)
    for column in _DROP_FIRST:
        if width is None or sum(wide[c] for c in shown) + 2 * (len(shown) - 1) <= width:
            break
        shown.remove(column)
    table = Table(box=box.SIMPLE_HEAD, expand=True, pad_edge=False, show_edge=False)
    for column in shown:
        if column == "stage":
            table.add_column(column, no_wrap=True, overflow="ellipsis", ratio=3,
                             min_width=min(wide["stage"], 16))
        elif column == "status":
            table.add_column(column, no_wrap=True)
        else:
            table.add_column(column, justify="right", no_wrap=True)
    for row in rows:
        table.add_row(*(row[c] for c in shown))
    return table


def error_rows(records: Sequence[Any], limit: int = 5) -> list[dict[str, str]]:
    """The last ``limit`` error records as short text rows (stage, exc_type, message, item)."""
    rows = []
    for rec in list(records[-limit:]) if limit > 0 else []:
        try:
            item = repr(rec.item) if getattr(rec, "has_item", True) else ""
        except Exception as exc:  # noqa: BLE001 - a broken __repr__ must not break the screen
            item = f"<unreprable {type(rec.item).__name__}: {exc}>"
        message = str(rec.message).splitlines()[0] if rec.message else ""
        rows.append({"stage": rec.stage, "exc_type": rec.exc_type, "message": message[:300],
                     "item_repr": item[:200]})
    return rows


def render_errors(rows: Sequence[dict[str, str]], total: int) -> Panel:
    """The last errors, oldest first, and how many there were in all."""
    title = f"errors ({format_count(total)})" if total else "errors"
    if not rows:
        body: RenderableType = Text("no errors", style="dim")
    else:
        grid = Table.grid(padding=(0, 1), expand=True)
        grid.add_column(no_wrap=True, overflow="ellipsis", max_width=24, style="bold")
        grid.add_column(no_wrap=True, style="red")
        grid.add_column(no_wrap=True, overflow="ellipsis", ratio=3)
        grid.add_column(no_wrap=True, overflow="ellipsis", ratio=1, style="dim")
        for row in rows:
            grid.add_row(row["stage"], row["exc_type"], row["message"], row["item_repr"])
        body = grid
    return Panel(body, title=title, title_align="left", box=box.ROUNDED, padding=(0, 1),
                 border_style="red" if total else "dim")


def render_screen(snapshot: Any, dag: Dag | None = None, errors: Sequence[Any] = (), *,
                  errors_total: int | None = None, frozen: bool = False,
                  stopping: bool = False, width: int = 100, height: int = 30,
                  console: Console | None = None) -> RenderableType:
    """The whole HUD for one snapshot, fitted to ``width`` × ``height``.

    ``errors`` are the run's error records (the last ones are shown, as many as fit). The DAG
    is drawn compact (one line per stage) when its full form would take more than a third of
    the height.
    """
    dag = dag if dag is not None else Dag.of_snapshot(snapshot)
    console = console or Console(width=width, height=height, file=io.StringIO())
    options = console.options.update(width=width)

    def lines(*parts: RenderableType) -> int:
        return len(console.render_lines(Group(*parts), options, pad=False))

    drawing = render_dag(dag, snapshot, width=width)
    if lines(drawing) > max(5, height // 3):
        drawing = render_dag(dag, snapshot, width=width, compact=True)
    top: list[RenderableType] = [
        render_header(snapshot, frozen=frozen, stopping=stopping),
        drawing,
        render_stages(snapshot, width),
    ]
    if stopping and snapshot.status not in _ENDED:
        left = format_count(snapshot.totals.in_flight)
        top.append(Text(f" stopping: draining {left} item(s) in flight; q again cancels",
                         style="yellow"))
    top.append(Text(f" {snapshot.hint}" if snapshot.hint else " no bottleneck",
                    style="bold" if snapshot.hint else "dim", no_wrap=True,
                    overflow="ellipsis"))
    room = max(1, height - lines(*top) - 2)
    total = len(errors) if errors_total is None else errors_total
    return Group(*top, render_errors(error_rows(errors, room), total))
