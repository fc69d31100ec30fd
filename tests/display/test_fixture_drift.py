"""The JS tests read tests/fixtures/dashboard_state.json: it must keep the serializer's shapes.

The fixture's values tell a story the JS tests rely on (a stalled stage, a hostile stage
name, a bottleneck); its *shapes* (every key of every trait, node, edge, stats row and error
row, and the JSON type of each value) must be exactly what the Python side sends. This test
builds the four traits from a real run through the same code the widget uses and fails when
the two drift apart.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

import minigun_nb as mg

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "dashboard_state.json"

pytestmark = pytest.mark.timeout(60)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    return "object"


def _live_state() -> dict[str, Any]:
    pipe = mg.Pipeline("etl")

    @pipe.producer
    def gen():
        yield from range(30)

    @pipe.processor(to=["work", "save"])
    def parse(x):
        if x == 4:
            raise ValueError("bad <img src=x onerror=alert(1)>")
        return x

    with pipe.pipeline("inner"):
        @pipe.processor(workers=2)
        def work(x):
            time.sleep(0.001)
            return x

    @pipe.consumer
    def save(x):
        return None

    handle = pipe.start(display="widget")
    handle.wait(30)
    assert handle.join_displays()
    dash = handle.widget
    return {"graph": dash.graph, "stats": dash.stats, "run": dash.run, "errors": dash.errors}


def _check_object(path: str, live: dict, fixed: dict, problems: list[str]) -> None:
    if set(live) != set(fixed):
        problems.append(f"{path}: keys differ: only live {sorted(set(live) - set(fixed))}, "
                        f"only fixture {sorted(set(fixed) - set(live))}")
    for key in set(live) & set(fixed):
        a, b = _kind(live[key]), _kind(fixed[key])
        if "null" not in (a, b) and a != b:
            problems.append(f"{path}.{key}: {a} in the serializer, {b} in the fixture")


def test_the_fixture_has_the_serializers_shapes():
    fixed = json.loads(FIXTURE.read_text())
    live = json.loads(json.dumps(_live_state(), allow_nan=False))
    problems: list[str] = []
    assert set(live) == set(fixed) == {"graph", "stats", "run", "errors"}
    _check_object("graph", live["graph"], fixed["graph"], problems)
    _check_object("graph.nodes[]", live["graph"]["nodes"][0], fixed["graph"]["nodes"][0],
                  problems)
    _check_object("graph.edges[]", live["graph"]["edges"][0], fixed["graph"]["edges"][0],
                  problems)
    assert all(len(p) == 2 for e in fixed["graph"]["edges"] for p in e["points"])
    live_row = next(iter(live["stats"].values()))
    for path, row in fixed["stats"].items():
        _check_object(f"stats[{path!r}]", live_row, row, problems)
    _check_object("run", live["run"], fixed["run"], problems)
    _check_object("run.totals", live["run"]["totals"], fixed["run"]["totals"], problems)
    assert live["errors"] and fixed["errors"]
    for row in fixed["errors"]:
        _check_object(f"errors[{row.get('id')}]", live["errors"][0], row, problems)
    assert not problems, "\n".join(problems)
    # every stage of the graph has a stats row, in both
    for state in (live, fixed):
        assert {n["id"] for n in state["graph"]["nodes"]} == set(state["stats"])
