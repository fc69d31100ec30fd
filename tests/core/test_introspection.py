"""SPEC 1 (introspection) and 7 (static diagram): looking at a pipeline without running it."""

from __future__ import annotations

import base64
import re
import xml.etree.ElementTree as ET

import pytest

import minigun_nb as mg
from minigun_nb.display.diagram import node_id

from ._helpers import edges

pytestmark = pytest.mark.timeout(30)



@pytest.fixture
def etl():
    pipe = mg.Pipeline("etl")

    @pipe.producer
    def read():
        yield 1

    with pipe.pipeline("inner"):

        @pipe.processor(workers=4)
        def load(item):
            return item

        @pipe.processor(backend="inline")
        def parse(item):
            return item

    pipe.batch(10)

    @pipe.consumer
    def save(item):
        pass

    return pipe


def test_stages_items_and_pipelines(etl):
    assert [s.name for s in etl.stages] == ["read", "batch", "save"]
    assert [p.name for p in etl.pipelines] == ["inner"]
    assert etl["read"].kind == "producer"
    assert etl["inner"] is etl.pipelines[0]
    assert etl["inner/load"].options == {"workers": 4}
    assert etl["etl/inner/load"] is etl["inner/load"]  # the root's name may lead the path
    assert etl["inner"]["parse"] is etl["inner/parse"]
    assert "inner/parse" in etl and "nope" not in etl
    assert len(etl) == 3
    assert repr(etl) == "<Pipeline 'etl': 4 stages>"


def test_an_unknown_item_lists_the_known_names(etl):
    with pytest.raises(
        KeyError, match=r"no stage 'nope' in pipeline 'etl'; known: 'read', 'inner'"
    ):
        etl["nope"]
    with pytest.raises(KeyError):
        etl["read/x"]  # a stage is not a pipeline


def test_edges_are_relative_to_the_pipeline_asked(etl):
    assert edges(etl) == [
        ("read", "inner/load", "nested"),
        ("inner/load", "inner/parse", "default"),
        ("inner/parse", "batch", "nested"),
        ("batch", "save", "default"),
    ]
    inner = etl["inner"]
    assert edges(inner) == [("load", "parse", "default")]
    graph = inner.graph()
    assert list(graph.stages) == ["load", "parse"]
    assert graph.name == "inner" and graph.prefix == "inner"
    assert graph.stages["load"].options["workers"] == 4


def test_the_graph_lists_entries_terminals_and_stage_specs(etl):
    graph = etl.graph()
    assert graph.name == "etl"
    assert list(graph.stages) == ["read", "inner/load", "inner/parse", "batch", "save"]
    spec = graph.stages["inner/load"]
    assert (spec.path, spec.name, spec.kind, spec.pipeline) == (
        "inner/load",
        "load",
        "processor",
        "inner",
    )
    assert spec.fn is etl["inner/load"].fn
    assert graph.stages["batch"].params["size"] == 10
    assert graph.producers == ("read",)
    assert graph.entries == ()
    assert graph.terminals == ("save",)
    assert graph.descendants("inner/parse") == {"batch", "save"}
    assert graph.full_path("inner/load") == "etl/inner/load"


def test_mermaid(etl):
    assert etl.to_mermaid() == "\n".join(
        [
            "flowchart LR",
            '  n_read(["read<br/><small>producer</small>"])',
            '  n_batch{{"batch<br/><small>batch</small>"}}',
            '  n_save[/"save<br/><small>consumer</small>"/]',
            '  subgraph n_inner_p["inner"]',
            '    n_inner_2f_load["load<br/><small>thread×4</small>"]',
            '    n_inner_2f_parse["parse<br/><small>inline×1</small>"]',
            "  end",
            "  n_read -.-> n_inner_2f_load",
            "  n_inner_2f_load --> n_inner_2f_parse",
            "  n_inner_2f_parse -.-> n_batch",
            "  n_batch --> n_save",
        ]
    )


def test_mermaid_shows_explicit_edges_dynamic_stages_and_routes():
    pipe = mg.Pipeline()
    pipe.producer(lambda: [1], name="gen", to="a")
    pipe.processor(lambda x: x, name="a", routes=["fix"])
    pipe.processor(lambda x: x, name="fix", dynamic=True)
    text = pipe.to_mermaid()
    assert "  n_gen ==> n_a" in text
    assert '  n_fix["fix<br/><small>dynamic</small>"]' in text
    assert "  n_a -. routes .-> n_fix" in text


def test_dot(etl):
    text = etl.to_dot()
    assert text.startswith('digraph "etl" {\n  rankdir=LR;')
    assert '  n_read [label="read\\nproducer", shape=ellipse];' in text
    assert "  subgraph cluster_n_inner {" in text
    assert '    label="inner";' in text
    assert '    n_inner_2f_load [label="load\\nthread×4", shape=box];' in text
    assert "  n_read -> n_inner_2f_load [style=dashed];" in text
    assert "  n_batch -> n_save;" in text
    assert text.endswith("}")


def test_diagram_ids_are_unique_per_path():
    assert node_id("a/b") != node_id("a_2f_b")
    assert node_id("inner") + "_p" != node_id("inner_p")
    assert node_id("load") == "n_load"


def test_notebook_repr_is_the_diagram(etl):
    bundle = etl._repr_mimebundle_()
    # an <img> of the SVG (JupyterLab strips inline <svg> from untrusted HTML), no markdown
    assert set(bundle) == {"text/plain", "text/html"}
    match = re.fullmatch(r'<img src="data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)" '
                         r'alt="([^"<>]+)" width="\d+" height="\d+" style="[^"<>]*">',
                         bundle["text/html"])
    assert match, bundle["text/html"][:200]
    svg = base64.b64decode(match.group(1)).decode()
    assert svg == etl.to_svg()
    assert ET.fromstring(svg).tag == "{http://www.w3.org/2000/svg}svg"
    assert match.group(2).startswith("Diagram of pipeline &#x27;etl&#x27;: 5 stages (read, ")
    assert bundle["text/plain"].splitlines() == [
        "Pipeline 'etl': 5 stages",
        "  read [producer, thread×1] -> inner/load",
        "  inner/load [processor, thread×4] -> inner/parse",
        "  inner/parse [processor, inline×1] -> batch",
        "  batch [batch, inline×1] -> save",
        "  save [consumer, thread×1] -> (output)",
    ]


def test_notebook_repr_of_an_unfinished_pipeline_explains_instead_of_raising():
    pipe = mg.Pipeline("wip")
    pipe.producer(lambda: [1], name="gen", to="later")
    bundle = pipe._repr_mimebundle_()
    assert "text/markdown" not in bundle
    assert bundle["text/plain"].startswith("<Pipeline 'wip': 1 stage>\n(not runnable yet: ")
    assert "no stage or pipeline named 'later'" in bundle["text/plain"]
