"""Static diagrams of a resolved graph: mermaid, Graphviz dot, and the notebook repr."""

from __future__ import annotations

import html
import re
from typing import TYPE_CHECKING, Any

from ..core.stage import OPERATOR_KINDS

if TYPE_CHECKING:
    from ..core.graph import Graph

_SHAPES = {  # mermaid node shapes by kind
    "producer": ('(["', '"])'),
    "consumer": ('[/"', '"/]'),
    "batch": ('{{"', '"}}'),
    "debatch": ('{{"', '"}}'),
    "rebatch": ('{{"', '"}}'),
}
_DOT_SHAPES = {"producer": "ellipse", "consumer": "parallelogram", "batch": "hexagon",
               "debatch": "hexagon", "rebatch": "hexagon"}
_ARROWS = {"default": "-->", "explicit": "==>", "parallel": "-->", "nested": "-.->"}


def node_id(path: str) -> str:
    """A diagram-safe identifier for a stage path (stable, unique per path).

    ``_`` is doubled and any other character outside ``[0-9A-Za-z]`` becomes ``_<hex>_``, so
    the path ``"a/b"`` (``n_a_2f_b``) and the name ``"a_2f_b"`` (``n_a__2f__b``) never meet.
    """
    return "n_" + re.sub(
        r"[^0-9A-Za-z]", lambda m: "__" if m.group() == "_" else f"_{ord(m.group()):x}_", path
    )


def _detail(graph: Graph, path: str) -> str:
    """The second line of a stage's label: its kind, ``backend×workers``, ``dynamic``."""
    spec = graph.stages[path]
    backend = spec.options["backend"]
    workers = spec.options["workers"]
    detail = spec.kind if spec.kind != "processor" else ""
    if spec.kind not in OPERATOR_KINDS:
        extra = f"{backend}×{workers}" if (backend, workers) != ("thread", 1) else ""
        detail = " ".join(x for x in (detail, extra) if x)
    if spec.dynamic:
        detail = (detail + " dynamic").strip()
    return detail


def _label(graph: Graph, path: str) -> str:
    """A mermaid label: the name as text, the detail small on a second line."""
    name = _mermaid_text(graph.stages[path].name)
    detail = _detail(graph, path)
    return f"{name}<br/><small>{detail}</small>" if detail else name


def _mermaid_text(text: str) -> str:
    """A stage name as text inside a mermaid label: markup, quotes and line breaks coded."""
    out = text.replace("&", "#amp;").replace("<", "#lt;").replace(">", "#gt;")
    return out.replace('"', "#quot;").replace("\n", " ").replace("\r", " ")


def _dot_text(text: str) -> str:
    """Text inside a dot "string": backslashes and quotes escaped, line breaks as spaces."""
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ").replace("\r", " ")


def _groups(graph: Graph) -> dict[str, list[str]]:
    """Stage paths grouped by the (nested) pipeline that owns them."""
    out: dict[str, list[str]] = {}
    for path, spec in graph.stages.items():
        out.setdefault(spec.pipeline, []).append(path)
    return out


def to_mermaid(graph: Graph) -> str:
    """The graph as a mermaid ``flowchart LR`` definition.

    Examples
    --------
    >>> import minigun_nb as mg
    >>> pipe = mg.Pipeline([mg.producer(lambda: [1], name="gen"),
    ...                     mg.processor(lambda x: x, name="f")])
    >>> print(pipe.to_mermaid())
    flowchart LR
      n_gen(["gen<br/><small>producer</small>"])
      n_f["f"]
      n_gen --> n_f
    """
    lines = ["flowchart LR"]
    groups = _groups(graph)

    def emit(pp: str, indent: str) -> None:
        for path in groups.get(pp, []):
            left, right = _SHAPES.get(graph.stages[path].kind, ('["', '"]'))
            lines.append(f"{indent}{node_id(path)}{left}{_label(graph, path)}{right}")
        for sub in graph.pipelines:
            if (sub.rsplit("/", 1)[0] if "/" in sub else "") == pp:
                title = _mermaid_text(sub.rsplit("/", 1)[-1])
                lines.append(f'{indent}subgraph {node_id(sub)}_p["{title}"]')
                emit(sub, indent + "  ")
                lines.append(f"{indent}end")

    emit("", "  ")
    for e in graph.edges:
        lines.append(f"  {node_id(e.source)} {_ARROWS.get(e.kind, '-->')} {node_id(e.target)}")
    for path, spec in graph.stages.items():
        for target in spec.routes:
            lines.append(f"  {node_id(path)} -. routes .-> {node_id(target)}")
    return "\n".join(lines)


def to_dot(graph: Graph) -> str:
    """The graph as a Graphviz ``digraph`` (nested pipelines as clusters).

    Examples
    --------
    >>> import minigun_nb as mg
    >>> pipe = mg.Pipeline([mg.producer(lambda: [1], name="gen"),
    ...                     mg.processor(lambda x: x, name="f")])
    >>> "n_gen -> n_f" in pipe.to_dot()
    True
    """
    title = _dot_text(graph.name)
    lines = [f'digraph "{title}" {{', "  rankdir=LR;", "  node [shape=box];"]
    groups = _groups(graph)

    def emit(pp: str, indent: str) -> None:
        for path in groups.get(pp, []):
            spec = graph.stages[path]
            detail = _detail(graph, path)
            label = _dot_text(spec.name) + (f"\\n{_dot_text(detail)}" if detail else "")
            shape = _DOT_SHAPES.get(spec.kind, "box")
            style = ', style="dashed"' if spec.dynamic else ""
            lines.append(f'{indent}{node_id(path)} [label="{label}", shape={shape}{style}];')
        for sub in graph.pipelines:
            if (sub.rsplit("/", 1)[0] if "/" in sub else "") == pp:
                lines.append(f"{indent}subgraph cluster_{node_id(sub)} {{")
                name = _dot_text(sub.rsplit("/", 1)[-1])
                lines.append(f'{indent}  label="{name}";')
                emit(sub, indent + "  ")
                lines.append(f"{indent}}}")

    emit("", "  ")
    for e in graph.edges:
        style = {"explicit": " [style=bold]", "nested": " [style=dashed]"}.get(e.kind, "")
        lines.append(f"  {node_id(e.source)} -> {node_id(e.target)}{style};")
    for path, spec in graph.stages.items():
        for target in spec.routes:
            lines.append(f'  {node_id(path)} -> {node_id(target)} [style=dotted, label="routes"];')
    lines.append("}")
    return "\n".join(lines)


def to_text(graph: Graph) -> str:
    """A plain-text outline: one line per stage with where it sends."""
    lines = [f"Pipeline {graph.name!r}: {len(graph.stages)} stages"]
    for path, spec in graph.stages.items():
        downs = ", ".join(graph.downstreams[path]) or "(output)"
        opts = spec.options
        where = f"{opts['backend']}×{opts['workers']}"
        tag = " dynamic" if spec.dynamic else ""
        lines.append(f"  {path} [{spec.kind}, {where}{tag}] -> {downs}")
    return "\n".join(lines)


def describe(graph: Graph) -> str:
    """A one-sentence description of the DAG, for an image's ``alt`` text."""
    paths = list(graph.stages)
    shown = ", ".join(paths[:12]) + (f" and {len(paths) - 12} more" if len(paths) > 12 else "")
    n, m = len(paths), len(graph.edges)
    return (f"Diagram of pipeline {graph.name!r}: {n} stage{'s' if n != 1 else ''} ({shown}), "
            f"{m} edge{'s' if m != 1 else ''}")


def mimebundle(pipe: Any) -> dict[str, str]:
    """Notebook repr of a pipeline: its SVG diagram as a data-URI ``<img>``, text as fallback.

    An ``<img>`` rather than inline ``<svg>``: JupyterLab strips inline SVG from untrusted
    HTML (a reopened notebook), while classic Notebook, VS Code, nbconvert and GitHub show a
    data-URI image as it is.
    """
    from ..errors import DefinitionError
    from .layout import graph_trait
    from .svg import render_svg, svg_data_uri

    try:
        graph = pipe.graph()
    except DefinitionError as exc:  # still being defined: say what is missing, do not raise
        text = f"{pipe!r}\n(not runnable yet: {exc})"
        return {"text/plain": text, "text/html": f"<pre>{html.escape(text)}</pre>"}
    trait = graph_trait(graph)
    uri = svg_data_uri(render_svg(trait, title=f"Pipeline {graph.name!r}"))
    img = (f'<img src="{uri}" alt="{html.escape(describe(graph), quote=True)}" '
           f'width="{trait["width"]:.0f}" height="{trait["height"]:.0f}" '
           f'style="max-width:100%;height:auto">')
    return {"text/plain": to_text(graph), "text/html": img}
