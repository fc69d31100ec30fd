"""Driving a pooled stage: one whose function an executor runs (process, fork, async, dask).

One thread per stage in the kernel, the *driver*; whoever holds the stage's *turn* drives it:
the driver, or an executor thread that just reported (``reporter_drives``, on a thread marked
with ``may_drive_here``: a loky link's reader, a fork child's waiter; never a loky callback
thread), which saves a hop to the driver per chunk. It takes chunks from the stage's channel
while a chunk slot is free (``workers * executor.depth`` chunks in flight at most, so the
backpressure bound holds; an empty channel calls it back on its next put), submits them to
the executor and turns what comes back into exactly what a thread worker produces: the same
routing (static, fan-out policies, dynamic ``mg.to``/``output.to`` resolved here), the same
events (ItemsTaken, ChunkProcessed with per-item latencies), the same error rows (remote type
name, message and traceback, the worker's pid and host, :mod:`.worker_errors`), the same
``ordered`` release and the same cancel accounting. What a task that ended without
reporting all its items means is the crash policy's (:mod:`.crash`); what a run checks before
its first pooled stage, :mod:`.pooled_prepare`.
"""

from __future__ import annotations

import collections
import itertools
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from functools import partial
from operator import itemgetter
from typing import TYPE_CHECKING, Any

from ..executors import ExecutorSpec, make_executor
from ..executors.base import drives_here
from ..observe.events import ChunkProcessed, ItemsTaken
from ..stagefn.outcome import Job, Outcome, TaskCancelled, load_exception
from .chunking import Turns, fair_share, learn
from .crash import Chunk, CrashPolicy, Span
from .emitter import ROUTING_ERRORS, Emitter
from .pooled_prepare import prepare_run
from .worker_errors import WorkerErrors

if TYPE_CHECKING:
    from .stagerun import StageRun

#: a task's pickled items stay under about this size (unless one item is bigger)
MAX_TASK_BYTES = 4 << 20


def driver_count(st: StageRun) -> int:
    """Threads the stage needs in the kernel (called by ``StageRun.start``): the driver.
    Prepares the run on the first pooled stage."""
    try:
        prepare_run(st.run)
        st.pooled = PooledStage(st)
    except BaseException:
        st.run.cancel()  # stages already started wind down; nothing is left running
        raise
    return 1


def pooled_loop(st: StageRun, index: int) -> None:
    """The driver thread of a pooled stage."""
    st.pooled.drive()


def drop_items(out: Any, ends: Any, drop: list[int]) -> list[Any]:
    """``out`` without the emissions of the items at positions ``drop`` (ascending), each
    item ``j``'s being ``out[ends[j - 1]:ends[j]]``: an item that failed in the kernel
    (its route) leaves nothing downstream, as on a thread."""
    kept: list[Any] = []
    lo = 0
    for j in drop:
        kept.extend(out[lo:ends[j - 1] if j else 0])
        lo = ends[j]
    kept.extend(out[lo:])
    return kept


class PooledStage:
    """The kernel side of one pooled stage in one run."""

    def __init__(self, st: StageRun) -> None:
        self.st = st
        self.run = run = st.run
        opts = st.spec.options
        self.backend = opts["backend"]
        self.ex = make_executor(self.backend, ExecutorSpec(
            st.path, self.backend, st.workers, run.graph.name or "",
            opts["worker_idle_timeout"], run.log_extra(st.path), run.graph.options.get("dask_client")))
        self.max_tasks = max(1, st.workers * self.ex.depth)
        self.free = self.max_tasks  # chunk slots: a chunk holds one until it is closed
        # what the executor reports (outcomes, ended tasks), in order; handled by whoever holds
        # the turn: the driver thread, or the executor's thread that reported (no hop)
        self.events: collections.deque[tuple[str, Span, Any]] = collections.deque()
        self.turn = threading.Lock()
        self.bell = threading.Event()  # the driver has something to do
        self.reporter_drives = getattr(self.ex, "reporter_drives", False)
        self.input_done = False
        self.broken: BaseException | None = None  # an internal error on a reporting thread
        qs = opts["queue_size"]
        self.fixed = opts["chunk_size"] is not None
        self.cap = min(opts["chunk_size"] or qs, qs)
        self.per_item = 0.0
        self.ordered = bool(opts["ordered"])
        self.track = bool(opts["track_latency"])
        self.stop_taking = False
        self.failed_setup = False
        self.inflight: set[Span] = set()
        self.chunks_open = 0
        self.turns = Turns()  # ordered=True: outcomes released in chunk order
        self.errors = WorkerErrors(run, st)
        self._record = self.errors.record
        self.policy = CrashPolicy(
            isolates_crashes=self.ex.isolates_crashes,
            crash_retries=opts["crash_retries"],
            timeout=opts["timeout"],
            fail=self._fail_range,
            cancel=self._cancel_range,
            path=st.path,
            log_extra=run.log_extra(st.path),
        )

    # -- the taker thread ------------------------------------------------------------------------
    def limit(self) -> int:
        if self.fixed:
            return self.cap
        per = self.per_item
        if per <= 0:
            return 1  # first learn what an item costs
        n = min(int(self.ex.target_seconds / per) or 1, self.cap)
        size = self.ex.item_bytes if self.ex.moves_bytes else 0.0
        if size > 0:  # big items travel in small chunks, so transfers overlap with work
            n = min(n, max(1, int(MAX_TASK_BYTES / size)))
        ch = self.st.channel
        if n * per > 0.005 and self.st.workers > 1 and ch is not None:
            n = fair_share(n, len(ch), self.st.workers)  # share long work fairly
        return max(1, min(n, self.cap))

    def _take(self) -> bool:
        """Take chunks while a slot is free and the channel has items; False once the input
        has ended (closed and drained, or cancelled)."""
        st, run = self.st, self.run
        ch = st.channel
        assert ch is not None
        while self.free > 0 and not self.stop_taking:
            chunk = ch.take_or_listen(self.limit(), self._wake)
            if chunk is None:
                return False
            if not chunk:  # the channel calls _wake on its next put
                return True
            self.free -= 1
            n = len(chunk)
            with st.lock:
                st.in_hand += n
            run.publish(ItemsTaken(st.path, n, id(chunk)))
            self._on_take(chunk)
        return not self.stop_taking

    def _wake(self) -> None:
        """The channel's listener (its next put, close or cancel). The putting thread takes
        and submits itself when it may and the turn is free (it never routes outcomes here:
        that could block it on a full queue downstream, and it may be a worker of another
        stage), else the driver is woken."""
        if self.reporter_drives and not self.run.cancelled and self.broken is None:
            if self._drive_here(outcomes=False):
                return
        self.bell.set()

    # -- the driver thread -----------------------------------------------------------------------
    def _job(self) -> Job:
        st, run = self.st, self.run
        o = st.spec.options
        hooks: tuple[Callable[[], Any], ...] = ()
        if self.backend in ("process", "fork", "dask"):
            hooks = tuple(fn for _pp, fn in run.graph.hooks.get("after_fork", ()))
        return Job(
            token=f"{run.run_id}-{uuid.uuid4().hex[:8]}",
            run_token=run.run_id,
            path=st.path,
            fn=st.spec.function,
            setup=o["setup"],
            teardown=o["teardown"],
            after_fork=hooks,
            retries=o["retries"],
            retry_on=o["retry_on"],
            backoff=float(o["backoff"]),
            timeout=o["timeout"],
            track=self.track,
        )

    def drive(self) -> None:
        st, run, ex = self.st, self.run, self.ex
        self.em = Emitter(st)
        opened = False
        try:
            try:
                ex.open(self._job())
                opened = True
            except Exception as exc:  # noqa: BLE001 - e.g. a setup= that cannot be pickled
                self._fail_setup(exc)
            cancel_seen = False
            turn, bell = self.turn, self.bell
            while True:
                bell.clear()
                with turn:
                    if self.broken is not None:  # raised where the driver would have
                        raise self.broken
                    if run.cancelled and not cancel_seen:
                        cancel_seen = True
                        ex.cancel()
                    self._handle()
                    if self._finished():
                        break  # every task ended too: a fork child may still be tearing down
                if not self.events:  # (reported while the turn was held here: handle it now)
                    bell.wait(0.1)
        finally:
            try:
                if self.inflight:  # only after an internal error: do not leave work behind
                    ex.cancel()
                if opened:
                    for err in ex.finish():
                        self._record(None, load_exception(err), 1, err.traceback, has_item=False)
            finally:
                ex.close()

    def _handle(self, outcomes: bool = True) -> None:
        """Handle what was reported, in order (unless not ``outcomes``), then take and submit
        what the free slots allow (the turn held)."""
        events = self.events
        while outcomes and events:
            kind, span, arg = events.popleft()
            if kind == "part":
                self._on_outcome(span, arg)
            else:
                self._on_done(span, arg)
        if not self.input_done and not self._take():
            self.input_done = True
        self._schedule()

    def _finished(self) -> bool:
        return self.input_done and self.chunks_open == 0 and not self.inflight and not self.events

    def _report(self, kind: str, span: Span, arg: Any) -> None:
        """An executor's outcome (``part``) or ended task (``done``): the reporting thread
        handles it itself when the turn is free (no hop to the driver thread), else whoever
        holds the turn does, before letting go of it."""
        self.events.append((kind, span, arg))
        if (not self.reporter_drives or not drives_here() or self.run.cancelled
                or self.broken is not None):
            self.bell.set()  # (a cancel: the driver cancels the executor at once)
            return
        self._drive_here()
        # events left: the holder of the turn sees them after it lets go (or the driver does)

    def _drive_here(self, outcomes: bool = True) -> bool:
        """Drive the stage on this thread while the turn is free and events wait. False when
        it left something to the driver: another thread held the turn at first, or (not
        ``outcomes``) events wait that this thread must not handle."""
        events, turn = self.events, self.turn
        first = True
        while (first or events) and turn.acquire(False):
            first = False
            finished = False
            try:
                self._handle(outcomes)
                finished = self._finished()
            except BaseException as exc:  # noqa: BLE001 - the driver raises it
                self.broken = exc
                finished = True
            finally:
                turn.release()
            if finished:
                self.bell.set()  # the driver ends the stage
                return True
            if not outcomes:
                return not events
        return not first

    def _on_take(self, items: list[Any]) -> None:
        c = Chunk(items, self.turns.number())
        self.chunks_open += 1
        self.policy.add(c)

    def _stopping(self) -> bool:
        return self.failed_setup or self.run.cancelled

    def _schedule(self) -> None:
        for span in self.policy.due(len(self.inflight), self.max_tasks, self._stopping()):
            self._submit(span)

    def _submit(self, span: Span) -> None:
        c = span.chunk
        items = (
            c.items if (span.lo == 0 and span.hi == len(c.items)) else c.items[span.lo : span.hi]
        )
        self.inflight.add(span)
        try:
            fut = self.ex.submit(items, partial(self._report, "part", span))
        except BaseException as exc:  # noqa: BLE001 - treated like a failed task
            fut = Future()
            fut.set_exception(exc)
        fut.add_done_callback(partial(self._report, "done", span))

    # -- results ---------------------------------------------------------------------------------
    def _on_outcome(self, span: Span, oc: Outcome) -> None:
        c = span.chunk
        base = span.lo + oc.start
        span.next = max(span.next, oc.start + oc.n)
        for err in oc.hook_errors:
            self._record(None, load_exception(err), 1, err.traceback, oc.worker, has_item=False)
        if oc.setup_error is not None:
            err = oc.setup_error
            if not self.failed_setup:
                self._fail_setup(load_exception(err), err.traceback, oc.worker)
            self._cancel_range(c, base, base + oc.n)
            return
        if oc.n:
            c.left -= oc.n
            self._piece(c, base, partial(self._emit, c, span.lo, oc))

    def _on_done(self, span: Span, fut: Future[None]) -> None:
        self.inflight.discard(span)
        exc = TaskCancelled() if fut.cancelled() else fut.exception()
        self.policy.ended(span, exc, self._stopping())

    def _piece(self, c: Chunk, base: int, action: Callable[[], None]) -> None:
        """Run what resolves items ``base..`` of chunk ``c`` (in chunk order when ordered)."""
        if not self.ordered:
            action()
            if c.left == 0:
                self._close_chunk(c)
            return
        c.pieces.append((base, action))
        if c.left == 0:
            self.turns.release(c.seq, c, self._release)

    def _release(self, c: Chunk) -> None:
        for _base, act in sorted(c.pieces, key=itemgetter(0)):
            act()
        c.pieces = []
        self._close_chunk(c)

    def _close_chunk(self, c: Chunk) -> None:
        if c.closed:
            return
        c.closed = True
        st = self.st
        n = len(c.items)
        self.chunks_open -= 1
        with st.lock:
            st.in_hand -= n
        if st.group.cyclic:
            st.group.add_pending(-n)
        self.free += 1

    def _emit(self, c: Chunk, lo: int, oc: Outcome) -> None:
        """Route one outcome's emissions and account for its items, as a thread worker does."""
        st, run, em = self.st, self.run, self.em
        items = c.items
        before = em.count
        done, failed = oc.done, oc.failed
        for err in oc.errors:
            self._record(
                items[lo + err.index], load_exception(err), err.attempts, err.traceback, oc.worker
            )
        out = oc.out
        if oc.dyn:
            unrouted: list[int] = []
            for idx, group in itertools.groupby(oc.dyn, key=itemgetter(0)):
                try:
                    for _i, name, value in group:
                        em.send(name, value)
                    em.flush_dynamic()
                except ROUTING_ERRORS as exc:
                    em.dyn.clear()
                    done -= 1
                    failed += 1
                    self._record(items[lo + idx], exc, 1)
                    unrouted.append(idx - oc.start)
            if unrouted and oc.ends:
                out = drop_items(out, oc.ends, unrouted)
        if out:
            if getattr(em, "pick", False) is None:  # broadcast/terminal: hand the list over
                em.count += len(out)
                if em.out:
                    em.out.extend(out)
                else:
                    em.out = out if type(out) is list else list(out)
            else:
                for v in out:
                    em.emit(v)
        em.flush()
        self.per_item = learn(self.per_item, oc.n, oc.busy + oc.cost)
        run.publish(
            ChunkProcessed(
                st.path,
                done,
                failed,
                oc.filtered,
                em.count - before,
                oc.retried,
                oc.busy,
                tuple(oc.lat) if self.track else (),
                id(c.items),
            )
        )

    # -- resolving items the executor did not report ---------------------------------------------
    def _fail_range(self, c: Chunk, lo: int, hi: int, exc: BaseException, attempts: int) -> None:
        c.left -= hi - lo

        def fail() -> None:
            for i in range(lo, hi):
                self._record(c.items[i], exc, attempts)
            self.run.publish(ChunkProcessed(self.st.path, 0, hi - lo, 0, 0, 0, 0.0, (),
                                            id(c.items)))

        self._piece(c, lo, fail)

    def _cancel_range(self, c: Chunk, lo: int, hi: int) -> None:
        if hi <= lo:
            return
        c.left -= hi - lo
        self._piece(c, lo, lambda: self.run.cancel_items(self.st, c.items[lo:hi]))

    def _fail_setup(
        self, exc: BaseException, tb: str | None = None, worker: str | None = None
    ) -> None:
        """No worker can serve (after_fork/setup failed): record it once, fail the stage and
        cancel its items, as a thread worker whose setup fails does."""
        self.failed_setup = True
        self.stop_taking = True
        self._record(None, exc, 1, tb, worker, has_item=False, fatal="worker setup")
        st = self.st
        st.status = "failed"
        if st.channel is not None:
            st.cancel_remaining(st.channel)
