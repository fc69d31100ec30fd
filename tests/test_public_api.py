"""The public API is ``minigun_nb.__all__``; changing it is a decision, so it is pinned here."""

from __future__ import annotations

import pytest

import minigun_nb as mg

pytestmark = pytest.mark.timeout(30)

PUBLIC = [
    "AmbiguousStageError",
    "CapacityWarning",
    "CycleError",
    "DefinitionError",
    "DuplicateStageError",
    "Edge",
    "Graph",
    "MinigunError",
    "Pipeline",
    "PipelineRunningError",
    "RunHandle",
    "RunResult",
    "Stage",
    "StageError",
    "UnknownStageError",
    "WorkerCrashed",
    "__version__",
    "accumulator",
    "batch",
    "consumer",
    "debatch",
    "processor",
    "producer",
    "rebatch",
    "shutdown",
    "stage",
    "to",
]


def test_all_is_pinned():
    assert sorted(mg.__all__) == PUBLIC


def test_every_public_name_exists():
    for name in mg.__all__:
        assert hasattr(mg, name), name


def test_edge_is_a_named_tuple_of_source_target_kind():
    edge = mg.Edge("a", "b", "default")
    assert edge == ("a", "b", "default")
    assert edge._fields == ("source", "target", "kind")
