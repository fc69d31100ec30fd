"""The static dashboard of a finished run: ``result.to_html()`` and ``result._repr_html_()``.

What a saved notebook keeps of a run (SPEC §13 "Static forms"): no kernel, no JavaScript, no
``<style>`` block (it would leak into the notebook's page), inline styles only. A header line
(pipeline, status, elapsed, totals, hint), the DAG with the final stats as a data-URI SVG
``<img>`` (JupyterLab sanitizes inline ``<svg>`` out of untrusted HTML; an image survives, and
so do nbconvert and GitHub), the stage table with the ``result.stats`` columns, and the error
rows as ``<details>`` with their tracebacks. Every piece of untrusted text (stage names,
messages, item reprs, tracebacks) is escaped. Text takes the page's own colour and borders
are translucent grey, so the dashboard reads on light and dark themes.

Examples
--------
>>> import minigun_nb as mg
>>> result = mg.Pipeline([mg.processor(abs, name="abs")]).run(items=[-1, 2], display="none")
>>> page = render_html(result)
>>> page.startswith("<div") and 'src="data:image/svg+xml;base64,' in page
True
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..observe.summary import format_duration, format_ms, format_rate
from .layout import graph_trait, trait_from
from .serialize import (  # one JSON form of a stage's stats, shared with the widget
    MESSAGE_LIMIT,
    TRACEBACK_LIMIT,
    cut,
    json_value,
    stage_stats_json,
)
from .svg import STATUS_COLOURS, esc, render_svg, svg_data_uri
from .text import pipeline_counts

if TYPE_CHECKING:
    from ..core.graph import Graph
    from ..runtime.result import RunResult

__all__ = ["ERRORS_SHOWN", "render_html", "snapshot_graph_trait", "stage_stats_json"]

#: error rows shown as <details>; the rest are counted ("and N more")
ERRORS_SHOWN = 50

_FONT = "font-family:ui-sans-serif,system-ui,-apple-system,'Segoe UI',Helvetica,Arial,sans-serif"
_LINE = "rgba(128,128,128,0.35)"
_SHADE = "rgba(128,128,128,0.12)"
_MONO = "font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace"


def snapshot_graph_trait(snapshot: Any) -> dict[str, Any]:
    """The ``graph`` trait from a run snapshot alone (its stages and ``edges``).

    For a result that does not carry its resolved graph; ``routes=`` edges are not known
    there.
    """
    nodes = [{"id": s.path, "label": s.path.rsplit("/", 1)[-1], "kind": s.kind,
              "backend": s.backend, "workers": s.workers} for s in snapshot.stages]
    known = {s.path for s in snapshot.stages}
    edges = [tuple(e) for e in getattr(snapshot, "edges", ()) if e[0] in known and e[1] in known]
    return trait_from(nodes, edges)


def _cell(column: str, value: Any) -> tuple[str, str]:
    """(text, title) of one stats cell; numbers formatted like ``result.summary()``."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–", ""
    if column == "busy":
        return f"{float(value) * 100:.0f}%", f"{float(value):.3f}"
    if column == "throughput":
        return format_rate(float(value)), f"{float(value):.3f} items/s"
    if column.endswith("_ms"):
        return format_ms(float(value)), f"{float(value):.4f} ms"
    if column == "elapsed_s":
        return format_duration(float(value)), f"{float(value):.3f} s"
    if column in ("started", "finished"):
        text = str(value)
        return (text[11:23] if len(text) >= 19 else text), text
    if isinstance(value, bool) or isinstance(value, str):
        return str(value), ""
    if isinstance(value, int):
        return f"{value:,}", ""
    return str(value), ""


def _stats_table(rows: Mapping[str, Mapping[str, Any]], columns: list[str]) -> str:
    th = (f"padding:3px 8px;border-bottom:1px solid {_LINE};background:{_SHADE};"
          "font-weight:600;white-space:nowrap")
    head = [f'<th style="{th};text-align:left">stage</th>']
    head += [f'<th style="{th};text-align:right">{esc(c)}</th>' for c in columns]
    body = []
    for path, row in rows.items():
        td = f"padding:2px 8px;border-bottom:1px solid {_LINE};white-space:nowrap"
        cells = [f'<td style="{td};text-align:left;font-weight:600">{esc(path)}</td>']
        for column in columns:
            text, title = _cell(column, row.get(column))
            align = "left" if column in ("kind", "backend", "status") else "right"
            extra = ""
            if column == "status":
                colour = STATUS_COLOURS.get(str(row.get(column)), "#94a3b8")
                text_html = f'<span style="color:{colour}">●</span> {esc(text)}'
            elif column == "failed" and row.get(column):
                text_html, extra = esc(text), ";color:#dc2626;font-weight:600"
            else:
                text_html = esc(text)
            tip = f' title="{esc(title)}"' if title else ""
            cells.append(f'<td style="{td};text-align:{align}{extra}"{tip}>{text_html}</td>')
        body.append(f"<tr>{''.join(cells)}</tr>")
    return (f'<div style="overflow-x:auto;margin:8px 0">'
            f'<table style="border-collapse:collapse;font-size:12px;'
            f'font-variant-numeric:tabular-nums">'
            f"<thead><tr>{''.join(head)}</tr></thead><tbody>{''.join(body)}</tbody></table>"
            "</div>")


def _cut(text: Any, limit: int) -> str:
    return cut("" if text is None else str(text), limit)


def _errors(result: RunResult) -> str:
    records = result._errors  # the rows shown only: never the whole error DataFrame
    total = len(records)
    if not total:
        return ""
    parts = [f'<div style="margin:10px 0 4px;font-weight:600">{total:,} error'
             f'{"s" if total != 1 else ""}</div>']
    for row in (rec.row() for rec in records[:ERRORS_SHOWN]):
        summary = " · ".join(esc(_cut(row[c], MESSAGE_LIMIT)) for c in ("stage", "exc_type",
                                                                       "message"))
        facts = [f"item: {_cut(row['item_repr'], 200)}", f"attempts: {row['attempts']}",
                 f"worker: {row['worker']}"]
        when = row["time"]
        if hasattr(when, "isoformat"):
            facts.append(f"time: {when.isoformat()}")
        tb = _cut(row["traceback"], TRACEBACK_LIMIT) or "(no traceback)"
        parts.append(
            f'<details style="margin:2px 0;border-left:3px solid #dc2626;padding:1px 0 1px 8px">'
            f'<summary style="cursor:pointer;font-size:12px;overflow-wrap:anywhere">{summary}</summary>'
            f'<div style="font-size:11.5px;opacity:0.8;margin:4px 0;{_MONO}">'
            f"{esc(' · '.join(facts))}</div>"
            f'<pre style="{_MONO};font-size:11.5px;margin:4px 0 8px;padding:6px 8px;'
            f"background:{_SHADE};max-height:320px;overflow:auto;white-space:pre-wrap;"
            f'word-break:break-word">{esc(tb)}</pre></details>')
    if total > ERRORS_SHOWN:
        parts.append(f'<div style="font-size:12px;opacity:0.8;margin:4px 0">and '
                     f"{total - ERRORS_SHOWN:,} more (see <code>result.errors</code>)</div>")
    return "".join(parts)


def render_html(result: RunResult, graph: Graph | None = None) -> str:
    """The static dashboard of ``result`` as one self-contained HTML fragment.

    Parameters
    ----------
    result : RunResult
        A finished (or stopped) run.
    graph : Graph, optional
        The run's resolved graph; by default ``result.graph`` when the result carries it,
        else the graph is rebuilt from the run's snapshot.

    Returns
    -------
    str
        A ``<div>`` with inline styles only: no script, no ``<style>``, no class.
    """
    snap = result.snapshot
    graph = graph if graph is not None else getattr(result, "graph", None)
    trait = graph_trait(graph) if graph is not None else snapshot_graph_trait(snap)
    name = graph.name if graph is not None else (getattr(snap, "pipeline", "") or "pipeline")
    rows = {s.path: stage_stats_json(s) for s in snap.stages}
    status = str(result.status)
    colour = STATUS_COLOURS.get(status, "#64748b")
    t = snap.totals
    # counted like the live run line and the text display: what the pipeline finished (its
    # terminal stages), failures over all stages
    done, failed, rate = pipeline_counts(snap)
    counts = [f"{done:,} done", f"{failed:,} failed", f"{format_rate(rate)}/s"]
    counts += [f"{n:,} {what}" for n, what in ((t.cancelled, "cancelled"), (t.retried, "retried"))
               if n]
    counts.append(f"{len(result.outputs):,} output{'s' if len(result.outputs) != 1 else ''}")
    totals = " · ".join(counts)
    header = (f'<div style="display:flex;flex-wrap:wrap;gap:4px 10px;align-items:baseline">'
              f'<b style="font-size:14px">{esc(name)}</b>'
              f'<span style="background:{colour};color:#fff;border-radius:9px;padding:0 8px;'
              f'font-size:11.5px;font-weight:600">{esc(status)}</span>'
              f"<span>{esc(format_duration(result.elapsed_s))}</span>"
              f'<span style="opacity:0.85">{esc(totals)}</span></div>')
    notes = []
    if result.hint:
        notes.append(f'<div style="margin-top:2px;color:#ea580c">{esc(result.hint)}</div>')
    if result.error is not None:
        notes.append(f'<div style="margin-top:2px;color:#dc2626">run failed: '
                     f"{esc(_cut(result.error, MESSAGE_LIMIT))}</div>")
    if result.outputs_dropped:
        notes.append(f'<div style="margin-top:2px;opacity:0.8">{result.outputs_dropped:,} '
                     "outputs not kept (max_outputs)</div>")
    svg = render_svg(trait, rows, bottleneck=result.bottleneck,
                     title=f"Pipeline {name!r}: {status}")
    paths = [n["id"] for n in trait["nodes"]]
    shown = ", ".join(paths[:12]) + (f" and {len(paths) - 12} more" if len(paths) > 12 else "")
    alt = (f"Diagram of pipeline {name!r} after the run ({status}): {len(paths)} stages "
           f"({shown}), {len(trait['edges'])} edges; {done:,} items done, {failed:,} failed"
           + (f"; bottleneck {result.bottleneck}" if result.bottleneck else ""))
    img = (f'<img src="{svg_data_uri(svg)}" alt="{esc(alt)}" width="{trait["width"]:.0f}" '
           f'height="{trait["height"]:.0f}" style="max-width:100%;height:auto;display:block;'
           f'margin:8px 0">')
    frame = result.stats
    columns = [str(c) for c in frame.columns]
    table = {path: dict(row) for path, row in rows.items()}
    for path, row in table.items():
        for column in columns:
            if column not in row and path in frame.index:  # a column the snapshot lacks
                row[column] = json_value(frame.at[path, column])
    return (f'<div style="{_FONT};font-size:13px;line-height:1.45;max-width:100%">'
            f"{header}{''.join(notes)}{img}{_stats_table(table, columns)}{_errors(result)}"
            "</div>")
