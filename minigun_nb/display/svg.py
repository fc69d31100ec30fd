"""The DAG as a standalone SVG string: ``pipe.to_svg()``, the notebook repr, the static dashboard.

Presentation attributes only (no CSS class, no ``<style>``, no script), so the drawing looks
the same inline, in an ``<img>`` (where JupyterLab, nbconvert and GitHub show it without a
kernel) and in any viewer. The background is transparent; boxes have explicit light fills with
dark text and edges are mid-grey, so it reads on white and on dark notebook themes alike.
Every piece of untrusted text (stage names, paths) is escaped, and characters XML cannot hold
are dropped, so the result always parses as XML.

Examples
--------
>>> import xml.etree.ElementTree as ET
>>> from minigun_nb.display.layout import trait_from
>>> graph = trait_from([{"id": "a&b", "label": "a&b", "kind": "processor",
...                      "backend": "thread", "workers": 2}], [])
>>> svg = render_svg(graph)
>>> ET.fromstring(svg).tag, "a&amp;b" in svg
('{http://www.w3.org/2000/svg}svg', True)
"""

from __future__ import annotations

import hashlib
import html
import json
import math
import re
from collections.abc import Mapping
from typing import Any

from ..observe.summary import format_count, format_rate

__all__ = ["render_svg", "svg_data_uri"]

FONT = "ui-sans-serif, system-ui, -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif"
BOX_FILL = "#f8fafc"
BOX_STROKE = "#64748b"
TEXT = "#0f172a"
MUTED = "#475569"
EDGE = "#8b95a5"
BOTTLENECK = "#ea580c"
FAILED = "#dc2626"
KIND_COLOURS = {
    "producer": "#16a34a", "processor": "#2563eb", "consumer": "#9333ea",
    "accumulator": "#0891b2", "batch": "#d97706", "debatch": "#d97706", "rebatch": "#d97706",
}
STATUS_COLOURS = {
    "done": "#16a34a", "running": "#2563eb", "failed": FAILED, "pending": "#94a3b8",
    "stopped": "#d97706", "cancelled": "#d97706",
}
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def esc(text: Any) -> str:
    """``text`` as XML/HTML text or attribute value: escaped, invalid characters dropped."""
    return html.escape(_NOT_XML.sub("", str(text)), quote=True)


def _width(text: str, size: float, bold: bool = False) -> float:
    """Estimated width in px of ``text``: DejaVu Sans's metrics (among the widest sans fonts,
    and the one Linux browsers fall back to), so the estimate errs on the wide side."""
    em = 0.0
    for ch in text:
        if ch.islower():
            em += 0.56
        elif ch.isdigit():
            em += 0.64
        elif ch == " ":
            em += 0.32
        else:
            em += 0.7 if ch.isupper() else 0.62
    return em * size * (1.1 if bold else 1.0)


def _fit(text: str, px: float, size: float, bold: bool = False) -> str:
    """``text`` cut with an ellipsis to at most about ``px`` wide at font ``size``."""
    if _width(text, size, bold) <= px:
        return text
    while text and _width(text + "…", size, bold) > px:
        text = text[:-1]
    return text + "…"


def _fits(text: str, px: float, size: float) -> bool:
    return _fit(text, px, size) == text


def _count(n: Any) -> str:
    return format_count(int(n or 0))


def _rate(x: Any) -> str:
    ok = isinstance(x, (int, float)) and math.isfinite(x) and x > 0
    return f"{format_rate(x) if ok else '0'}/s"


def _ms(x: Any) -> str:
    """A latency in few characters: ``3µs``, ``0.4ms``, ``12ms``, ``1.2s``."""
    if not isinstance(x, (int, float)) or not math.isfinite(x):
        return "-"
    if x < 0.001:
        return "<1µs"
    if x < 1:
        return f"{x * 1000:.0f}µs"
    if x < 10:
        return f"{x:.1f}ms"
    return f"{x:.0f}ms" if x < 1000 else f"{x / 1000:.1f}s"


def _text(x: float, y: float, body: str, *, size: float = 10.5, fill: str = MUTED,
          weight: str | None = None, anchor: str = "start") -> str:
    bold = f' font-weight="{weight}"' if weight else ""
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" fill="{fill}"{bold} '
            f'text-anchor="{anchor}">{body}</text>')


def _node(node: Mapping[str, Any], w: float, h: float, row: Mapping[str, Any] | None,
          is_bottleneck: bool) -> list[str]:
    x, y = float(node["x"]), float(node["y"])
    left, top = x - w / 2, y - h / 2
    kind, path, label = str(node["kind"]), str(node["id"]), str(node["label"])
    accent = KIND_COLOURS.get(kind, BOX_STROKE)
    stroke, width, dash = BOX_STROKE, 1.2, ""
    status = str(row.get("status", "")) if row else ""
    if row and (status == "failed" or row.get("stalled")):
        stroke, width = FAILED, 2.0
        dash = ' stroke-dasharray="5 3"' if row.get("stalled") else ""
    if is_bottleneck:
        stroke, width = BOTTLENECK, 3.5
    detail = f"{node['backend']}×{node['workers']} · {kind}"
    tip = f"{path} ({detail})" + (" — bottleneck" if is_bottleneck else "")
    out = [f"<g><title>{esc(tip)}</title>",
           f'<rect x="{left:.1f}" y="{top:.1f}" width="{w:.1f}" height="{h:.1f}" rx="8" '
           f'ry="8" fill="{BOX_FILL}" stroke="{stroke}" stroke-width="{width}"{dash}/>',
           f'<rect x="{left + 1:.1f}" y="{top + 6:.1f}" width="4" height="{h - 12:.1f}" rx="2" '
           f'fill="{accent}"/>']
    pad = 12.0
    room = w - 2 * pad - (10 if row else 0)
    prefix = path[: -len(label)] if path.endswith(label) and path != label else ""
    shown = _fit(prefix + label, room, 12.5, bold=True)
    if prefix and len(shown) > len(prefix) + 1:  # the nested pipeline's path, greyed
        name = (f'<tspan fill="{MUTED}" font-weight="normal">{esc(prefix)}</tspan>'
                f"{esc(shown[len(prefix):])}")
    else:
        name = esc(shown)
    if not row:
        out.append(_text(left + pad, top + h / 2 - 3, name, size=12.5, fill=TEXT, weight="600"))
        out.append(_text(left + pad, top + h / 2 + 12, esc(_fit(detail, w - 2 * pad, 10.5))))
    else:
        out.append(_text(left + pad, top + 16, name, size=12.5, fill=TEXT, weight="600"))
        colour = STATUS_COLOURS.get(status, "#94a3b8")
        out.append(f'<circle cx="{left + w - 12:.1f}" cy="{top + 12:.1f}" r="4" '
                   f'fill="{colour}"><title>{esc(status)}</title></circle>')
        # line 2: where it runs, and its rate on the right; the kind only when there is room
        # (the accent bar's colour says it too)
        rate = _rate(row.get("throughput"))
        where = f"{node['backend']}×{node['workers']}"
        room = w - pad - 10 - _width(rate, 10.5) - 5
        if kind != "processor" and _fits(f"{where} · {kind}", room, 10.5):
            where = f"{where} · {kind}"
        out.append(_text(left + pad, top + 29.5, esc(_fit(where, room, 10.5))))
        out.append(_text(left + w - pad + 2, top + 29.5, esc(rate), size=10.5, fill=TEXT,
                         anchor="end"))
        done = f"{_count(row.get('done'))} done"
        if kind == "producer":
            done = f"{_count(row.get('items_out'))} emitted"
        failed = int(row.get("failed") or 0)
        counts = esc(done)
        plain = done
        if failed:
            counts += f' · <tspan fill="{FAILED}" font-weight="600">{_count(failed)} failed</tspan>'
            plain += f" · {_count(failed)} failed"
        cancelled = int(row.get("cancelled") or 0)
        more = f" · {_count(cancelled)} cancelled"
        if cancelled and _fits(plain + more, w - 2 * pad, 10.5):
            counts += f'<tspan fill="{STATUS_COLOURS["cancelled"]}">{esc(more)}</tspan>'
        out.append(_text(left + pad, top + 43, counts, size=10.5, fill=TEXT))
        if row.get("p50_ms") is not None:
            latency = f"p50 {_ms(row.get('p50_ms'))} · p99 {_ms(row.get('p99_ms'))}"
            out.append(_text(left + pad, top + 55, esc(_fit(latency, w - 2 * pad, 10)),
                             size=10))
        if kind != "producer":
            size = row.get("queue_size") or 0
            fill = min(max((row.get("queue_depth") or 0) / size, 0.0), 1.0) if size else 0.0
            bar_w = w - 2 * pad
            out.append(f'<rect x="{left + pad:.1f}" y="{top + h - 6:.1f}" width="{bar_w:.1f}" '
                       f'height="3" rx="1.5" fill="#e2e8f0"/>')
            if fill > 0:
                tint = BOTTLENECK if fill > 0.8 else "#2563eb"
                out.append(f'<rect x="{left + pad:.1f}" y="{top + h - 6:.1f}" '
                           f'width="{max(bar_w * fill, 2):.1f}" height="3" rx="1.5" '
                           f'fill="{tint}"/>')
    out.append("</g>")
    return out


def render_svg(graph: Mapping[str, Any], stats: Mapping[str, Mapping[str, Any]] | None = None,
               *, bottleneck: str | None = None, title: str | None = None) -> str:
    """Draw a laid-out ``graph`` trait as a standalone SVG document.

    Parameters
    ----------
    graph : dict
        The SPEC §13 ``graph`` trait (:func:`~minigun_nb.display.layout.graph_trait`).
    stats : dict, optional
        Stage path -> the ``stats`` trait's columns; each box then shows done/failed,
        items/s, p50/p99, a status dot and a queue-fill bar.
    bottleneck : str, optional
        The path of the stage to highlight (thick orange border).
    title : str, optional
        The drawing's accessible title (``<title>`` and ``aria-label``).

    Returns
    -------
    str
        An ``<svg xmlns="http://www.w3.org/2000/svg" ...>`` document.

    Examples
    --------
    >>> from minigun_nb.display.layout import trait_from
    >>> g = trait_from([{"id": "a", "label": "a", "kind": "producer", "backend": "thread",
    ...                  "workers": 1}], [])
    >>> render_svg(g).startswith('<svg xmlns="http://www.w3.org/2000/svg"')
    True
    """
    width, height = float(graph["width"]), float(graph["height"])
    w, h = float(graph["node_width"]), float(graph["node_height"])
    digest = hashlib.sha1(json.dumps([graph, stats, bottleneck], sort_keys=True, default=str
                                     ).encode()).hexdigest()[:10]
    arrow = f"mg-arrow-{digest}"  # unique per drawing: several SVGs inline in one page
    label = title or f"Pipeline DAG: {len(graph['nodes'])} stages"
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.1f} {height:.1f}" font-family="{esc(FONT)}" role="img" '
        f'aria-label="{esc(label)}">',
        f"<title>{esc(label)}</title>",
        f'<defs><marker id="{arrow}" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="9" '
        f'markerHeight="9" markerUnits="userSpaceOnUse" orient="auto">'
        f'<path d="M0,0 L10,5 L0,10 z" fill="{EDGE}"/></marker></defs>',
    ]
    for edge in graph["edges"]:
        pts = " ".join(f"{float(x):.1f},{float(y):.1f}" for x, y in edge["points"])
        dash = ' stroke-dasharray="5 4"' if edge.get("kind") == "routes" else ""
        out.append(f'<polyline points="{pts}" fill="none" stroke="{EDGE}" stroke-width="1.6" '
                   f'stroke-linejoin="round"{dash} marker-end="url(#{arrow})">'
                   f"<title>{esc(edge['source'])} → {esc(edge['target'])} "
                   f"({esc(edge.get('kind', 'default'))})</title></polyline>")
    for node in graph["nodes"]:
        row = stats.get(str(node["id"])) if stats else None
        out.extend(_node(node, w, h, row, node["id"] == bottleneck))
    out.append("</svg>")
    return "\n".join(out)


def svg_data_uri(svg: str) -> str:
    """``svg`` as a ``data:image/svg+xml;base64,...`` URI, for an ``<img src>`` that survives
    JupyterLab's sanitizer, nbconvert and GitHub.

    Examples
    --------
    >>> svg_data_uri("<svg/>")
    'data:image/svg+xml;base64,PHN2Zy8+'
    """
    import base64

    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode("utf-8")).decode("ascii")
