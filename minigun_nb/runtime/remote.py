"""Driving a stage whose function runs elsewhere: process, fork, async and dask backends.

Two threads per stage, both in the kernel. The *taker* takes chunks from the stage's channel
while a chunk slot is free (``workers * executor.depth`` chunks in flight at most, so the
backpressure bound holds). The *driver* submits chunks to the executor and turns what comes
back into exactly what a thread worker produces: the same routing (static, fan-out policies,
dynamic ``mg.to``/``output.to`` resolved here), the same events (ItemsTaken, ChunkProcessed
with per-item latencies), the same error rows (remote type name, message and traceback, the
worker's pid and host), the same ``ordered`` release and the same cancel accounting.

Crashes: a task whose worker died is not the items' fault at first: a crashed multi-item task
is re-run item by item, uncounted. A single-item task that crashes counts against its item
when the crash can be attributed to it (fork children die alone; a loky or Dask worker that
dies loses every task it holds, so those items are re-run *isolated*, one at a time with
nothing else in flight). An item that crashes ``crash_retries`` times is a ``WorkerCrashed``
error row. A worker ended by its ``timeout`` watchdog records ``TimeoutError``.
"""

from __future__ import annotations

import itertools
import linecache
import logging
import math
import os
import queue
import re
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from functools import partial
from operator import itemgetter
from typing import TYPE_CHECKING, Any

from ..errors import DefinitionError, WorkerCrashed
from ..executors import make_executor
from ..executors.base import (
    Job,
    Outcome,
    RemoteTraceback,
    TaskCancelled,
    WorkerDied,
    load_exception,
)
from ..observe.events import ChunkProcessed, ItemsTaken
from ..stagefn.output import Routed
from .emitter import ROUTING_ERRORS, Emitter

if TYPE_CHECKING:
    from .run import Run
    from .stagerun import StageRun

log = logging.getLogger("minigun_nb")

REMOTE_BACKENDS = ("process", "fork", "async", "dask")
_NOT_REMOTE_KINDS = ("producer", "batch", "debatch", "rebatch", "accumulator")
_state_lock = threading.Lock()
#: a task's pickled items stay under about this size (unless one item is bigger)
MAX_TASK_BYTES = 4 << 20


# -- once per run --------------------------------------------------------------------------------
def _remote_specs(run: Run) -> list[Any]:
    return [
        s.spec
        for s in run.stages.values()
        if s.kind not in _NOT_REMOTE_KINDS and s.spec.options["backend"] in REMOTE_BACKENDS
    ]


def prepare_run(run: Run) -> None:
    """What is due once per run before its first remote stage starts (idempotent).

    A missing optional dependency is a :class:`DefinitionError` naming the extra;
    ``before_fork`` hooks run in the kernel when the run has a process or fork stage.
    """
    with _state_lock:
        if run.remote_prepared:
            return
        run.remote_prepared = True
    specs = _remote_specs(run)
    dask_stages = [s.path for s in specs if s.options["backend"] == "dask"]
    if dask_stages:
        from ..executors.dask import ADDRESS_ENV, available, unguarded_script_line

        if not available():
            raise DefinitionError(
                f"stage {dask_stages[0]!r}: backend='dask' needs Dask distributed, which is "
                f"not installed; install the extra with `pip install minigun_nb[dask]` "
                f"(or use backend='process')."
            )
        local = run.graph.options.get("dask_client") is None and not os.environ.get(ADDRESS_ENV)
        line = unguarded_script_line() if local else None
        if line is not None:
            raise DefinitionError(
                f"stage {dask_stages[0]!r}: backend='dask' starts a LocalCluster, whose "
                f"workers import this script again, but the run starts at line {line} outside "
                f"an `if __name__ == \"__main__\":` block; put the code that runs the pipeline "
                f"under that guard (or pass dask_client= / set {ADDRESS_ENV})."
            )
    if any(s.options["backend"] in ("process", "fork") for s in specs):
        for _pp, hook in run.graph.hooks.get("before_fork", ()):
            hook()


def driver_count(st: StageRun) -> int:
    """Threads the stage needs in the kernel (called by ``StageRun.start``): a taker and a
    driver. Prepares the run on the first remote stage."""
    try:
        prepare_run(st.run)
        st.remote = RemoteStage(st)
    except BaseException:
        st.run.cancel()  # stages already started wind down; nothing is left running
        raise
    return 2


def remote_loop(st: StageRun, index: int) -> None:
    rs: RemoteStage = st.remote
    if index == 0:
        rs.drive()
    else:
        rs.take()


def sync_iter(result: Any) -> Iterator[Any]:
    """An ``async def`` producer's result as a plain iterator, run on a private event loop in
    the producer's thread: an async generator's items one by one, or what a coroutine
    returns (an iterable of items, or one item). Closing it closes the async generator."""
    import asyncio
    import inspect

    loop = asyncio.new_event_loop()
    try:
        if inspect.iscoroutine(result):
            value = loop.run_until_complete(result)
            if value is None:
                return
            if isinstance(value, (str, bytes, bytearray, dict, Routed)) or not hasattr(
                value, "__iter__"
            ):
                yield value
            else:
                yield from value
            return
        agen = result
        try:
            while True:
                try:
                    item = loop.run_until_complete(agen.__anext__())
                except StopAsyncIteration:
                    return
                yield item
        finally:
            loop.run_until_complete(agen.aclose())
    finally:
        loop.close()


# -- bookkeeping ---------------------------------------------------------------------------------
class _Chunk:
    """Items taken together from the channel; closed when every item is resolved."""

    __slots__ = ("items", "seq", "left", "pieces", "crashes", "closed")

    def __init__(self, items: list[Any], seq: int) -> None:
        self.items = items
        self.seq = seq
        self.left = len(items)
        self.pieces: list[tuple[int, Callable[[], None]]] = []
        self.crashes: dict[int, int] = {}
        self.closed = False


class _Task:
    """Items ``[lo, hi)`` of a chunk sent to the executor as one task."""

    __slots__ = ("chunk", "lo", "hi", "isolated", "next")

    def __init__(self, chunk: _Chunk, lo: int, hi: int, isolated: bool = False) -> None:
        self.chunk = chunk
        self.lo = lo
        self.hi = hi
        self.isolated = isolated
        self.next = 0  # items [lo, lo + next) have been reported


_TB_LINE = re.compile(r'  File "([^"]+)", line (\d+), in (\S+)$')


def _code_files(fn: Any) -> dict[str, str]:
    """Function name -> source file, for a stage function and the functions it can see."""
    out: dict[str, str] = {}
    seen: set[int] = set()
    todo = [fn, getattr(fn, "__call__", None)]  # noqa: B004 - a stateful stage object
    while todo:
        f = todo.pop()
        f = getattr(f, "__func__", f)
        code = getattr(f, "__code__", None)
        if code is None or id(f) in seen:
            continue
        seen.add(id(f))
        out.setdefault(code.co_name, code.co_filename)
        if len(seen) > 200:
            break
        for cell in getattr(f, "__closure__", None) or ():
            try:
                todo.append(cell.cell_contents)
            except ValueError:
                pass
        module = getattr(f, "__globals__", {})
        todo.extend(v for k in code.co_names if callable(v := module.get(k)))
    return out


def _put_part(events: queue.SimpleQueue[tuple[str, Any]], task: _Task, outcome: Any) -> None:
    events.put(("part", (task, outcome)))


def _put_done(events: queue.SimpleQueue[tuple[str, Any]], task: _Task, fut: Any) -> None:
    events.put(("done", (task, fut)))


class RemoteStage:
    """The kernel side of one remote stage in one run."""

    def __init__(self, st: StageRun) -> None:
        self.st = st
        self.run = st.run
        opts = st.spec.options
        self.backend = opts["backend"]
        self.ex = make_executor(self.backend, st)
        self.max_tasks = max(1, st.workers * self.ex.depth)
        self.slots = threading.Semaphore(self.max_tasks)
        self.events: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        qs = opts["queue_size"]
        self.fixed = opts["chunk_size"] is not None
        self.cap = min(opts["chunk_size"] or qs, qs)
        self.per_item = 0.0
        self.ordered = bool(opts["ordered"])
        self.crash_retries = opts["crash_retries"]
        self.timeout = opts["timeout"]
        self.track = bool(opts["track_latency"])
        self.stop_taking = False
        self.failed_setup = False
        self.driver_done = False
        self.inflight: set[_Task] = set()
        self.ready: deque[_Task] = deque()
        self.isolated: deque[_Task] = deque()
        self.chunks_open = 0
        self.next_seq = 0
        self.release_seq = 0
        self.held: dict[int, _Chunk] = {}
        self._files: dict[str, str] | None = None

    # -- the taker thread ------------------------------------------------------------------------
    def limit(self) -> int:
        if self.fixed:
            return self.cap
        per = self.per_item
        if per <= 0:
            return 1  # first learn what an item costs
        n = min(int(self.ex.target_seconds / per) or 1, self.cap)
        size = getattr(self.ex, "item_bytes", 0.0)
        if size > 0:  # big items travel in small chunks, so transfers overlap with work
            n = min(n, max(1, int(MAX_TASK_BYTES / size)))
        ch = self.st.channel
        if n * per > 0.005 and self.st.workers > 1 and ch is not None:
            n = min(n, max(1, math.ceil(len(ch) / self.st.workers)))  # share long work fairly
        return max(1, min(n, self.cap))

    def take(self) -> None:
        st, run = self.st, self.run
        ch = st.channel
        assert ch is not None
        try:
            while True:
                while not self.slots.acquire(timeout=0.1):
                    if self.driver_done or run.cancelled or self.stop_taking:
                        return
                if self.stop_taking or self.driver_done:
                    self.slots.release()
                    return
                chunk = ch.get(self.limit())
                if not chunk:  # closed and drained, or cancelled
                    self.slots.release()
                    return
                n = len(chunk)
                with st.lock:
                    st.in_hand += n
                run.publish(ItemsTaken(st.path, n, id(chunk)))
                self.events.put(("take", chunk))
        finally:
            self.events.put(("input_end", None))

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
            input_done = False
            cancel_seen = False
            while True:
                if run.cancelled and not cancel_seen:
                    cancel_seen = True
                    ex.cancel()
                if input_done and self.chunks_open == 0 and not self.inflight:
                    break  # every task ended too: a fork child may still be tearing down
                self._schedule()
                try:
                    kind, arg = self.events.get(timeout=0.1)
                except queue.Empty:
                    continue
                if kind == "take":
                    self._on_take(arg)
                elif kind == "part":
                    self._on_outcome(*arg)
                elif kind == "done":
                    self._on_done(*arg)
                else:
                    input_done = True
        finally:
            self.driver_done = True
            try:
                if self.inflight:  # only after an internal error: do not leave work behind
                    ex.cancel()
                if opened:
                    for err in ex.finish():
                        self._record(None, load_exception(err), 1, err.traceback, has_item=False)
            finally:
                ex.close()

    def _on_take(self, items: list[Any]) -> None:
        c = _Chunk(items, self.next_seq)
        self.next_seq += 1
        self.chunks_open += 1
        self.ready.append(_Task(c, 0, len(items)))

    def _schedule(self) -> None:
        if self.failed_setup or self.run.cancelled:
            while self.ready or self.isolated:
                t = (self.ready or self.isolated).popleft()
                self._cancel_range(t.chunk, t.lo, t.hi)
            return
        if self.isolated:  # suspects of a pool crash run alone, so a crash names its item
            if not self.inflight:
                self._submit(self.isolated.popleft())
            return
        while self.ready and len(self.inflight) < self.max_tasks:
            self._submit(self.ready.popleft())

    def _submit(self, task: _Task) -> None:
        c = task.chunk
        items = (
            c.items if (task.lo == 0 and task.hi == len(c.items)) else c.items[task.lo : task.hi]
        )
        self.inflight.add(task)
        events = self.events
        try:
            fut = self.ex.submit(items, partial(_put_part, events, task))
        except BaseException as exc:  # noqa: BLE001 - treated like a failed task
            fut = Future()
            fut.set_exception(exc)
        fut.add_done_callback(partial(_put_done, events, task))

    # -- results ---------------------------------------------------------------------------------
    def _on_outcome(self, task: _Task, oc: Outcome) -> None:
        c = task.chunk
        base = task.lo + oc.start
        task.next = max(task.next, oc.start + oc.n)
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
            self._piece(c, base, partial(self._emit, c, task.lo, oc))

    def _on_done(self, task: _Task, fut: Future[None]) -> None:
        self.inflight.discard(task)
        c = task.chunk
        lo, hi = task.lo + task.next, task.hi
        if lo >= hi:
            return
        exc = TaskCancelled() if fut.cancelled() else fut.exception()
        if exc is None:
            exc = RuntimeError("internal: the executor ended a task without reporting its items")
        if isinstance(exc, TaskCancelled) or self.run.cancelled or self.failed_setup:
            self._cancel_range(c, lo, hi)
        elif isinstance(exc, WorkerDied):
            self._crashed(task, lo, hi, exc)
        else:
            self._fail_range(c, lo, hi, exc, 1)

    def _crashed(self, task: _Task, lo: int, hi: int, exc: WorkerDied) -> None:
        c = task.chunk
        isolates = self.ex.isolates_crashes
        log.debug(
            "worker died in %s (%d items unreported): %s",
            self.st.path,
            hi - lo,
            exc,
            extra=self.run.log_extra(self.st.path),
        )
        if task.hi - task.lo > 1:
            # a whole chunk crashed: not the items' fault yet; re-run them one by one
            self.ready.extend(_Task(c, i, i + 1) for i in range(lo, hi))
            return
        if not (isolates or task.isolated):
            self.isolated.append(_Task(c, lo, hi, isolated=True))  # a suspect
            return
        if exc.timeout:
            self._fail_range(
                c, lo, hi, TimeoutError(f"item took longer than timeout={self.timeout} s"), 1
            )
            return
        n = c.crashes[lo] = c.crashes.get(lo, 0) + 1
        if n >= max(1, self.crash_retries):
            self._fail_range(
                c,
                lo,
                hi,
                WorkerCrashed(
                    f"the worker process died {n} time(s) while processing this item ({exc})"
                ),
                n,
            )
        elif isolates:
            self.ready.append(_Task(c, lo, hi))
        else:
            self.isolated.append(_Task(c, lo, hi, isolated=True))

    def _piece(self, c: _Chunk, base: int, action: Callable[[], None]) -> None:
        """Run what resolves items ``base..`` of chunk ``c`` (in chunk order when ordered)."""
        if not self.ordered:
            action()
            if c.left == 0:
                self._close_chunk(c)
            return
        c.pieces.append((base, action))
        if c.left == 0:
            self.held[c.seq] = c
            while self.release_seq in self.held:
                done = self.held.pop(self.release_seq)
                self.release_seq += 1
                for _base, act in sorted(done.pieces, key=itemgetter(0)):
                    act()
                done.pieces = []
                self._close_chunk(done)

    def _close_chunk(self, c: _Chunk) -> None:
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
        self.slots.release()

    def _emit(self, c: _Chunk, lo: int, oc: Outcome) -> None:
        """Route one outcome's emissions and account for its items, as a thread worker does."""
        st, run, em = self.st, self.run, self.em
        items = c.items
        before = em.count
        done, failed = oc.done, oc.failed
        for err in oc.errors:
            self._record(
                items[lo + err.index], load_exception(err), err.attempts, err.traceback, oc.worker
            )
        if oc.dyn:
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
        out = oc.out
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
        if oc.n:
            per = (oc.busy + oc.cost) / oc.n
            self.per_item = per if self.per_item <= 0 else 0.7 * self.per_item + 0.3 * per
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

    def _fail_range(self, c: _Chunk, lo: int, hi: int, exc: BaseException, attempts: int) -> None:
        c.left -= hi - lo

        def fail() -> None:
            for i in range(lo, hi):
                self._record(c.items[i], exc, attempts)
            self.run.publish(ChunkProcessed(self.st.path, 0, hi - lo, 0, 0, 0, 0.0, (),
                                            id(c.items)))

        self._piece(c, lo, fail)

    def _cancel_range(self, c: _Chunk, lo: int, hi: int) -> None:
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

    def _fix_tb(self, tb: str) -> str:
        """Show source lines the worker could not: a function shipped by value runs as
        ``<dynamic-code>`` (named again here) and a notebook cell's source lives only in the
        kernel's line cache."""
        if self._files is None:
            self._files = _code_files(self.st.spec.stage.fn)
        files = self._files
        lines = tb.split("\n")
        out: list[str] = []
        for i, text in enumerate(lines):
            m = _TB_LINE.match(text)
            if m is None:
                out.append(text)
                continue
            filename, line, name = m.group(1), int(m.group(2)), m.group(3)
            if filename == "<dynamic-code>":
                filename = files.get(name, filename)
                text = f'  File "{filename}", line {line}, in {name}'
            out.append(text)
            shown = i + 1 < len(lines) and lines[i + 1].startswith("    ")
            if not shown:
                source = linecache.getline(filename, line).strip()
                if source:
                    out.append(f"    {source}")
        return "\n".join(out)

    def _record(
        self,
        item: Any,
        exc: BaseException,
        attempts: int,
        tb: str | None = None,
        worker: str | None = None,
        has_item: bool = True,
        fatal: str | None = None,
    ) -> None:
        run = self.run
        if tb:
            tb = self._fix_tb(tb)
            if exc.__cause__ is None:  # the printed StageError shows the worker's frames
                exc.__cause__ = RemoteTraceback(tb)
        if has_item:
            run.record_error(self.st, item, exc, attempts)
        else:  # setup/teardown: a row that concerns no item (never re-driven)
            run.record_error(self.st, None, exc, attempts, has_item=False, fatal=fatal)
        if not tb and not worker:
            return
        # the row was built in the kernel; give it the worker's traceback and identity
        with run.lock:
            for rec in reversed(run.errors):
                if rec.exc is exc:
                    if tb:
                        rec.traceback = tb
                    if worker:
                        rec.worker = worker
                    break
        failure = run.failure
        if tb and failure is not None and failure.__cause__ is exc:
            failure.remote_traceback = tb
