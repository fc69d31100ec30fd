"""The static forms: ``pipe.to_svg()``, the SVG with stats, and ``result.to_html()``."""

from __future__ import annotations

import base64
import json
import re
import xml.etree.ElementTree as ET
from datetime import datetime
from html.parser import HTMLParser

import pytest

import minigun_nb as mg
from minigun_nb.display.layout import graph_trait, trait_from
from minigun_nb.display.static import stage_stats_json
from minigun_nb.display.svg import render_svg

pytestmark = pytest.mark.timeout(60)

XSS = "<img src=x onerror=alert(1)>"
SVG_NS = "{http://www.w3.org/2000/svg}"
VOID = {"img", "br", "hr", "meta", "input", "wbr", "col", "area", "base", "link", "source"}


def _elements(svg: str) -> list[ET.Element]:
    return list(ET.fromstring(svg).iter())


def _assert_presentation_only(svg: str) -> ET.Element:
    root = ET.fromstring(svg)  # well-formed XML, or this raises
    assert root.tag == SVG_NS + "svg"
    assert svg.startswith('<svg xmlns="http://www.w3.org/2000/svg"')
    for el in root.iter():
        assert el.tag.startswith(SVG_NS), el.tag
        assert el.tag[len(SVG_NS):] not in ("style", "script", "foreignObject")
        for attr in el.attrib:
            assert attr not in ("class", "style") and not attr.startswith("on"), attr
    return root


def _texts(root: ET.Element) -> list[str]:
    return ["".join(el.itertext()) for el in root.iter(SVG_NS + "text")]


def _titles(root: ET.Element) -> list[str]:
    return [el.text or "" for el in root.iter(SVG_NS + "title")]


def _hostile_pipeline() -> mg.Pipeline:
    pipe = mg.Pipeline("etl")

    @pipe.producer
    def read():
        yield from range(40)

    @pipe.processor(workers=2, to=["clean", XSS, "inner"])
    def parse(x):
        return x

    @pipe.processor
    def clean(x):
        if x % 10 == 3:
            raise ValueError(f"bad {XSS} & co")
        return x

    pipe.processor(lambda x: x, name=XSS)

    with pipe.pipeline("inner"):
        @pipe.processor
        def enrich(x):
            return x

    @pipe.consumer(from_=["clean", XSS, "inner"])
    def save(x):
        return None

    return pipe


def test_to_svg_draws_every_stage_and_edge_with_presentation_attributes_only():
    pipe = _hostile_pipeline()
    svg = pipe.to_svg()
    root = _assert_presentation_only(svg)
    assert svg == render_svg(graph_trait(pipe.graph()), title="Pipeline 'etl'")
    titles = _titles(root)
    for path in pipe.graph().stages:
        assert any(t.startswith(f"{path} (") for t in titles), path
    lines = list(root.iter(SVG_NS + "polyline"))
    assert len(lines) == len(pipe.edges)
    marker = root.find(f".//{SVG_NS}marker")
    assert marker is not None
    assert all(line.get("marker-end") == f"url(#{marker.get('id')})" for line in lines)
    boxes = [r for r in root.iter(SVG_NS + "rect") if r.get("rx") == "8"]
    assert len(boxes) == len(pipe.graph().stages)
    assert not any("done" in t for t in _texts(root))  # no stats without a run


def test_hostile_names_come_out_as_text():
    pipe = mg.Pipeline([mg.producer(lambda: [1], name="a&b"),
                        mg.processor(lambda x: x, name=XSS)])
    svg = pipe.to_svg()
    root = _assert_presentation_only(svg)
    assert "<img" not in svg and "a&b" not in svg
    assert "a&b" in _texts(root)
    assert any(t.startswith(XSS + " (") for t in _titles(root))  # full name in the tooltip
    assert any(XSS.startswith(t.rstrip("…")) and t for t in _texts(root))
    assert not any(el.tag == SVG_NS + "img" for el in root.iter())


def test_characters_xml_cannot_hold_are_dropped():
    node = {"id": "bad\x01\x1bname", "label": "bad\x01\x1bname", "kind": "processor",
            "backend": "thread", "workers": 1}
    root = _assert_presentation_only(render_svg(trait_from([node], [])))
    assert "badname" in _texts(root)


def _row(**over):
    row = {"kind": "processor", "backend": "thread", "workers": 2, "status": "running",
           "items_in": 1500, "items_out": 1400, "done": 1234, "filtered": 0, "failed": 3,
           "cancelled": 0, "retried": 0, "in_flight": 10, "queue_depth": 50,
           "queue_size": 100, "busy": 0.5, "throughput": 512.0, "p50_ms": 1.25,
           "p99_ms": 8.0, "stalled": False}
    row.update(over)
    return row


def _two_stage_graph():
    nodes = [{"id": "gen", "label": "gen", "kind": "producer", "backend": "thread",
              "workers": 1},
             {"id": "work", "label": "work", "kind": "processor", "backend": "process",
              "workers": 4}]
    return trait_from(nodes, [("gen", "work", "default")])


def test_stats_show_counts_rate_latency_queue_fill_and_the_bottleneck():
    graph = _two_stage_graph()
    stats = {"gen": _row(kind="producer", items_out=2000, failed=0, queue_size=0,
                        p50_ms=None),
             "work": _row()}
    root = _assert_presentation_only(render_svg(graph, stats, bottleneck="work"))
    texts = _texts(root)
    assert "1234 done · 3 failed" in texts
    assert "2000 emitted" in texts
    assert any("512/s" in t for t in texts)
    assert "p50 1.2ms · p99 8.0ms" in texts
    assert "process×4" in texts and "thread×1 · producer" in texts
    boxes = {r.get("x"): r for r in root.iter(SVG_NS + "rect") if r.get("rx") == "8"}
    left_work = f"{graph['nodes'][1]['x'] - 85:.1f}"
    assert boxes[left_work].get("stroke") == "#ea580c"
    assert boxes[left_work].get("stroke-width") == "3.5"
    assert all(r.get("stroke") != "#ea580c" for x, r in boxes.items() if x != left_work)
    bars = [r for r in root.iter(SVG_NS + "rect") if r.get("height") == "3"]
    assert len(bars) == 2  # the producer has no input queue: one track and one fill
    track, fill = bars
    assert float(fill.get("width")) == pytest.approx(float(track.get("width")) / 2, abs=0.1)


def _run(pipe: mg.Pipeline, **kw):
    return pipe.start(display="none", **kw).wait(timeout=60)


class _Page(HTMLParser):
    """Checks that every tag is closed in order and gathers what a reader would see."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.headers: list[str] = []
        self._in_th = False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag == "th":
            self._in_th = True
            self.headers.append("")
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag):
        assert tag not in VOID, f"</{tag}>"
        assert self.stack and self.stack[-1] == tag, (self.stack[-3:], tag)
        self.stack.pop()
        if tag == "th":
            self._in_th = False

    def handle_data(self, data):
        self.text.append(data)
        if self._in_th:
            self.headers[-1] += data


def _parse(page: str) -> _Page:
    parser = _Page()
    parser.feed(page)
    parser.close()
    assert parser.stack == [], parser.stack
    for tag, attrs in parser.tags:
        assert tag not in ("script", "style", "svg", "iframe", "object"), tag
        for name in attrs:
            assert name != "class" and not name.startswith("on"), (tag, name)
    return parser


def _dag_image(parser: _Page) -> ET.Element:
    imgs = [attrs for tag, attrs in parser.tags if tag == "img"]
    assert len(imgs) == 1
    src, alt = imgs[0]["src"], imgs[0]["alt"]
    assert src.startswith("data:image/svg+xml;base64,")
    assert alt and alt.startswith("Diagram of pipeline ")
    return _assert_presentation_only(base64.b64decode(src.split(",", 1)[1]).decode())


@pytest.mark.timeout(60)
def test_static_dashboard_of_a_run_with_errors_and_a_hostile_stage():
    pipe = _hostile_pipeline()
    result = _run(pipe)
    assert len(result.errors) == 4
    page = result.to_html()
    assert result._repr_html_() == page
    assert XSS not in page  # stage name, message and item repr all escaped
    parser = _parse(page)
    text = "".join(parser.text)
    assert XSS in text and "etl" in text and "done" in text
    svg = _dag_image(parser)
    assert len(list(svg.iter(SVG_NS + "polyline"))) == len(pipe.edges)
    assert any("done" in t for t in _texts(svg))
    # the stage table: every column of result.stats, one row per stage
    assert parser.headers == ["stage", *result.stats.columns]
    rows = [attrs for tag, attrs in parser.tags if tag == "tr"]
    assert len(rows) == 1 + len(result.stats)
    # one <details> per error row, its summary "stage · exc_type · message"
    assert sum(1 for tag, _ in parser.tags if tag == "details") == 4
    assert f"clean · ValueError · bad {XSS} & co" in text
    assert "Traceback (most recent call last)" in text


@pytest.mark.timeout(60)
def test_static_dashboard_of_a_clean_run():
    pipe = mg.Pipeline([mg.producer(lambda: range(5), name="gen"),
                        mg.processor(lambda x: x * 2, name="double", workers=2)])
    result = _run(pipe)
    parser = _parse(result.to_html())
    assert not any(tag == "details" for tag, _ in parser.tags)
    assert "errors" not in "".join(parser.text)
    # the header counts like the live run line: what the pipeline finished
    assert "5 done · 0 failed · " in "".join(parser.text)
    assert "· 5 outputs" in "".join(parser.text)
    svg = _dag_image(parser)
    assert "5 done" in _texts(svg)
    assert parser.headers[1:] == list(result.stats.columns)


@pytest.mark.timeout(60)
def test_static_dashboard_caps_the_error_rows():
    def boom(x):
        raise RuntimeError(f"no {x}")

    result = _run(mg.Pipeline([mg.processor(boom, name="boom")]), items=range(60))
    parser = _parse(result.to_html())
    assert sum(1 for tag, _ in parser.tags if tag == "details") == 50
    assert "and 10 more" in "".join(parser.text)


@pytest.mark.timeout(60)
def test_static_dashboard_of_a_failed_run():
    def boom(x):
        raise KeyError(XSS)

    pipe = mg.Pipeline([mg.processor(boom, name="boom", on_error="raise")])
    result = _run(pipe, items=[1])
    assert not result.ok and result.status == "failed"
    page = result.to_html()
    assert XSS not in page
    parser = _parse(page)
    text = "".join(parser.text)
    assert "failed" in text and "run failed:" in text
    assert sum(1 for tag, _ in parser.tags if tag == "details") == len(result.errors) >= 1
    _dag_image(parser)


@pytest.mark.timeout(60)
def test_stage_stats_json_is_strict_json():
    result = _run(mg.Pipeline([mg.producer(lambda: range(3), name="gen"),
                               mg.processor(lambda x: x, name="f")]))
    for stage in result.snapshot.stages:
        row = stage_stats_json(stage)
        assert list(row)[:len(result.stats.columns)] == list(result.stats.columns)
        assert json.loads(json.dumps(row, allow_nan=False)) == row
        assert isinstance(datetime.fromisoformat(row["started"]), datetime)
    gen = stage_stats_json(result.snapshot.stage("gen"))
    assert gen["p50_ms"] is None and gen["items_out"] == 3


def test_a_pipeline_that_cannot_resolve_still_has_a_repr():
    pipe = mg.Pipeline("wip")
    pipe.producer(lambda: [1], name="gen", to="later")
    bundle = pipe._repr_mimebundle_()
    assert re.fullmatch(r"<pre>[^<>]*</pre>", bundle["text/html"], flags=re.S)


@pytest.mark.timeout(60)
def test_static_dashboard_draws_the_layout_of_the_live_one():
    pipe = mg.Pipeline("crawl")
    pipe.producer(lambda: range(4), name="seeds")

    @pipe.processor(routes=["audit"])
    def fetch(x):
        if x == 2:
            yield mg.to("audit", x)
        yield x

    @pipe.consumer(dynamic=True)
    def audit(x):
        return None

    result = _run(pipe)
    assert result.graph is not None
    trait = graph_trait(pipe.graph())
    assert [e["kind"] for e in trait["edges"]] == ["default", "routes"]
    drawn = _dag_image(_parse(result.to_html()))
    points = [line.get("points") for line in drawn.iter(SVG_NS + "polyline")]
    assert points == [" ".join(f"{x:.1f},{y:.1f}" for x, y in e["points"])
                      for e in trait["edges"]]
    assert drawn.iter(SVG_NS + "polyline").__next__().get("stroke-dasharray") is None
    assert [line.get("stroke-dasharray") for line in drawn.iter(SVG_NS + "polyline")][1]

    # a result without its graph is drawn from its snapshot's stages and edges
    result.graph = None
    bare = _dag_image(_parse(result.to_html()))
    assert len(list(bare.iter(SVG_NS + "polyline"))) == len(pipe.edges) == 1
    assert sum(1 for r in bare.iter(SVG_NS + "rect") if r.get("rx") == "8") == 3
