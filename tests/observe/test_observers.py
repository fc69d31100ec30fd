"""Observers (displays): optional hooks; one that raises is detached and logged, never fatal."""

from __future__ import annotations

import logging

import pytest

from minigun_nb.observe.events import Event, ItemsReceived, StageStarted
from minigun_nb.observe.snapshot import RunSnapshot
from minigun_nb.observe.stats import EventObserver, SnapshotObserver

from ._helpers import stage


class Recorder:
    """A well-behaved display: keeps everything it is given."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.snapshots: list[RunSnapshot] = []

    def on_event(self, event: Event) -> None:
        self.events.append(event)

    def on_snapshot(self, snapshot: RunSnapshot) -> None:
        self.snapshots.append(snapshot)


class Broken:
    """A display with a bug in both hooks."""

    def __init__(self) -> None:
        self.calls = 0

    def on_event(self, event: Event) -> None:
        self.calls += 1
        raise RuntimeError("widget exploded")

    def on_snapshot(self, snapshot: RunSnapshot) -> None:
        self.calls += 1
        raise RuntimeError("widget exploded")


def test_an_observer_that_raises_is_detached_and_logged_while_others_keep_going(
    make_stats, caplog
) -> None:
    stats = make_stats(stage("a"))
    broken, good = Broken(), Recorder()
    stats.subscribe(broken)
    stats.subscribe(good)

    with caplog.at_level(logging.WARNING, logger="minigun_nb"):
        stats.publish(ItemsReceived("a", 1))  # must not raise
        stats.publish(ItemsReceived("a", 2))

    assert broken.calls == 1  # detached after its first failure
    assert good.events == [ItemsReceived("a", 1), ItemsReceived("a", 2)]
    assert stats.observers == (good,)
    assert stats.snapshot().stage("a").items_in == 3  # the data job did not notice

    [record] = [r for r in caplog.records if r.name == "minigun_nb"]
    assert record.levelno == logging.WARNING
    assert "raised in on_event and was detached" in record.getMessage()
    assert "widget exploded" in record.getMessage()
    assert record.exc_info is not None
    assert record.run_id == "r1"  # type: ignore[attr-defined]


def test_snapshot_observers_follow_the_same_rule(make_stats, caplog) -> None:
    stats = make_stats(stage("a"))
    broken, good = Broken(), Recorder()
    stats.subscribe(broken)
    stats.subscribe(good)
    with caplog.at_level(logging.WARNING, logger="minigun_nb"):
        first = stats.notify_snapshot()
        second = stats.notify_snapshot(first)
    assert good.snapshots == [first, first] and second is first
    assert broken.calls == 1
    assert "raised in on_snapshot" in caplog.text


def test_hooks_are_optional(make_stats) -> None:
    class OnlySnapshots:
        def __init__(self) -> None:
            self.seen = 0

        def on_snapshot(self, snapshot: RunSnapshot) -> None:
            self.seen += 1

    stats = make_stats(stage("a"))
    only = OnlySnapshots()
    stats.subscribe(only)
    stats.subscribe(object())  # no hooks at all: harmless
    stats.publish(ItemsReceived("a", 1))
    stats.notify_snapshot()
    assert only.seen == 1
    assert isinstance(only, SnapshotObserver) and not isinstance(only, EventObserver)
    assert isinstance(Recorder(), EventObserver)


def test_unsubscribe_stops_delivery(make_stats) -> None:
    stats = make_stats(stage("a"))
    rec = Recorder()
    stats.subscribe(rec)
    stats.publish(ItemsReceived("a", 1))
    stats.unsubscribe(rec)
    stats.unsubscribe(rec)  # twice is fine
    stats.publish(ItemsReceived("a", 1))
    assert len(rec.events) == 1


@pytest.mark.timeout(30)
def test_an_observer_may_take_a_snapshot_from_inside_on_event(make_stats) -> None:
    # Observers run outside the collector's lock, so this cannot deadlock.
    stats = make_stats(stage("a"))
    seen: list[int] = []

    class Live:
        def on_event(self, event: Event) -> None:
            seen.append(stats.snapshot().stage("a").items_in)

    stats.subscribe(Live())
    stats.publish(ItemsReceived("a", 4))
    stats.publish(StageStarted("a", 0.0))
    assert seen == [4, 4]


def test_an_observer_receives_events_after_they_are_folded(make_stats) -> None:
    stats = make_stats(stage("a"))
    counts: list[int] = []

    class Checker:
        def on_event(self, event: Event) -> None:
            counts.append(stats.snapshot().stage("a").items_in)

    stats.subscribe(Checker())
    stats.publish(ItemsReceived("a", 1))
    stats.publish(ItemsReceived("a", 1))
    assert counts == [1, 2]
