"""The hot path of a plain stage: one chunk, per item only the call and (sampled) a clock read.

Everything else (events, locks, delivery) is paid once per chunk. The per-item loop is
:func:`minigun_nb.stagefn.runner.fast_items`, the one the worker processes run, with a sink
that hands emissions to the Emitter; the ``map`` loop is the thread side's own. The general
loop in :mod:`stagerun` handles what these do not (retries, per-item timeouts, ``output``,
load-balancing policies).
"""

from __future__ import annotations

from types import GeneratorType
from typing import TYPE_CHECKING, Any

from ..stagefn.calling import Control, ItemCancelled
from ..stagefn.output import Routed
from ..stagefn.runner import FAILED, LAZY, SPECIAL, Failed, fast_items, map_calls

if TYPE_CHECKING:
    from collections.abc import Callable

    from .emitter import Emitter
    from .stagerun import StageRun

def fast_eligible(st: StageRun, em: Emitter, takes_output: bool) -> bool:
    """A stage without retries, timeout, ``output`` or a load-balancing policy."""
    opts = st.spec.options
    return (
        not takes_output and opts["retries"] == 0 and opts["timeout"] is None
        and em.pick is None
    )


def run_chunk(
    st: StageRun, em: Emitter, call: Callable[[Any], Any], chunk: list[Any], track: bool
) -> tuple[int, int, int, list[float]]:
    """Process one chunk; returns (done, failed, filtered, latencies).

    Timed chunks, and every chunk of a stage not yet seen to return only plain values, take
    the per-item loop: the call, then at once whatever it returned (a returned generator is
    iterated before the next call, as it may read a cursor or a file of the worker). Once a
    whole chunk came back without a generator or ``mg.to``, untimed chunks call the function
    through ``map`` (the per-item loop runs in C) and emit plain results in one ``extend``.
    A call that raises stops ``list.extend`` with every earlier result kept, so its index is
    known; it is recorded and the chunk goes on after it.
    """
    if track or not st.plain_results:
        done, failed, filtered, lat, lazy = _run_chunk_loop(st, em, call, chunk, track)
        st.plain_results = not lazy
        return done, failed, filtered, lat
    record_error = st.run.record_error
    n = len(chunk)
    errors: list[int] = []

    def failed_call(k: int, exc: BaseException) -> None:
        errors.append(k)
        record_error(st, chunk[k], exc, 1)

    results = map_calls(call, chunk, failed_call)
    failed = len(errors)
    kinds = set(map(type, results))
    if SPECIAL.isdisjoint(kinds):
        em.out.extend(results)
        em.count += n
        return n, 0, 0, []
    if LAZY.isdisjoint(kinds):  # values, None (filtered) and failed calls: no Python loop
        kept = [r for r in results if r is not None and r is not FAILED]
        em.out.extend(kept)
        em.count += len(kept)
        return n - failed, failed, n - failed - len(kept), []
    st.plain_results = False  # it does return generators: per-item loop from now on
    sink = _ThreadSink(st, em, chunk)
    append = em.out.append
    direct = filtered = 0
    for i, r in enumerate(results):
        if r is None:
            filtered += 1
        elif type(r) is Failed:
            continue
        elif type(r) is GeneratorType or type(r) is Routed:
            try:
                sink.lazy(i, r)
            except ItemCancelled:  # the run was cancelled while this item emitted
                cancelled = [chunk[j] for j in range(i, n) if results[j] is not FAILED]
                st.run.cancel_items(st, cancelled)
                em.count += direct
                failed += sink.failures
                return n - failed - len(cancelled), failed, filtered + sink.empty, []
            except Control:
                raise
            except BaseException as exc:  # noqa: BLE001 - an item error, recorded
                sink.failed(i, exc)
            append = em.out.append  # emit_value may have flushed a full buffer
        else:
            append(r)
            direct += 1
    em.count += direct
    return n - failed - sink.failures, failed + sink.failures, filtered + sink.empty, []


class _ThreadSink:
    """The :class:`~minigun_nb.stagefn.runner.FastSink` of a thread worker: plain results go
    into the Emitter's buffer, a generator or ``mg.to`` through it (``Emitter.collect``, as in
    the general loop), a failed call is an error row at once."""

    __slots__ = ("st", "em", "out", "chunk", "record", "lazy_items", "empty", "failures",
                 "current")

    def __init__(self, st: StageRun, em: Emitter, chunk: list[Any]) -> None:
        self.st, self.em, self.chunk = st, em, chunk
        self.out = em.out  # taken again after an emission that may have delivered it
        self.record = st.run.record_error
        self.lazy_items = 0  # items whose generator or mg.to emitted without failing
        self.empty = 0  # of those, items that emitted nothing (filtered)
        self.failures = 0
        self.current = -1  # the item being drained (a cancel cuts the chunk there)

    @property
    def lazy_seen(self) -> bool:
        """Some call returned a generator or an ``mg.to``."""
        return self.current >= 0

    def lazy(self, i: int, r: Any) -> None:
        """Emit what a returned generator yields, or send a returned ``mg.to``. A generator
        that fails half-way takes back what it yielded (what a full buffer already delivered
        stays delivered), then re-raises; one that emitted nothing is filtered."""
        em = self.em
        self.current = i
        before, mark, flushes = em.count, em.item_start(), em.flushes
        try:
            em.collect(i, r)
        except BaseException:
            em.discard_item_emissions(mark, flushes)
            raise
        finally:
            self.out = em.out
        if em.count == before:
            self.empty += 1
        self.lazy_items += 1

    def failed(self, i: int, exc: BaseException) -> None:
        self.failures += 1
        self.record(self.st, self.chunk[i], exc, 1)
        self.out = self.em.out


def _run_chunk_loop(
    st: StageRun, em: Emitter, call: Callable[[Any], Any], chunk: list[Any], timed: bool
) -> tuple[int, int, int, list[float], bool]:
    """The per-item loop (:func:`~minigun_nb.stagefn.runner.fast_items`, the worker
    processes' too), with a clock read between items when ``timed``; the last value says
    whether any call returned a generator or an ``mg.to``."""
    sink = _ThreadSink(st, em, chunk)
    nones: list[int] = []
    lat: list[float] = []
    n = len(chunk)
    try:
        fast_items(call, chunk, 0, n, sink, nones, lat if timed else None)
    except ItemCancelled:  # the run was cancelled while this item emitted
        i = sink.current
        st.run.cancel_items(st, chunk[i:])
        direct = i - sink.failures - len(nones) - sink.lazy_items
        em.count += direct
        return i - sink.failures, sink.failures, len(nones) + sink.empty, lat, True
    direct = n - sink.failures - len(nones) - sink.lazy_items
    em.count += direct
    return n - sink.failures, sink.failures, len(nones) + sink.empty, lat, sink.lazy_seen
