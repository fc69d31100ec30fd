"""What people and machines read: result.stats (to_frame), to_json (to_dict), summary()."""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone

import pandas as pd
import pytest

from minigun_nb.observe.events import (
    ItemsReceived,
    ItemsTaken,
    RunFinished,
    StageFinished,
    StageStarted,
)
from minigun_nb.observe.histogram import LatencyHistogram
from minigun_nb.observe.snapshot import STATS_COLUMNS, RunSnapshot, RunTotals, StageSnapshot
from minigun_nb.observe.stats import StatsCollector
from minigun_nb.observe.summary import summary_text

from ._helpers import FakeClock, chunk, producer, stage, stage_snapshot

PINNED_COLUMNS = [
    "kind", "backend", "workers", "status", "items_in", "items_out", "done", "filtered",
    "failed", "cancelled", "retried", "in_flight", "queue_depth", "queue_size", "busy",
    "throughput", "p50_ms", "p90_ms", "p95_ms", "p99_ms", "started", "finished", "elapsed_s",
]  # fmt: skip


def finished_run(make_stats, clock: FakeClock) -> StatsCollector:  # type: ignore[no-untyped-def]
    """gen -> clean (4 process workers, the bottleneck) -> save; 'save' never tracked latency."""
    stats = make_stats(
        producer("gen"),
        stage("clean", backend="process", workers=4, queue_size=1000),
        stage("save", queue_size=1000, track_latency=False),
    )
    for path in ("gen", "clean", "save"):
        stats.publish(StageStarted(path, 0.0))
    stats.publish(chunk("gen", emitted=1000, busy_s=0.1))
    stats.publish(ItemsReceived("clean", 1000))
    stats.publish(ItemsTaken("clean", 1000))
    clock.set(2.0)
    stats.publish(
        chunk(
            "clean", 990, failed=10, filtered=5, retried=12, busy_s=8.0, latencies=(0.008,) * 1000
        )
    )
    stats.publish(ItemsReceived("save", 985))
    stats.publish(ItemsTaken("save", 985))
    stats.publish(chunk("save", 985, emitted=0, filtered=985, busy_s=0.5))
    for path in ("gen", "clean", "save"):
        stats.publish(StageFinished(path, 2.0, "done"))
    stats.publish(RunFinished(2.0, "done"))
    return stats


# -- to_frame ----------------------------------------------------------------------------------


def test_to_frame_columns_are_pinned(make_stats, clock) -> None:
    frame = finished_run(make_stats, clock).snapshot().to_frame()
    assert list(frame.columns) == PINNED_COLUMNS == list(STATS_COLUMNS)
    assert frame.index.name == "stage"
    assert list(frame.index) == ["gen", "clean", "save"]


def test_to_frame_values_and_dtypes(make_stats, clock) -> None:
    frame = finished_run(make_stats, clock).snapshot().to_frame()
    clean = frame.loc["clean"]
    assert (clean["kind"], clean["backend"], clean["workers"], clean["status"]) == (
        "processor",
        "process",
        4,
        "done",
    )
    assert (clean["items_in"], clean["items_out"], clean["done"], clean["failed"]) == (
        1000,
        985,  # 990 done, 5 of them filtered
        990,
        10,
    )
    assert (clean["busy"], clean["throughput"], clean["elapsed_s"]) == (1.0, 495.0, 2.0)
    assert clean["p50_ms"] == pytest.approx(8.0, rel=0.03)
    assert clean["started"] == pd.Timestamp("2024-01-01T00:00:00Z")
    assert clean["finished"] == pd.Timestamp("2024-01-01T00:00:02Z")
    assert math.isnan(frame.loc["save", "p99_ms"])  # latency not tracked: NaN

    for column in ("workers", "items_in", "done", "in_flight", "queue_size"):
        assert frame[column].dtype == "int64", column
    for column in ("busy", "throughput", "p50_ms", "p99_ms", "elapsed_s"):
        assert frame[column].dtype == "float64", column
    for column in ("started", "finished"):
        assert str(frame[column].dtype) == "datetime64[ns, UTC]", column


def test_a_pending_stage_has_missing_times_not_errors(make_stats) -> None:
    frame = make_stats(stage("a")).snapshot().to_frame()
    assert frame.loc["a", "status"] == "pending"
    assert pd.isna(frame.loc["a", "started"]) and pd.isna(frame.loc["a", "finished"])
    assert str(frame["started"].dtype) == "datetime64[ns, UTC]"


def test_an_empty_run_gives_an_empty_frame_with_the_columns() -> None:
    frame = RunSnapshot.empty().to_frame()
    assert list(frame.columns) == PINNED_COLUMNS and len(frame) == 0
    assert frame.index.name == "stage"


# -- to_dict -----------------------------------------------------------------------------------


def test_to_dict_is_json_serialisable(make_stats, clock) -> None:
    snap = finished_run(make_stats, clock).snapshot()
    data = json.loads(json.dumps(snap.to_dict(), allow_nan=False))
    assert data["run_id"] == "r1" and data["status"] == "done"
    assert data["bottleneck"] == "clean"
    assert data["hint"] == "`clean` is the bottleneck: 100% busy with 4 workers; try workers=8"
    assert data["totals"] == snap.totals.to_dict()
    assert data["started"] == "2024-01-01T00:00:00+00:00"
    assert [s["path"] for s in data["stages"]] == ["gen", "clean", "save"]
    clean = data["stages"][1]
    assert set(PINNED_COLUMNS) <= set(clean)
    assert LatencyHistogram.from_dict(clean["latency"]) == snap.stage("clean").latency
    save = data["stages"][2]
    assert (save["p50_ms"], save["latency"]) == (None, None)


def test_to_dict_of_a_running_snapshot(make_stats) -> None:
    stats = make_stats(stage("a"))
    stats.publish(ItemsReceived("a", 3))
    json.dumps(stats.snapshot().to_dict(), allow_nan=False)


# -- summary_text ------------------------------------------------------------------------------


def test_summary_text_is_a_clean_table(make_stats, clock) -> None:
    snap = finished_run(make_stats, clock).snapshot()
    text = summary_text(snap)
    assert text == snap.summary()
    lines = text.splitlines()
    assert all(line == line.rstrip() for line in lines)
    assert not text.endswith("\n")
    assert lines[0].split() == [
        "stage", "status", "in", "out", "failed", "filtered", "busy", "%", "items/s",
        "p50", "ms", "p99", "ms",
    ]  # fmt: skip
    for path in ("gen", "clean", "save"):
        assert any(line.startswith(path + " ") for line in lines[1:4])
    # Every row has the same width up to its last column (numbers are right-aligned).
    assert len({len(line) for line in lines[:4]}) == 1
    assert lines[2].split() == [
        "clean",
        "done",
        "1000",
        "985",
        "10",
        "5",
        "100",
        "495",
        "8.00",
        "8.00",
    ]
    assert (
        lines[4]
        == "run r1 done in 2.00s: 1000 in, 0 out, 10 failed, 990 filtered, 0 cancelled, "
        "12 retried"
    )
    assert lines[5] == "`clean` is the bottleneck: 100% busy with 4 workers; try workers=8"
    assert len(lines) == 6


def test_summary_text_without_a_bottleneck_has_no_hint_line() -> None:
    snap = RunSnapshot(
        run_id="",
        status="running",
        elapsed_s=125.0,
        stages=(stage_snapshot("a", items_in=123_456, throughput=45_678.0, p50_ms=0.0123),),
        totals=RunTotals(done=123_456),
        bottleneck=None,
        hint="",
    )
    lines = summary_text(snap).splitlines()
    assert lines[1].split() == ["a", "running", "123k", "0", "0", "0", "0", "45.7k", "0.012", "-"]
    assert (
        lines[2] == "run running for 2m05s: 123k in, 0 out, 0 failed, 0 filtered, 0 cancelled, "
        "0 retried"
    )
    assert len(lines) == 3


def test_long_stage_paths_widen_the_first_column() -> None:
    stages: tuple[StageSnapshot, ...] = (
        stage_snapshot("a"),
        stage_snapshot("inner/very_long_stage_name"),
    )
    snap = RunSnapshot("r", "done", 1.0, stages, RunTotals.of(stages), None, "")
    lines = summary_text(snap).splitlines()
    assert lines[1].index("running") == lines[2].index("running")
    assert all(line == line.rstrip() for line in lines)


def test_wall_clock_times_are_utc_datetimes(make_stats, clock) -> None:
    snap = finished_run(make_stats, clock).snapshot()
    assert snap.started == datetime(2024, 1, 1, tzinfo=timezone.utc)
    assert snap.stage("gen").finished == datetime(2024, 1, 1, 0, 0, 2, tzinfo=timezone.utc)
