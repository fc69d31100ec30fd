"""One stage inside one run: its channel, its worker threads, and the worker-stage loop.

A worker stage's loop takes a chunk, calls the function per item, routes, and accounts per
chunk. The other loops live beside it: producers in :mod:`producer`, operators and
accumulators in :mod:`operators`, process/fork/async/dask stages in :mod:`dispatch`.
"""

from __future__ import annotations

import inspect
import logging
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from ..core.graph import StageSpec
from ..core.options import THREAD_BACKENDS
from ..core.stage import KERNEL_KINDS
from ..observe.events import ChunkProcessed, ItemsTaken, StageStarted
from ..stagefn.calling import (
    Control,
    ItemCancelled,
    TimeoutCaller,
    as_resources,
    bind,
    bind_output,
    wants,
)
from ..stagefn.output import Output, Routed
from ..stagefn.runner import run_item
from ..stagefn.sampling import time_this_chunk
from .channel import Channel
from .chunking import MAX_CHUNK, TARGET_CHUNK_SECONDS, Turns, fair_share, learn
from .emitter import Emitter
from .fastpath import fast_eligible, run_chunk
from .items import stage_policy, wait_backoff

if TYPE_CHECKING:
    from .run import Run

log = logging.getLogger("minigun_nb")
perf = time.perf_counter

def _yields(fn: Any) -> bool:
    """True for a generator function (or an instance whose ``__call__`` is one)."""
    return inspect.isgeneratorfunction(fn) or inspect.isgeneratorfunction(
        getattr(fn, "__call__", None))  # noqa: B004 - instances need __call__


#: how often the ticker looks for items that run long while their outputs wait
STREAM_SECONDS = 0.05


def nudge_emitters(run: Run, cancel: bool = False) -> None:
    """Nudge worker emitters: after a cancel all of them (the next emission of a running
    item raises ItemCancelled: a generator or emit loop ends between two yields); else those
    whose current item has run since the last look with outputs waiting, so what a long
    generator yields moves on within about two ticks (SPEC §14)."""
    for st in run.stages.values():
        for em in tuple(st.emitters):
            if cancel:
                em.nudge(cancel=True)
                continue
            started = em.items_started
            if started == em.seen_started and em.out:
                em.nudge()
            em.seen_started = started


def stream_ticker(run: Run) -> None:
    """The run's ticker thread (only when it has thread or inline worker stages)."""
    while not run.done.wait(STREAM_SECONDS):
        if run.cancelled:
            return
        nudge_emitters(run)


#: a retry's backoff, cut short by a cancel of the run (which cancels the item)
_sleep_unless_cancelled = wait_backoff


def _later(pending: list[Any], name: str, item: Any) -> None:
    """``output.to(name).emit(item)`` of a timed call: kept with its other emissions."""
    pending.append(Routed(name, item))


class StageRun:
    """Runtime state of one stage in one run."""

    def __init__(self, run: Run, spec: StageSpec, workers: int) -> None:
        self.run = run
        self.spec = spec
        self.path = spec.path
        self.kind = spec.kind
        self.workers = workers
        self.channel: Channel | None = (
            None if spec.kind == "producer" else Channel(spec.options["queue_size"])
        )
        self.targets: tuple[StageRun, ...] = ()  # filled by the run once every stage exists
        self.max_put = MAX_CHUNK
        chunk = spec.options["chunk_size"]
        self.max_take = min(chunk or MAX_CHUNK, spec.options["queue_size"])
        self.per_item = 0.0  # running estimate of seconds per item
        #: a whole chunk came back without a generator or mg.to (fastpath's map path)
        self.plain_results = False
        self.alive = 0
        self.status = "pending"
        self.group: Any = None
        self.lock = threading.Lock()
        self.in_hand = 0  # items taken by workers and not yet finished (least_loaded)
        self.threads: list[threading.Thread] = []
        #: the emitters of this stage's worker threads (nudged by :func:`nudge_emitters`)
        self.emitters: list[Emitter] = []
        self.pooled: Any = None  # the kernel side of a process/fork/async/dask stage
        # ordered=True: chunks are numbered when taken and their outputs released in that
        # order; a worker whose turn has not come waits, so at most one chunk of outputs per
        # worker is held back (the bounded reorder window)
        self.ordered = bool(spec.options["ordered"]) and workers > 1
        self.turns = Turns()

    def load(self) -> int:
        """Items queued plus items held by workers (least_loaded routing)."""
        return (len(self.channel) if self.channel is not None else 0) + self.in_hand

    def _worker_take(self) -> int:
        """What one thread worker takes by its cost estimate: about
        :data:`TARGET_CHUNK_SECONDS` of work, at most ``max_take``; one item while the cost
        is not known yet."""
        if self.per_item <= 0:
            return 1
        return max(1, min(self.max_take, int(TARGET_CHUNK_SECONDS / self.per_item) or 1))

    def take_limit(self) -> int:
        limit = self._worker_take()
        if self.workers > 1 and self.channel is not None:
            limit = fair_share(limit, len(self.channel), self.workers)
        return limit

    def chunk_wanted(self) -> int:
        """How many items this stage's workers take at a time, together: a sender gains
        nothing by pulling more for it in one piece. One while the first item runs (a
        worker takes one item to learn what an item costs); ``max_take`` for stages whose
        chunks are not taken by thread workers."""
        if self.kind in KERNEL_KINDS or self.spec.options["backend"] not in THREAD_BACKENDS:
            return self.max_take
        if self.per_item <= 0:
            return 1
        return self._worker_take() * self.workers

    # -- threads ---------------------------------------------------------------------------
    def start(self) -> None:
        self.status = "running"
        self.run.publish(StageStarted(self.path, time.monotonic()))
        log.debug("stage started", extra=self.run.log_extra(self.path))
        backend = self.spec.options["backend"]
        count = 1
        if self.kind == "producer":
            from .producer import producer_loop

            loop: Callable[[int], None] = partial(producer_loop, self)
        elif self.kind in KERNEL_KINDS:
            from .operators import operator_loop

            loop = partial(operator_loop, self)
        elif backend in THREAD_BACKENDS:
            loop = self._worker_loop
            count = self.workers
        else:
            # process, fork, async, dask: driver threads in the kernel ship chunks to the
            # executor and route what comes back (runtime/dispatch.py)
            from .dispatch import driver_count, pooled_loop

            loop = partial(pooled_loop, self)
            count = driver_count(self)
        self.alive = count
        for i in range(count):
            t = threading.Thread(
                target=self._guard, args=(loop, i), daemon=True,
                name=f"mg-{self.run.graph.name}-{self.path}-{i}",
            )
            self.threads.append(t)
        for t in self.threads:
            t.start()

    def _guard(self, loop: Any, index: int) -> None:
        try:
            loop(index)
        except BaseException as exc:  # noqa: BLE001 - an engine bug must end the run, not hang it
            log.exception("internal error in stage %s", self.path,
                          extra=self.run.log_extra(self.path))
            self.run.fail_internal(self, exc)
        finally:
            with self.lock:
                self.alive -= 1
                last = self.alive == 0
            if last:
                self.run.stage_finished(self)

    def setup(self) -> dict[str, Any]:
        setup = self.spec.options["setup"]
        return {} if setup is None else as_resources(self.path, setup())

    def teardown(self, resources: dict[str, Any]) -> None:
        teardown = self.spec.options["teardown"]
        if teardown is not None:
            try:
                teardown(**resources)
            except Exception as exc:  # noqa: BLE001 - recorded, the run goes on
                self.run.record_error(self, None, exc, 1, has_item=False)

    # -- worker stage ----------------------------------------------------------------------
    def _worker_loop(self, index: int) -> None:
        run = self.run
        spec = self.spec
        ch = self.channel
        assert ch is not None
        em = Emitter(self)
        with self.lock:
            self.emitters.append(em)
        try:
            resources = self.setup()
        except Exception as exc:  # noqa: BLE001 - no worker without its resources
            run.record_error(self, None, exc, 1, has_item=False, fatal="setup")
            self.status = "failed"
            self.cancel_remaining(ch)
            return
        takes_output = wants(spec.function)[0]
        track = spec.options["track_latency"]
        path = self.path
        # a generator that fails half-way must take back what it yielded: the general loop
        fast = fast_eligible(self, em, takes_output) and not _yields(spec.function)
        call, invoke, timer = self._item_call(em, resources, takes_output)
        policy = stage_policy(run, spec.options)

        def backoff(seconds: float) -> None:
            _sleep_unless_cancelled(run, seconds)

        sampled = timed_items = 0
        ordered, turns = self.ordered, self.turns
        if ordered:
            # hold a chunk's outputs until its turn
            em.max_put = em.put_size = em.hold = em.item_hold = 1 << 62
        else:
            em.hold = em.item_hold = max(em.max_put, MAX_CHUNK)  # see Emitter.item_start
        try:
            while not run.cancelled:
                if ordered:
                    with turns.take_lock:
                        chunk = ch.get(self.take_limit())
                        seq = turns.number()
                else:
                    chunk = ch.get(self.take_limit())
                if chunk is None:
                    break
                n = len(chunk)
                with self.lock:
                    self.in_hand += n
                run.publish(ItemsTaken(path, n, id(chunk)))
                retried = 0
                start = perf()
                before = em.count
                lat: list[float]
                if fast:
                    processed = n
                    # Latency of fast items is sampled once a worker has timed enough of
                    # them: the clock read would otherwise cost as much as the work itself.
                    sampled += 1
                    timed = track and time_this_chunk(sampled, timed_items, self.per_item)
                    done, failed, filtered, lat = run_chunk(self, em, call, chunk, timed)
                    timed_items += len(lat)
                else:
                    processed, done, failed, filtered, retried, lat = self._run_items(
                        em, call, invoke, policy, backoff, chunk, track)
                elapsed = perf() - start
                if ordered:
                    self._flush_in_turn(em, seq)
                else:
                    em.flush()
                self.per_item = learn(self.per_item, processed, elapsed)
                if processed < n:
                    run.cancel_items(self, chunk[processed:])
                run.publish(
                    ChunkProcessed(path, done, failed, filtered, em.count - before, retried,
                                   elapsed, tuple(lat), id(chunk))
                )
                with self.lock:
                    self.in_hand -= n
                if self.group.cyclic:
                    self.group.add_pending(-n)
        finally:
            if timer is not None:
                timer.close()
            if run.cancelled:
                self.cancel_remaining(ch)
            self.teardown(resources)

    def _item_call(self, em: Emitter, resources: dict[str, Any], takes_output: bool
                   ) -> tuple[Callable[[Any], Any], Any, TimeoutCaller | None]:
        """What :func:`run_item` calls per item: ``call(item)``, or ``invoke(call, item, i)``
        when the call needs more around it. A stage that takes ``output`` gets one per call,
        closed when the call ends; a timed call's emissions wait in a list until it returns
        in time (an abandoned call's later ones then raise in its own thread and never reach
        the stage's buffers). Returns the call, the invoke (or None) and the timer to close."""
        spec = self.spec
        timeout = spec.options["timeout"]
        timer = TimeoutCaller(f"mg-{self.path}") if timeout else None
        if not takes_output:
            call = bind(spec.function, resources, None, item_param=True)
            if timer is None:
                return call, None, None
            timed_call = timer.call
            return (lambda item: timed_call(call, item, timeout)), None, timer
        call_out = bind_output(spec.function, resources)
        collect, emit_value = em.collect, em.emit_value

        def invoke(call_out: Callable[[Any, Any], Any], item: Any, i: int) -> None:
            if timer is None:
                out = Output(em.emit, em.send)
                try:
                    collect(i, call_out(item, out))
                finally:
                    out.close()
                return
            pending: list[Any] = []
            out = Output(pending.append, partial(_later, pending))
            try:
                r = timer.call(partial(call_out, output=out), item, timeout)
            finally:
                out.close()
            for v in pending:
                emit_value(v)
            collect(i, r)

        return call_out, invoke, timer

    def _run_items(self, em: Emitter, call: Callable[[Any], Any],
                   invoke: Any, policy: Any, backoff: Callable[[float], None],
                   chunk: list[Any], track: bool
                   ) -> tuple[int, int, int, int, int, list[float]]:
        """The general loop: each item through :func:`run_item` (retries, timeouts,
        ``output``, load-balancing). Returns (processed, done, failed, filtered, retried,
        latencies); an item cut by a cancel is not processed, nor is the rest of the chunk."""
        run = self.run
        record_error = run.record_error
        lat: list[float] = []
        failed = filtered = retried = processed = 0
        retries_marked = em.attempts  # run_item marks the Emitter once per retry it runs
        item_start, collect = em.item_start, em.collect
        t_prev = perf()
        for i, item in enumerate(chunk):
            if run.cancelled:
                break
            # run_item's first attempt, inlined (most items succeed at once: this saves four
            # calls an item); a failure goes on in run_item, which decides and retries
            count, out_mark, flushes = em.count, item_start(), em.flushes
            try:
                try:
                    if invoke is None:
                        collect(i, call(item))
                    else:
                        invoke(call, item, i)
                except Control:
                    raise
                except BaseException as first:  # noqa: BLE001 - an item error
                    em.discard_item_emissions(out_mark, flushes)
                    attempts, exc, emitted = run_item(call, item, i, em, policy, invoke,
                                                      backoff, first)
                else:
                    attempts, exc, emitted = 1, None, em.count != count
            except ItemCancelled:  # the run was cancelled while the item emitted or waited
                em.discard_item_emissions(out_mark, flushes)
                retried = em.attempts - retries_marked  # the retries that ran, this item's too
                break
            processed += 1
            if exc is None:
                if not emitted:
                    filtered += 1
            else:
                failed += 1
                record_error(self, item, exc, attempts)
            if attempts != 1:
                retried += attempts - 1
            if em.due:
                em.flush()
            if track:
                t = perf()
                lat.append(t - t_prev)
                t_prev = t
        done = processed - failed
        return processed, done, failed, filtered, retried, lat

    def _flush_in_turn(self, em: Emitter, seq: int) -> None:
        turns = self.turns
        turns.wait_turn(seq, lambda: self.run.cancelled)
        try:
            em.flush()
        finally:
            turns.passed(seq)

    def cancel_remaining(self, ch: Channel) -> None:
        items = ch.cancel()
        if items:
            self.run.cancel_items(self, items, queued=True)
