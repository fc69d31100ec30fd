"""The crash policy of pooled stages, driven by a fake executor: a crashed chunk is re-run item by
item, the item that kills its worker is one ``WorkerCrashed`` row, the others complete, a setup
that fails stops the stage, a cancel cancels the rest, and no item is lost or resolved twice.

The first half drives :class:`CrashPolicy` alone, with the driver's loop in miniature; the
second runs whole pipelines through the real driver with the fake executor in place of the
backend's."""

from __future__ import annotations

import pickle
import queue
import threading
import time
from concurrent.futures import Future
from functools import partial

import pytest

import minigun_nb as mg
from minigun_nb.runtime import dispatch
from minigun_nb.runtime.crash import Chunk, CrashPolicy
from minigun_nb.stagefn.outcome import ErrorInfo, Outcome, TaskCancelled, WorkerDied

from ._helpers import assert_conserved

pytestmark = pytest.mark.timeout(60)


def _error(index, exc):
    return ErrorInfo(index, type(exc).__name__, str(exc), "", pickle.dumps(exc), 1)


class FakeExecutor:
    """The executor protocol, small enough to read at a glance. A task runs at once in the submitting
    thread, unless it holds an item of ``kills`` (its worker dies: ``WorkerDied``, and what
    ran before the killer is reported only when ``streams``), of ``timeouts`` (the watchdog
    killed it) or of ``holds`` (it waits for ``cancel``). ``kills`` maps an item to how many
    times it kills (None: always)."""

    depth = 2
    isolates_crashes = False
    target_seconds = 0.002
    moves_bytes = False
    item_bytes = 0.0

    def __init__(self, kills=None, timeouts=(), holds=(), isolates_crashes=False,
                 streams=False, setup_error=None, open_error=None):
        self.kills = dict(kills or {})
        self.timeouts, self.holds = set(timeouts), set(holds)
        self.isolates_crashes, self.streams = isolates_crashes, streams
        self.setup_error, self.open_error = setup_error, open_error
        self.fn = lambda x: x  # until open() gives the stage function
        self.tasks = []  # the items of every task, in submit order
        self.held = []
        self.lock = threading.Lock()

    def open(self, job):
        if self.open_error is not None:
            raise self.open_error
        self.fn = job.fn

    def submit(self, items, report):
        items = list(items)
        self.tasks.append(items)
        fut = Future()
        if self.setup_error is not None:  # no worker can serve: nothing was processed
            report(Outcome(0, len(items), setup_error=_error(0, self.setup_error)))
            fut.set_result(None)
            return fut
        out, errors = [], []
        for i, x in enumerate(items):
            if x in self.timeouts or self._kills(x):
                if self.streams and i:
                    report(Outcome(0, i, out=out, done=i - len(errors), failed=len(errors),
                                   errors=errors, worker="fake"))
                fut.set_exception(WorkerDied("exit code 3", timeout=x in self.timeouts))
                return fut
            if x in self.holds:
                with self.lock:
                    self.held.append(fut)
                return fut
            try:
                out.append(self.fn(x))
            except Exception as exc:  # noqa: BLE001 - the item's error row
                errors.append(_error(i, exc))
        report(Outcome(0, len(items), out=out, done=len(items) - len(errors),
                       failed=len(errors), errors=errors, worker="fake",
                       busy=1e-4 * len(items)))
        fut.set_result(None)
        return fut

    def _kills(self, x):
        if x not in self.kills:
            return False
        left = self.kills[x]
        if left is not None:
            if left == 0:
                return False
            self.kills[x] = left - 1
        return True

    def cancel(self):
        with self.lock:
            held, self.held = self.held, []
        for fut in held:
            fut.set_exception(TaskCancelled())

    def finish(self):
        return []

    def close(self):
        pass


# -- the policy alone ----------------------------------------------------------------------------
class Ledger:
    """How each item ended; an item resolved twice fails the test."""

    def __init__(self):
        self.rows = {}

    def _set(self, c, lo, hi, how):
        for i in range(lo, hi):
            assert (c.seq, i) not in self.rows, f"item {c.items[i]!r} resolved twice"
            self.rows[c.seq, i] = how

    def done(self, c, lo, hi):
        self._set(c, lo, hi, "done")

    def fail(self, c, lo, hi, exc, attempts):
        self._set(c, lo, hi, (type(exc).__name__, attempts))

    def cancel(self, c, lo, hi):
        self._set(c, lo, hi, "cancelled")

    def by_item(self, chunks):
        return {chunks[seq].items[i]: how for (seq, i), how in self.rows.items()}


def drive(ex, chunks, max_tasks=4, stop_when=None, **options):
    """The driver's loop in miniature: submit what the policy says is due, count reported
    items, hand every ended task to the policy, until every item is resolved. Returns the
    ledger and, per submitted task, how many tasks were in flight beside it."""
    ledger = Ledger()
    options = {"crash_retries": 2, "timeout": None, **options}
    policy = CrashPolicy(isolates_crashes=ex.isolates_crashes, fail=ledger.fail,
                         cancel=ledger.cancel, **options)
    events = queue.SimpleQueue()
    inflight, beside = set(), []
    stopping = False

    def report(span, oc):
        span.next = max(span.next, oc.start + oc.n)
        ledger.done(span.chunk, span.lo + oc.start, span.lo + oc.start + oc.n)

    for c in chunks:
        policy.add(c)
    while policy.waiting() or inflight:
        for span in policy.due(len(inflight), max_tasks, stopping):
            beside.append((span.chunk.items[span.lo:span.hi], len(inflight)))
            inflight.add(span)
            fut = ex.submit(span.chunk.items[span.lo:span.hi], partial(report, span))
            fut.add_done_callback(partial(lambda s, f: events.put((s, f)), span))
        if not inflight:
            continue
        span, fut = events.get(timeout=5)
        inflight.discard(span)
        policy.ended(span, fut.exception(), stopping)
        if stop_when is not None and not stopping and stop_when(ledger):
            stopping = True
            ex.cancel()
    total = sum(len(c.items) for c in chunks)
    assert len(ledger.rows) == total, "an item was lost"
    return ledger.by_item(chunks), beside


def chunks_of(*lists):
    return [Chunk(list(items), seq) for seq, items in enumerate(lists)]


def test_a_crashed_chunk_is_retried_item_by_item_and_the_killer_is_one_row():
    ex = FakeExecutor(kills={7: None})
    chunks = chunks_of(range(10), range(10, 15))
    rows, beside = drive(ex, chunks)
    assert ex.tasks[0] == list(range(10))  # the whole chunk first
    assert [t for t in ex.tasks[1:] if len(t) > 1] == [list(range(10, 15))]  # only the other
    assert rows.pop(7) == ("WorkerCrashed", 2)  # crash_retries=2 crashes, counted alone
    assert rows == {x: "done" for x in range(15) if x != 7}
    # the crash with others in flight counts against no item; the counted runs were alone
    alone = [n for items, n in beside if items == [7]]
    assert len(alone) == 3 and alone[1:] == [0, 0]


def test_an_executor_that_isolates_crashes_counts_a_single_item_crash_at_once():
    ex = FakeExecutor(kills={3: None}, isolates_crashes=True)
    rows, _ = drive(ex, chunks_of(range(6)), crash_retries=3)
    assert rows.pop(3) == ("WorkerCrashed", 3)
    assert rows == {x: "done" for x in range(6) if x != 3}
    assert ex.tasks.count([3]) == 3


def test_a_worker_that_dies_once_costs_no_item():
    ex = FakeExecutor(kills={4: 1})
    rows, _ = drive(ex, chunks_of(range(8)))
    assert rows == {x: "done" for x in range(8)}
    assert ex.tasks[0] == list(range(8))
    assert sorted(map(tuple, ex.tasks[1:])) == [(x,) for x in range(8)]


def test_what_a_streaming_task_reported_before_the_crash_is_not_run_again():
    ex = FakeExecutor(kills={5: 1}, streams=True, isolates_crashes=True)
    rows, _ = drive(ex, chunks_of(range(8)))
    assert rows == {x: "done" for x in range(8)}
    assert ex.tasks == [list(range(8)), [5], [6], [7]]


def test_an_item_the_watchdog_ended_is_a_timeout_row():
    ex = FakeExecutor(timeouts={2}, isolates_crashes=True)
    rows, _ = drive(ex, chunks_of(range(4)), timeout=0.5)
    assert rows.pop(2) == ("TimeoutError", 1)
    assert rows == {0: "done", 1: "done", 3: "done"}


def test_a_task_that_fails_otherwise_fails_its_items_once():
    class Broken(FakeExecutor):
        def submit(self, items, report):
            fut = Future()
            fut.set_exception(OSError("socket closed"))
            return fut

    rows, _ = drive(Broken(), chunks_of(range(3)))
    assert rows == {x: ("OSError", 1) for x in range(3)}


def test_cancel_marks_the_rest_cancelled():
    ex = FakeExecutor(holds={10})
    chunks = chunks_of(range(5), range(10, 15), range(20, 25), range(30, 35))
    rows, _ = drive(ex, chunks, max_tasks=2, stop_when=lambda ledger: len(ledger.rows) >= 5)
    assert rows == {
        **{x: "done" for x in range(5)},
        **{x: "cancelled" for c in chunks[1:] for x in c.items},
    }
    assert ex.tasks == [list(range(5)), list(range(10, 15))]  # the waiting ones never ran


# -- through the driver --------------------------------------------------------------------------
@pytest.fixture
def fake(monkeypatch):
    """``fake(**options)``: the next pooled stage's executor is a FakeExecutor."""
    made = []

    def install(**options):
        ex = FakeExecutor(**options)
        made.append(ex)
        monkeypatch.setattr(dispatch, "make_executor", lambda *args, **kwargs: ex)
        return ex

    yield install


def double(x):
    return 2 * x


def test_a_run_with_a_poison_item_loses_nothing(fake):
    ex = fake(kills={7: None})
    stage = mg.processor(double, backend="process", workers=2, chunk_size=10)
    result = mg.Pipeline([stage]).run(items=range(30), display="none")
    assert sorted(result.outputs) == [2 * x for x in range(30) if x != 7]
    errors = result.errors
    assert errors["exc_type"].tolist() == ["WorkerCrashed"]
    assert errors["item"].tolist() == [7]
    assert errors["attempts"].tolist() == [2]
    assert result.stats.loc["double", "failed"] == 1
    assert [7] in ex.tasks
    assert_conserved(result)


def test_an_item_error_is_its_row_with_the_workers_identity(fake):
    def parse(x):
        if x == 3:
            raise ValueError("bad 3")
        return x

    fake()
    stage = mg.processor(parse, backend="process")  # chunks sized by the driver
    result = mg.Pipeline([stage]).run(items=range(8), display="none")
    assert sorted(result.outputs) == [0, 1, 2, 4, 5, 6, 7]
    row = result.errors.iloc[0]
    assert (row["item"], row["exc_type"], row["message"]) == (3, "ValueError", "bad 3")
    assert row["worker"] == "fake" and len(result.errors) == 1
    assert_conserved(result)


@pytest.mark.parametrize("where", ["worker", "open"])
def test_a_setup_crash_fails_the_stage_with_the_setup_error(fake, where):
    error = RuntimeError("no database")
    fake(**({"setup_error": error} if where == "worker" else {"open_error": error}))
    stage = mg.processor(double, backend="process", workers=2)
    result = mg.Pipeline([stage]).run(items=range(20), display="none")
    errors = result.errors
    assert errors["exc_type"].tolist() == ["RuntimeError"]
    assert errors["message"].tolist() == ["no database"]
    assert errors["item"].isna().all()
    assert result.outputs == []
    assert sorted(result.cancelled_items) == list(range(20))
    assert result.stats.loc["double", "status"] == "failed"
    assert result.status == "failed" and not result.ok
    assert_conserved(result)


def test_a_cancelling_stop_cancels_the_rest(fake):
    ex = fake(holds={5})
    ex.depth = 1  # one task in flight: nothing after the held task is taken
    stage = mg.processor(double, backend="process", workers=1, chunk_size=5)
    handle = mg.Pipeline([stage]).start(items=range(40), display="none")
    deadline = time.monotonic() + 10
    while not ex.held and time.monotonic() < deadline:
        time.sleep(0.01)
    assert ex.held, "the held task never started"
    handle.stop(drain=False)
    result = handle.wait(timeout=30)
    assert result.stopped
    done = sorted(x // 2 for x in result.outputs)
    cancelled = sorted(result.cancelled_items)
    assert sorted(done + cancelled) == list(range(40))  # nothing lost, nothing twice
    assert all(x < 5 for x in done) and 5 in cancelled
    assert result.errors.empty
    assert_conserved(result)
