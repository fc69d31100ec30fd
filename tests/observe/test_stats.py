"""Folding events into snapshots: hand-written event sequences, explicit times, exact numbers.

Each test tells a small story: what the runtime published and when (on a fake clock), and
what a display reading the snapshot at that moment must see.
"""

from __future__ import annotations

import dataclasses
import logging
from datetime import datetime, timedelta, timezone

import pytest

from minigun_nb.observe.events import (
    ItemsCancelled,
    ItemsReceived,
    ItemsTaken,
    RunFinished,
    RunStarted,
    StageFinished,
    StageStarted,
)
from minigun_nb.observe.histogram import RELATIVE_ERROR

from ._helpers import FakeClock, chunk, producer, stage

START_2024 = datetime(2024, 1, 1, tzinfo=timezone.utc)


def conserved(s) -> bool:  # type: ignore[no-untyped-def]
    return s.items_in == s.done + s.failed + s.cancelled + s.in_flight


# -- counts --------------------------------------------------------------------------------------


def test_counts_follow_the_conservation_law_while_running_and_after(make_stats, clock) -> None:
    stats = make_stats(stage("clean", workers=2))
    stats.publish(StageStarted("clean", 0.0))
    stats.publish(ItemsReceived("clean", 40))
    stats.publish(ItemsTaken("clean", 10))
    clock.set(1.0)
    stats.publish(chunk("clean", 8, failed=1, filtered=2, emitted=6, retried=3, busy_s=1.0))

    s = stats.snapshot().stage("clean")
    assert (s.items_in, s.done, s.failed, s.cancelled, s.in_flight) == (40, 8, 1, 0, 31)
    assert (s.items_out, s.filtered, s.retried) == (6, 2, 3)
    assert conserved(s)

    clock.set(2.0)
    stats.publish(ItemsCancelled("clean", 30, queued=30))
    stats.publish(chunk("clean", 1))
    stats.publish(StageFinished("clean", 2.0, "cancelled"))

    s = stats.snapshot().stage("clean")
    assert (s.items_in, s.done, s.failed, s.cancelled, s.in_flight) == (40, 9, 1, 30, 0)
    assert s.queue_depth == 0
    assert conserved(s)


def test_queue_depth_is_received_minus_taken_minus_cancelled_while_queued(make_stats) -> None:
    stats = make_stats(stage("load", queue_size=50))
    stats.publish(ItemsReceived("load", 30))
    assert stats.snapshot().stage("load").queue_depth == 30
    stats.publish(ItemsTaken("load", 12))
    assert stats.snapshot().stage("load").queue_depth == 18
    stats.publish(ItemsCancelled("load", 10, queued=8))  # 2 were already in a worker's hands
    s = stats.snapshot().stage("load")
    assert (s.queue_depth, s.queue_size, s.in_flight, s.cancelled) == (10, 50, 20, 10)


def test_a_chunk_reported_before_its_items_arrive_never_shows_negative_counts(make_stats) -> None:
    # Two runtime threads can publish out of order; the snapshot clips the transient.
    stats = make_stats(stage("clean"))
    stats.publish(chunk("clean", 5))
    s = stats.snapshot().stage("clean")
    assert (s.in_flight, s.queue_depth) == (0, 0)
    stats.publish(ItemsReceived("clean", 5))
    stats.publish(ItemsTaken("clean", 5))
    s = stats.snapshot().stage("clean")
    assert (s.in_flight, s.queue_depth) == (0, 0)
    assert conserved(s)


def test_a_producer_has_no_input_and_its_rate_counts_emissions(make_stats, clock) -> None:
    stats = make_stats(producer("gen"), stage("clean"))
    stats.publish(StageStarted("gen", 0.0))
    clock.set(1.0)
    stats.publish(chunk("gen", emitted=100, busy_s=0.5))
    s = stats.snapshot().stage("gen")
    assert (s.items_in, s.items_out, s.done, s.in_flight, s.queue_depth) == (0, 100, 0, 0, 0)
    assert s.throughput == 100.0
    assert s.is_producer
    clock.set(4.0)
    stats.publish(StageFinished("gen", 4.0, "done"))
    s = stats.snapshot().stage("gen")
    assert (s.throughput, s.throughput_overall, s.busy) == (25.0, 25.0, 0.125)


def test_totals_sum_every_stage(make_stats) -> None:
    stats = make_stats(producer("gen"), stage("a"), stage("b"))
    stats.publish(chunk("gen", emitted=10))
    stats.publish(ItemsReceived("a", 10))
    stats.publish(chunk("a", 7, failed=3, filtered=2, retried=4))
    stats.publish(ItemsReceived("b", 5))
    stats.publish(chunk("b", 4))
    totals = stats.snapshot().totals
    assert totals.to_dict() == {
        "items_in": 15,
        "items_out": 10 + 5 + 4,
        "done": 11,
        "filtered": 2,
        "failed": 3,
        "cancelled": 0,
        "retried": 4,
        "in_flight": 1,
    }


# -- busy and throughput -----------------------------------------------------------------------


def test_busy_and_throughput_over_the_recent_window_while_running(make_stats, clock) -> None:
    stats = make_stats(stage("clean", workers=2), window=2.0)
    stats.publish(StageStarted("clean", 0.0))
    stats.publish(ItemsReceived("clean", 100))

    # One second in: the window is as long as the stage's life.
    clock.set(1.0)
    stats.publish(chunk("clean", 8, busy_s=1.0))
    s = stats.snapshot().stage("clean")
    assert (s.busy, s.throughput, s.elapsed_s) == (0.5, 8.0, 1.0)

    # At 3.5 s the chunk of t=1.0 has left the 2 s window; only the new one counts.
    clock.set(3.5)
    stats.publish(chunk("clean", 10, busy_s=3.0))
    s = stats.snapshot().stage("clean")
    assert (s.busy, s.throughput) == (0.75, 5.0)
    assert s.throughput_overall == pytest.approx(18 / 3.5)

    # Nothing for a while: the recent rates fall to zero, the overall rate does not.
    s = stats.snapshot(now=10.0).stage("clean")
    assert (s.busy, s.throughput, s.elapsed_s) == (0.0, 0.0, 10.0)
    assert s.throughput_overall == 1.8


def test_busy_over_the_lifetime_once_finished(make_stats, clock) -> None:
    stats = make_stats(stage("clean", workers=4))
    stats.publish(StageStarted("clean", 1.0))
    stats.publish(ItemsReceived("clean", 30))
    clock.set(2.0)
    stats.publish(chunk("clean", 10, busy_s=4.0))
    clock.set(5.0)
    stats.publish(chunk("clean", 10, failed=10, busy_s=6.0))
    stats.publish(StageFinished("clean", 6.0, "done"))
    s = stats.snapshot(now=100.0).stage("clean")
    # 10 worker-seconds out of 4 workers x 5 s; done per second; (done + failed) per second.
    assert (s.elapsed_s, s.busy, s.throughput, s.throughput_overall) == (5.0, 0.5, 4.0, 6.0)


def test_busy_is_clipped_to_one(make_stats, clock) -> None:
    # A long chunk reports all its busy seconds at once, possibly more than the window holds.
    stats = make_stats(stage("slow", workers=1))
    stats.publish(StageStarted("slow", 0.0))
    clock.set(1.0)
    stats.publish(chunk("slow", 1, busy_s=30.0))
    assert stats.snapshot().stage("slow").busy == 1.0


def test_queue_fill_is_time_weighted(make_stats, clock) -> None:
    stats = make_stats(stage("clean", queue_size=100))
    stats.publish(StageStarted("clean", 0.0))
    stats.publish(ItemsReceived("clean", 40))  # 40% full from 0 s ...
    clock.set(0.5)
    stats.publish(ItemsTaken("clean", 10))  # ... 30% from 0.5 s ...
    clock.set(3.5)
    stats.publish(ItemsTaken("clean", 10))  # ... 20% from 3.5 s ...
    clock.set(4.0)
    stats.publish(ItemsTaken("clean", 20))  # ... empty at 4 s
    stats.publish(StageFinished("clean", 4.0, "done"))
    # (0.4 * 0.5 + 0.3 * 3 + 0.2 * 0.5) / 4
    assert stats.snapshot(now=50.0).stage("clean").queue_fill == pytest.approx(0.3)


# -- latency -----------------------------------------------------------------------------------


def test_percentiles_come_from_the_latency_histogram(make_stats) -> None:
    stats = make_stats(stage("fetch"))
    stats.publish(chunk("fetch", 50, latencies=(0.010,) * 50))
    stats.publish(chunk("fetch", 40, failed=10, latencies=(0.100,) * 50))
    s = stats.snapshot().stage("fetch")
    assert s.p50_ms == pytest.approx(10.0, rel=RELATIVE_ERROR)
    assert s.p90_ms == pytest.approx(100.0, rel=RELATIVE_ERROR)
    assert s.p95_ms == pytest.approx(100.0, rel=RELATIVE_ERROR)
    assert s.p99_ms == pytest.approx(100.0, rel=RELATIVE_ERROR)
    assert s.latency is not None and s.latency.count == 100


def test_the_snapshot_histogram_is_a_private_copy(make_stats) -> None:
    stats = make_stats(stage("fetch"))
    stats.publish(chunk("fetch", 1, latencies=(0.010,)))
    first = stats.snapshot().stage("fetch").latency
    assert first is not None
    first.add(99.0)  # a display scribbling on its copy changes nothing for the collector
    stats.publish(chunk("fetch", 1, latencies=(0.020,)))
    second = stats.snapshot().stage("fetch").latency
    assert second is not None and second.count == 2 and second.max == 0.020
    assert first.count == 2 and first.max == 99.0


def test_no_percentiles_when_latency_is_untracked_or_empty(make_stats) -> None:
    stats = make_stats(stage("quiet", track_latency=False), stage("idle"))
    stats.publish(chunk("quiet", 3, latencies=(0.1, 0.2, 0.3)))
    for path in ("quiet", "idle"):
        s = stats.snapshot().stage(path)
        assert (s.p50_ms, s.p90_ms, s.p95_ms, s.p99_ms, s.latency) == (None,) * 5


# -- lifecycle ---------------------------------------------------------------------------------


def test_status_goes_pending_running_then_the_finished_status(make_stats, clock) -> None:
    stats = make_stats(stage("a"), stage("b"))
    snap = stats.snapshot()
    assert snap.status == "running" and snap.run_id == "r1"
    assert [s.status for s in snap.stages] == ["pending", "pending"]
    assert snap.stage("a").started is None and snap.stage("a").elapsed_s == 0.0

    stats.publish(StageStarted("a", 1.0))
    clock.set(2.5)
    a = stats.snapshot().stage("a")
    assert (a.status, a.started, a.finished, a.elapsed_s) == (
        "running",
        START_2024 + timedelta(seconds=1),
        None,
        1.5,
    )

    stats.publish(StageFinished("a", 3.0, "failed"))
    clock.set(9.0)
    a = stats.snapshot().stage("a")
    assert (a.status, a.finished, a.elapsed_s) == (
        "failed",
        START_2024 + timedelta(seconds=3),
        2.0,
    )


def test_the_run_ends_every_stage_it_did_not_hear_end(make_stats, clock) -> None:
    stats = make_stats(stage("a"), stage("b"), stage("c"))
    stats.publish(StageStarted("a", 0.0))
    stats.publish(StageStarted("b", 0.0))
    stats.publish(StageFinished("a", 1.0, "done"))
    stats.publish(RunFinished(2.0, "cancelled"))
    clock.set(60.0)
    snap = stats.snapshot()
    assert snap.status == "cancelled" and snap.elapsed_s == 2.0
    assert snap.finished == START_2024 + timedelta(seconds=2)
    assert [(s.status, s.elapsed_s) for s in snap.stages] == [
        ("done", 1.0),
        ("cancelled", 2.0),
        ("cancelled", 0.0),  # never started: no clock, no times
    ]
    assert snap.stage("c").started is None and snap.stage("c").finished is None


def test_before_the_run_starts_the_snapshot_is_empty(make_stats) -> None:
    snap = make_stats().snapshot()
    assert (snap.run_id, snap.status, snap.elapsed_s, snap.stages) == ("", "pending", 0.0, ())
    assert (snap.bottleneck, snap.hint, snap.started) == (None, "", None)


def test_a_new_run_starts_from_zero(make_stats, clock) -> None:
    stats = make_stats(stage("a"))
    stats.publish(ItemsReceived("a", 5))
    stats.publish(RunFinished(1.0, "done"))
    clock.set(5.0)
    stats.publish(RunStarted("r2", 5.0, (stage("a"), stage("z"))))
    snap = stats.snapshot()
    assert (snap.run_id, snap.status, snap.paths) == ("r2", "running", ("a", "z"))
    assert snap.stage("a").items_in == 0


def test_stages_keep_the_order_the_run_announced(make_stats) -> None:
    stats = make_stats(stage("z"), stage("inner/load"), stage("a"))
    stats.publish(ItemsReceived("a", 1))
    stats.publish(ItemsReceived("z", 1))
    assert stats.snapshot().paths == ("z", "inner/load", "a")


def test_an_unannounced_stage_is_kept_under_a_placeholder(make_stats) -> None:
    stats = make_stats(stage("a"))
    stats.publish(ItemsReceived("ghost", 3))
    ghost = stats.snapshot().stage("ghost")
    assert (ghost.kind, ghost.backend, ghost.items_in) == ("unknown", "unknown", 3)


def test_looking_up_an_unknown_stage_names_the_known_ones(make_stats) -> None:
    stats = make_stats(stage("a"), stage("b"))
    with pytest.raises(KeyError, match="no stage 'c'; known stages: a, b"):
        stats.snapshot().stage("c")


def test_snapshots_are_frozen(make_stats) -> None:
    snap = make_stats(stage("a")).snapshot()
    with pytest.raises(dataclasses.FrozenInstanceError):
        snap.status = "done"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        snap.stages[0].done = 1  # type: ignore[misc]


def test_an_event_that_cannot_be_folded_is_logged_not_raised(make_stats, caplog) -> None:
    stats = make_stats(stage("a"))
    with caplog.at_level(logging.WARNING, logger="minigun_nb"):
        stats.publish(ItemsReceived("a", "many"))  # type: ignore[arg-type]
    assert "could not fold" in caplog.text
    stats.publish(ItemsReceived("a", 2))
    assert stats.snapshot().stage("a").items_in == 2


def test_the_window_must_be_positive() -> None:
    from minigun_nb.observe.stats import StatsCollector

    with pytest.raises(ValueError, match="window"):
        StatsCollector(window=0)


def test_snapshots_stay_cheap_with_many_chunks(make_stats, clock: FakeClock) -> None:
    # 10k chunks spread over 100 s: the window keeps only the last 2 s, so memory stays flat.
    stats = make_stats(stage("a", workers=1))
    stats.publish(StageStarted("a", 0.0))
    for i in range(10_000):
        clock.set(i / 100)
        stats.publish(chunk("a", 1, busy_s=0.01))
    s = stats.snapshot().stage("a")
    assert s.throughput == pytest.approx(100.0)
    assert s.busy == pytest.approx(1.0)
