"""The bottleneck: the stage whose workers are busiest while its input queue is full."""

from __future__ import annotations

from minigun_nb.observe.events import (
    ItemsReceived,
    RunFinished,
    StageFinished,
    StageInfo,
    StageStarted,
)
from minigun_nb.observe.stats import StatsCollector, bottleneck_hint, find_bottleneck

from ._helpers import FakeClock, chunk, producer, stage, stage_snapshot


def run_for_two_seconds(
    stats: StatsCollector,
    clock: FakeClock,
    loads: dict[str, tuple[float, int]],
    infos: dict[str, StageInfo],
) -> None:
    """Start every stage at 0 s; at 2 s each reports ``busy`` and holds ``queued`` items."""
    for path, (_, queued) in loads.items():
        stats.publish(StageStarted(path, 0.0))
        if queued:
            stats.publish(ItemsReceived(path, queued))
    clock.set(2.0)
    for path, (busy, _) in loads.items():
        stats.publish(chunk(path, 1, busy_s=busy * infos[path].workers * 2.0))


def test_the_busy_stage_with_a_full_queue_is_the_bottleneck(make_stats, clock) -> None:
    infos = {
        "gen": producer("gen"),
        "load": stage("load", workers=8, queue_size=100),
        "clean": stage("clean", backend="process", workers=4, queue_size=100),
        "save": stage("save", workers=1, queue_size=100),
    }
    stats = make_stats(*infos.values())
    loads = {"gen": (1.0, 0), "load": (0.3, 100), "clean": (1.0, 100), "save": (0.2, 0)}
    run_for_two_seconds(stats, clock, loads, infos)
    snap = stats.snapshot()
    assert snap.bottleneck == "clean"
    assert snap.hint == "`clean` is the bottleneck: 100% busy with 4 workers; try workers=8"


def test_hint_wording_is_pinned() -> None:
    def hint(path: str, busy: float, workers: int, backend: str = "thread") -> str:
        return bottleneck_hint(stage_snapshot(path, busy=busy, workers=workers, backend=backend))

    assert (
        hint("clean", 1.0, 4)
        == "`clean` is the bottleneck: 100% busy with 4 workers; try workers=8"
    )
    assert (
        hint("save", 0.746, 1) == "`save` is the bottleneck: 75% busy with 1 worker; try workers=2"
    )
    # Inline stages (or stages capped by max_threads) still get the plain doubling.
    assert (
        hint("inner/parse", 0.5, 1, backend="inline")
        == "`inner/parse` is the bottleneck: 50% busy with 1 worker; try workers=2"
    )


def test_no_bottleneck_when_every_stage_has_room(make_stats, clock) -> None:
    infos = {"a": stage("a", workers=2), "b": stage("b", workers=2)}
    stats = make_stats(*infos.values())
    run_for_two_seconds(stats, clock, {"a": (0.49, 10), "b": (0.2, 0)}, infos)
    snap = stats.snapshot()
    assert (snap.bottleneck, snap.hint) == (None, "")


def test_a_producer_is_never_the_bottleneck(make_stats, clock) -> None:
    infos = {"gen": producer("gen"), "a": stage("a")}
    stats = make_stats(*infos.values())
    run_for_two_seconds(stats, clock, {"gen": (1.0, 0), "a": (0.1, 0)}, infos)
    assert stats.snapshot().bottleneck is None


def test_among_saturated_stages_the_fuller_queue_wins(make_stats, clock) -> None:
    infos = {"a": stage("a", queue_size=100), "b": stage("b", queue_size=100)}
    stats = make_stats(*infos.values())
    run_for_two_seconds(stats, clock, {"a": (1.0, 20), "b": (1.0, 90)}, infos)
    assert stats.snapshot().bottleneck == "b"


def test_busy_is_compared_at_whole_percents_before_queue_fill(make_stats, clock) -> None:
    # 99.6% and 100% both read "100%": the full queue decides, not float noise.
    infos = {"a": stage("a", queue_size=100), "b": stage("b", queue_size=100)}
    stats = make_stats(*infos.values())
    run_for_two_seconds(stats, clock, {"a": (1.0, 0), "b": (0.996, 100)}, infos)
    assert stats.snapshot().bottleneck == "b"


def test_busier_beats_fuller(make_stats, clock) -> None:
    infos = {"a": stage("a", queue_size=100), "b": stage("b", queue_size=100)}
    stats = make_stats(*infos.values())
    run_for_two_seconds(stats, clock, {"a": (0.9, 100), "b": (0.95, 60)}, infos)
    assert stats.snapshot().bottleneck == "b"


def test_a_mostly_full_queue_reports_a_stage_whose_time_goes_elsewhere(make_stats, clock) -> None:
    # A process stage spending its time pickling looks idle to the stage function, but its
    # input queue stays full: it still holds the pipeline back.
    infos = {
        "load": stage("load", workers=4, queue_size=100),
        "clean": stage("clean", backend="process", workers=2, queue_size=100),
    }
    stats = make_stats(*infos.values())
    run_for_two_seconds(stats, clock, {"load": (0.4, 0), "clean": (0.3, 80)}, infos)
    snap = stats.snapshot()
    assert snap.bottleneck == "clean"
    # more workers would not help (issue 15, finding 17): bigger chunks would
    assert snap.hint == (
        "`clean` is the bottleneck: its input queue is full while its 2 workers spend 30% of "
        "their time in the stage function; moving items to the workers costs more than the "
        "work: try bigger chunks (chunk_size=) or fewer, bigger items")


def test_a_pending_stage_is_never_the_bottleneck(make_stats) -> None:
    stats = make_stats(stage("a", queue_size=10))
    stats.publish(ItemsReceived("a", 10))  # full queue, but its workers have not started
    assert stats.snapshot().bottleneck is None


def test_after_the_run_the_bottleneck_uses_lifetime_busy(make_stats, clock) -> None:
    stats = make_stats(stage("a", workers=2), stage("b", workers=2))
    stats.publish(StageStarted("a", 0.0))
    stats.publish(StageStarted("b", 0.0))
    clock.set(1.0)
    stats.publish(chunk("a", 10, busy_s=2.0))  # a was saturated early ...
    clock.set(9.0)
    stats.publish(chunk("b", 10, busy_s=14.0))  # ... b most of the run
    stats.publish(StageFinished("a", 10.0, "done"))
    stats.publish(StageFinished("b", 10.0, "done"))
    stats.publish(RunFinished(10.0, "done"))
    snap = stats.snapshot()
    assert (snap.stage("a").busy, snap.stage("b").busy) == (0.1, 0.7)
    assert snap.bottleneck == "b"
    assert snap.hint == "`b` is the bottleneck: 70% busy with 2 workers; try workers=4"


def test_find_bottleneck_of_nothing() -> None:
    assert find_bottleneck(()) == (None, "")
