"""The chunk runner: the per-item step every runtime shares, and one stage's job run chunk by
chunk inside a worker (a loky worker, a fork child, a Dask worker).

:func:`run_item` is the per-item step: call the function, drain what it returns (a value, a
generator, ``mg.to``) into a sink, retry with backoff on ``retry_on``, take back what a failed
attempt emitted. The sink decides where emissions go: :class:`Collected` gathers them for an
:class:`~.outcome.Outcome` (the worker side); the thread runtime can hand them downstream.

:class:`PreparedJob` is a job ready to run in this process: ``after_fork`` hooks run, resources
set up, the call bound with an ``output`` that writes into its collector. Its fast loop serves
stages without retries, timeout or ``output``; the general loop everything else.
"""

from __future__ import annotations

import os
import pickle
import threading
import time
from collections.abc import Callable, Sequence
from functools import partial
from types import GeneratorType
from typing import Any, Protocol

from .calling import Control, RetryPolicy, as_resources, bind, wants
from .outcome import ErrorInfo, Job, Outcome, Unpicklable, encode_error
from .output import Output, Routed
from .sampling import time_this_chunk
from .timeouts import ItemTimer

perf = time.perf_counter

#: a streaming run (fork children) hands over what it has at least this often
FLUSH_SECONDS = 0.005

_after_fork_runs: set[str] = set()
_lock = threading.Lock()


def worker_name(kind: str) -> str:
    import socket

    return f"{kind} pid={os.getpid()} host={socket.gethostname()}"


# -- the per-item step -----------------------------------------------------------------------------
class ItemSink(Protocol):
    """Where the per-item step puts an item's emissions."""

    def mark(self) -> Any:
        """A position to take back to."""
        ...

    def take_back(self, mark: Any) -> None:
        """Forget what was emitted since ``mark`` (a failed attempt leaves nothing behind)."""

    def since(self, mark: Any) -> bool:
        """Whether anything was emitted since ``mark``."""
        ...

    def collect(self, i: int, r: Any) -> None:
        """Put what item ``i``'s call returned (a value, a generator, ``mg.to``) in place."""


def collect_values(
    values: Any, i: int, out: list[Any], dyn: list[tuple[int, str, Any]]
) -> None:
    """Sort what item ``i`` emitted: ``mg.to(...)`` values into ``dyn``, the rest into ``out``."""
    for v in values:
        if type(v) is Routed:
            dyn.append((i, v.target, v.item))
        else:
            out.append(v)


def collect_all(r: Any, i: int, out: list[Any], dyn: list[tuple[int, str, Any]]) -> int:
    """Collect a generator's values (or one mg.to); all or nothing. How many it emitted."""
    if type(r) is Routed:
        dyn.append((i, r.target, r.item))
        return 1
    mark, dmark = len(out), len(dyn)
    try:
        collect_values(r, i, out, dyn)
    except BaseException:
        del out[mark:]  # a generator failing half-way takes back what it yielded
        del dyn[dmark:]
        raise
    return len(out) - mark + len(dyn) - dmark


# -- the fast loop -----------------------------------------------------------------------------
class Failed:
    """Stands in for the result of an item whose call raised (already reported)."""

    __slots__ = ()


FAILED = Failed()
#: result types that need more than an append: nothing to emit, a generator to iterate, a
#: dynamic route, a failed call
SPECIAL = frozenset((type(None), GeneratorType, Routed, Failed))
#: results that must be consumed right after their call (a generator may read per-worker state)
LAZY = frozenset((GeneratorType, Routed))


class FastSink(Protocol):
    """Where :func:`fast_items` puts what it cannot simply append to ``out``."""

    #: plain results are appended here (read again after ``lazy`` and ``failed``, which may
    #: hand a full list downstream and start a new one)
    out: list[Any]

    def lazy(self, i: int, r: Any) -> None:
        """Drain item ``i``'s generator or send its ``mg.to`` (all or nothing); raising fails
        the item."""

    def failed(self, i: int, exc: BaseException) -> None:
        """Item ``i``'s call raised ``exc``."""


def fast_items(
    call: Callable[[Any], Any],
    items: Sequence[Any],
    lo: int,
    hi: int,
    sink: FastSink,
    nones: list[int],
    lat: list[float] | None = None,
) -> None:
    """The hot loop of a plain stage (no retries, timeout or ``output``) over
    ``items[lo:hi]``: per item the call, a type check and, when ``lat`` is given, a clock read
    (its latency appended). Plain results go to ``sink.out``, the indices of items that
    returned None to ``nones``, a generator or ``mg.to`` to ``sink.lazy`` at once (it may
    read a cursor the next call replaces); a call that raises fails only its item. The
    runtime's own :class:`~.calling.Control` signals pass through."""
    append = sink.out.append
    nones_append = nones.append
    i = lo
    prev = perf()
    while i < hi:
        try:
            while i < hi:
                item = items[i]
                i += 1
                r = call(item)
                if r is None:
                    nones_append(i - 1)
                elif type(r) is GeneratorType or type(r) is Routed:
                    sink.lazy(i - 1, r)
                    append = sink.out.append
                else:
                    append(r)
                if lat is not None:
                    t = perf()
                    lat.append(t - prev)
                    prev = t
        except Control:
            raise
        except BaseException as exc:  # noqa: BLE001 - an item error (SystemExit too)
            sink.failed(i - 1, exc)
            append = sink.out.append
            if lat is not None:
                t = perf()
                lat.append(t - prev)
                prev = t


def map_calls(call: Callable[[Any], Any], items: Sequence[Any],
              failed: Callable[[int, BaseException], None]) -> list[Any]:
    """``call`` on every item through ``map`` (the loop runs in C): the results, with
    :data:`FAILED` where a call raised (``failed(index, exception)`` is told at once). A
    raising call stops ``list.extend`` with every earlier result kept, so its index is known;
    the loop goes on after it. The runtime's own :class:`~.calling.Control` signals pass
    through."""
    n = len(items)
    results: list[Any] = []
    pos = 0
    while pos < n:
        try:
            results.extend(map(call, items[pos:] if pos else items))
        except Control:
            raise
        except BaseException as exc:  # noqa: BLE001 - an item error (SystemExit too)
            failed(len(results), exc)
        else:
            if len(results) == n:
                break
            # list.extend took a StopIteration raised by the function for the end of the map
            failed(len(results), StopIteration(
                "the stage function raised StopIteration (a bare next() on an exhausted "
                "iterator?); its traceback is not kept on this path"))
        results.append(FAILED)
        pos = len(results)
    return results


def map_items(call: Callable[[Any], Any], items: Sequence[Any], lo: int, hi: int,
              sink: FastSink, nones: list[int]) -> bool:
    """:func:`fast_items` for a stage seen to return plain values only: the calls run
    through :func:`map_calls`, then the results go where ``fast_items`` puts them. False
    when a result was a generator or ``mg.to`` after all (it was consumed after the calls
    that followed it, not at once: the caller goes back to ``fast_items``)."""
    results = map_calls(call, items[lo:hi] if lo or hi != len(items) else items,
                        lambda k, exc: sink.failed(lo + k, exc))
    kinds = set(map(type, results))
    if SPECIAL.isdisjoint(kinds):
        sink.out.extend(results)
        return True
    lazy = not LAZY.isdisjoint(kinds)
    append = sink.out.append
    for k, r in enumerate(results, lo):
        if r is None:
            nones.append(k)
        elif type(r) is Failed:
            continue
        elif type(r) is GeneratorType or type(r) is Routed:
            try:
                sink.lazy(k, r)
            except Control:
                raise
            except BaseException as exc:  # noqa: BLE001 - an item error
                sink.failed(k, exc)
            append = sink.out.append
        else:
            append(r)
    return not lazy


class _Gathered:
    """The :class:`FastSink` of a worker: lists that travel back in an Outcome."""

    __slots__ = ("out", "dyn", "multi", "errors")

    def __init__(self) -> None:
        self.out: list[Any] = []
        self.dyn: list[tuple[int, str, Any]] = []
        self.multi: dict[int, int] = {}  # items that emitted through a generator or mg.to
        self.errors: list[ErrorInfo] = []

    def lazy(self, i: int, r: Any) -> None:
        self.multi[i] = collect_all(r, i, self.out, self.dyn)

    def failed(self, i: int, exc: BaseException) -> None:
        self.errors.append(encode_error(i, exc, 1))


def run_item(
    call: Callable[[Any], Any],
    item: Any,
    i: int,
    sink: ItemSink,
    policy: RetryPolicy,
    invoke: Callable[[Callable[[Any], Any], Any, int], None] | None = None,
    sleep: Callable[[float], Any] = time.sleep,
    failed: BaseException | None = None,
) -> tuple[int, BaseException | None, bool]:
    """Run item ``i``: ``call(item)``, what it returns put in ``sink`` (``sink.collect``; or
    ``invoke(call, item, i)`` does both, e.g. under a timeout). A failure is retried as
    ``policy`` says, after its backoff (``sleep``), and what the failed attempt emitted is
    taken back. Returns the attempts made, the item's exception (None when it succeeded) and
    whether it emitted anything. The runtime's own :class:`~.calling.Control` signals pass
    through. ``failed``: the first attempt already ran (a caller's inlined hot path) and
    raised this, its emissions taken back; the rest goes on from there."""
    attempt = 1
    exc = failed
    while True:
        if exc is None:
            mark = sink.mark()
            try:
                if invoke is None:
                    sink.collect(i, call(item))
                else:
                    invoke(call, item, i)
            except Control:
                raise
            except BaseException as err:  # noqa: BLE001 - an item error (SystemExit too)
                sink.take_back(mark)
                exc = err
            else:
                return attempt, None, sink.since(mark)
        if not policy.retries_after(exc, attempt):
            return attempt, exc, False
        delay = policy.delay(attempt)
        if delay > 0:
            sleep(delay)
        attempt += 1
        exc = None


class Collected:
    """The sink of a worker: an item's static emissions go to ``out``, ``mg.to`` ones to
    ``dyn`` as ``(index, name, item)``."""

    __slots__ = ("out", "dyn")

    def __init__(self) -> None:
        self.out: list[Any] = []
        self.dyn: list[tuple[int, str, Any]] = []

    def collect(self, i: int, r: Any) -> None:
        """Put what item ``i``'s call returned (a value, a generator, ``mg.to``) in place."""
        if r is None:
            return
        if type(r) is GeneratorType:
            collect_values(r, i, self.out, self.dyn)
        elif type(r) is Routed:
            self.dyn.append((i, r.target, r.item))
        else:
            self.out.append(r)

    def mark(self) -> tuple[int, int]:
        return len(self.out), len(self.dyn)

    def take_back(self, mark: tuple[int, int]) -> None:
        del self.out[mark[0]:]
        del self.dyn[mark[1]:]

    def since(self, mark: tuple[int, int]) -> bool:
        return len(self.out) != mark[0] or len(self.dyn) != mark[1]


class Collector(threading.local):
    """Where the ``output`` parameter of a worker's call writes: the current item's lists (per
    thread, as a Dask worker may run several chunks of a job at once)."""

    def __init__(self) -> None:
        self.out: list[Any] = []
        self.dyn: list[tuple[int, str, Any]] = []
        self.index = 0

    def emit(self, item: Any) -> None:
        self.out.append(item)

    def send(self, name: str, item: Any) -> None:
        self.dyn.append((self.index, name, item))


def _call_into(call: Callable[[Any], Any], item: Any, i: int, col: Collector,
               lists: Collected) -> None:
    col.out, col.dyn, col.index = lists.out, lists.dyn, i  # a helper thread (Dask + timeout)
    lists.collect(i, call(item))


def _unpicklable(item: Unpicklable) -> BaseException:
    try:
        raise pickle.PicklingError(item.message)
    except pickle.PicklingError as exc:
        return exc


# -- a job, ready to run in this process ----------------------------------------------------------
class PreparedJob:
    """One stage's job inside one worker process: hooks run, resources set up, call bound."""

    def __init__(self, job: Job, kind: str = "process") -> None:
        self.job = job
        self.kind = kind
        self.call: Callable[[Any], Any] | None = None
        self.resources: dict[str, Any] | None = None
        self.failed: ErrorInfo | None = None
        self.col = Collector()
        self.lock = threading.Lock()  # a Dask worker may start several chunks at once
        self.timer = ItemTimer(job.timeout) if job.timeout else None
        self.policy = job.policy
        self.worker = worker_name(kind)
        # the fast loop serves stages without retries, timeout or ``output``
        self.fast = job.retries == 0 and job.timeout is None and not wants(job.fn)[0]
        self.per_item = 0.0
        self.sampled = 0
        self.timed_items = 0  # latencies measured so far in this worker
        #: a whole chunk came back with no generator or mg.to: untimed chunks call through
        #: ``map`` (:func:`map_items`), as the thread side does
        self.plain = False

    def ensure(self, force_after_fork: bool = False) -> ErrorInfo | None:
        """Run after_fork (once per run in this process) and setup; None when ready."""
        if self.call is not None:
            return None
        with self.lock:
            return self._ensure(force_after_fork)

    def _ensure(self, force_after_fork: bool) -> ErrorInfo | None:
        if self.call is not None:
            return None
        if self.failed is not None:
            return self.failed
        job = self.job
        try:
            with _lock:
                first = force_after_fork or job.run_token not in _after_fork_runs
                _after_fork_runs.add(job.run_token)
            if first:
                for hook in job.after_fork:
                    hook()
            resources = {} if job.setup is None else as_resources(job.path, job.setup())
            self.resources = resources
            col = self.col
            self.call = bind(job.fn, resources, Output(col.emit, col.send), item_param=True)
        except Exception as exc:  # noqa: BLE001 - reported; the kernel fails the stage
            self.failed = encode_error(-1, exc, 1)
            return self.failed
        return None

    def teardown(self) -> list[ErrorInfo]:
        job = self.job
        resources, self.resources, self.call = self.resources, None, None
        if resources is None or job.teardown is None:
            return []
        try:
            job.teardown(**resources)
        except Exception as exc:  # noqa: BLE001 - a row of the error table
            return [encode_error(-1, exc, 1)]
        return []

    def run(
        self,
        items: Sequence[Any],
        sink: Callable[[Outcome, Any], None] | None = None,
        maybe_bad: bool = False,
    ) -> tuple[Outcome, Any]:
        """Run every item; return the outcome of the last segment and its emission layout.

        With ``sink``, finished segments are handed to it as they complete (streaming).
        ``maybe_bad``: the chunk may hold stand-ins for items that could not be pickled.
        """
        if maybe_bad and not any(type(x) is Unpicklable for x in items):
            maybe_bad = False
        if self.fast and not maybe_bad:
            if sink is None:
                return self._run_fast(items, 0, len(items))
            return self._stream_fast(items, sink)
        return self._run_general(items, sink, maybe_bad)

    def _stream_fast(
        self, items: Sequence[Any], sink: Callable[[Outcome, Any], None]
    ) -> tuple[Outcome, Any]:
        """The fast loop over growing slices, handing what it has to ``sink`` once
        :data:`FLUSH_SECONDS` have passed since the last hand-over, and the rest at the end
        (a chunk shorter than that is one outcome, as from :meth:`_run_fast`)."""
        call = self.call
        assert call is not None
        n = len(items)
        lo = seg = 0
        size = 1
        g, nones, lat = _Gathered(), [], []
        timed = self._timed()
        last = perf()
        while True:
            hi = min(n, lo + size)
            t = perf()
            self._fast(call, items, lo, hi, g, nones, lat if timed else None)
            now = perf()
            if hi >= n:
                oc, layout = self._fast_outcome(g, nones, lat, seg, hi, now - last)
                sink(oc, layout)
                return oc, layout
            if now - last >= FLUSH_SECONDS:
                sink(*self._fast_outcome(g, nones, lat, seg, hi, now - last))
                g, nones, lat = _Gathered(), [], []
                timed = self._timed()
                seg, last = hi, now
            took = now - t
            size = min(4 * size, max(1, int(size * FLUSH_SECONDS / took))) if took > 0 else 4 * size
            lo = hi

    def _timed(self) -> bool:
        """Whether the next chunk (or streamed segment) has its items timed one by one."""
        self.sampled += 1
        return self.job.track and time_this_chunk(self.sampled, self.timed_items, self.per_item)

    def _fast_outcome(self, g: _Gathered, nones: list[int], lat: list[float], lo: int,
                      hi: int, busy: float) -> tuple[Outcome, Any]:
        n = hi - lo
        if n:
            self.per_item = busy / n
        errors, multi = g.errors, g.multi
        filtered = len(nones) + sum(1 for k in multi.values() if k == 0)
        self.timed_items += len(lat)
        oc = Outcome(lo, n, g.out, g.dyn, n - len(errors), len(errors), filtered, 0, busy, lat,
                     errors, self.worker)
        return oc, (nones, multi)

    def _run_fast(self, items: Sequence[Any], lo: int, hi: int) -> tuple[Outcome, Any]:
        """The hot loop over ``items[lo:hi]``: per item the call, a type check and (when
        sampled) a clock read."""
        call = self.call
        assert call is not None
        g = _Gathered()
        nones: list[int] = []  # items that returned None (filtered)
        timed = self._timed()
        lat: list[float] = []
        t0 = perf()
        self._fast(call, items, lo, hi, g, nones, lat if timed else None)
        return self._fast_outcome(g, nones, lat, lo, hi, perf() - t0)

    def _fast(self, call: Callable[[Any], Any], items: Sequence[Any], lo: int, hi: int,
              g: _Gathered, nones: list[int], lat: list[float] | None) -> None:
        """``items[lo:hi]`` through :func:`map_items` once the stage has returned plain values
        only and no latency is taken, else through :func:`fast_items`."""
        if lat is None and self.plain:
            self.plain = map_items(call, items, lo, hi, g, nones)
            return
        seen = len(g.multi) + len(g.dyn)
        fast_items(call, items, lo, hi, g, nones, lat)
        self.plain = len(g.multi) + len(g.dyn) == seen

    def _run_general(
        self,
        items: Sequence[Any],
        sink: Callable[[Outcome, Any], None] | None,
        check_bad: bool = False,
    ) -> tuple[Outcome, Any]:
        call = self.call
        assert call is not None
        col = self.col
        lists = Collected()
        col.out, col.dyn = lists.out, lists.dyn
        errors: list[ErrorInfo] = []
        lat: list[float] = []
        ends: list[int] = []
        track = self.job.track
        policy = self.policy
        timer = self.timer
        invoke = None
        if timer is not None:
            def invoke(call: Callable[[Any], Any], item: Any, i: int) -> None:
                timer.run(partial(_call_into, call, item, i, col, lists))
        done = failed = filtered = retried = 0
        seg = 0
        seg_t0 = prev = last_flush = perf()
        for i, item in enumerate(items):
            col.index = i
            if check_bad and type(item) is Unpicklable:
                attempts, exc, emitted = 1, _unpicklable(item), False
            else:
                attempts, exc, emitted = run_item(call, item, i, lists, policy, invoke)
            retried += attempts - 1
            if exc is None:
                done += 1
                if not emitted:
                    filtered += 1
            else:
                failed += 1
                errors.append(encode_error(i, exc, attempts))
            ends.append(len(lists.out))
            t = perf()
            if track:
                lat.append(t - prev)
            prev = t
            if sink is not None and t - last_flush >= FLUSH_SECONDS and i + 1 < len(items):
                sink(Outcome(seg, i + 1 - seg, lists.out, lists.dyn, done, failed, filtered,
                             retried, t - seg_t0, lat, errors, self.worker), ends)
                lists.out, lists.dyn, errors, lat, ends = [], [], [], [], []
                col.out, col.dyn = lists.out, lists.dyn
                done = failed = filtered = retried = 0
                seg = i + 1
                seg_t0 = last_flush = t
        oc = Outcome(seg, len(items) - seg, lists.out, lists.dyn, done, failed, filtered,
                     retried, perf() - seg_t0, lat, errors, self.worker)
        if sink is not None:
            sink(oc, ends)
        return oc, ends
