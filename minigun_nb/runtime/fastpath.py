"""The hot path of a plain stage: one chunk, per item only the call and (sampled) a clock read.

Everything else (events, locks, delivery) is paid once per chunk. The general loop in :mod:`stagerun` handles what these do not
(retries, per-item timeouts, ``output``, load-balancing policies).
"""

from __future__ import annotations

import time
from types import GeneratorType
from typing import TYPE_CHECKING, Any

from ..stagefn.calling import Control, ItemCancelled
from ..stagefn.output import Routed

if TYPE_CHECKING:
    from collections.abc import Callable

    from .emitter import Emitter
    from .stagerun import StageRun

perf = time.perf_counter


def fast_eligible(st: StageRun, em: Emitter, takes_output: bool) -> bool:
    """A stage without retries, timeout, ``output`` or a load-balancing policy."""
    opts = st.spec.options
    return (
        not takes_output and opts["retries"] == 0 and opts["timeout"] is None
        and em.pick is None
    )


class _Failed:
    """Stands in for the result of an item whose call raised (already recorded)."""

    __slots__ = ()


_FAILED = _Failed()
#: result types that need more than an append: nothing to emit, a generator to iterate, a
#: dynamic route, a failed call
_SPECIAL = frozenset((type(None), GeneratorType, Routed, _Failed))
#: results that must be consumed right after their call (a generator may read per-worker state)
_LAZY = frozenset((GeneratorType, Routed))


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
    results: list[Any] = []
    failed = 0
    pos = 0
    while pos < n:
        try:
            results.extend(map(call, chunk[pos:] if pos else chunk))
        except Control:
            raise
        except BaseException as exc:  # noqa: BLE001 - an item error (SystemExit too), recorded
            k = len(results)  # the item whose call raised
            record_error(st, chunk[k], exc, 1)
        else:
            k = len(results)
            if k == n:
                break
            # list.extend took a StopIteration raised by the function for the end of the map
            record_error(st, chunk[k], StopIteration(
                "the stage function raised StopIteration (a bare next() on an exhausted "
                "iterator?); its traceback is not kept on this path"), 1)
        results.append(_FAILED)
        failed += 1
        pos = k + 1
    kinds = set(map(type, results))
    if _SPECIAL.isdisjoint(kinds):
        em.out.extend(results)
        em.count += n
        return n, 0, 0, []
    if _LAZY.isdisjoint(kinds):  # values, None (filtered) and failed calls: no Python loop
        kept = [r for r in results if r is not None and r is not _FAILED]
        em.out.extend(kept)
        em.count += len(kept)
        return n - failed, failed, n - failed - len(kept), []
    st.plain_results = False  # it does return generators: per-item loop from now on
    append = em.out.append
    direct = filtered = 0
    for i, r in enumerate(results):
        if r is None:
            filtered += 1
        elif type(r) is _Failed:
            continue
        elif type(r) is GeneratorType or type(r) is Routed:
            try:
                if _emit_lazy(em, r):
                    filtered += 1
            except ItemCancelled:  # the run was cancelled while this item emitted
                cancelled = [chunk[j] for j in range(i, n) if results[j] is not _FAILED]
                st.run.cancel_items(st, cancelled)
                em.count += direct
                return n - failed - len(cancelled), failed, filtered, []
            except Control:
                raise
            except BaseException as exc:  # noqa: BLE001 - an item error, recorded
                failed += 1
                record_error(st, chunk[i], exc, 1)
            append = em.out.append  # emit_value may have flushed a full buffer
        else:
            append(r)
            direct += 1
    em.count += direct
    return n - failed, failed, filtered, []


def _run_chunk_loop(
    st: StageRun, em: Emitter, call: Callable[[Any], Any], chunk: list[Any], timed: bool
) -> tuple[int, int, int, list[float], bool]:
    """The per-item loop, with a clock read between items when ``timed``; the last value
    says whether any call returned a generator or an ``mg.to``."""
    record_error = st.run.record_error
    append = em.out.append
    direct = failed = filtered = 0
    lazy = False
    lat: list[float] = []
    lat_append = lat.append
    n = len(chunk)
    i = 0
    t_prev = perf()
    while i < n:
        try:
            while i < n:
                item = chunk[i]
                i += 1
                r = call(item)
                if r is None:
                    filtered += 1
                elif type(r) is GeneratorType or type(r) is Routed:
                    lazy = True
                    if _emit_lazy(em, r):
                        filtered += 1
                    append = em.out.append  # emit_value may have flushed a full buffer
                else:
                    append(r)
                    direct += 1
                if timed:
                    t = perf()
                    lat_append(t - t_prev)
                    t_prev = t
        except ItemCancelled:  # the run was cancelled while this item emitted
            st.run.cancel_items(st, chunk[i - 1:])
            em.count += direct
            return i - 1 - failed, failed, filtered, lat, lazy
        except Control:
            raise
        except BaseException as exc:  # noqa: BLE001 - an item error (SystemExit too), recorded
            failed += 1
            record_error(st, chunk[i - 1], exc, 1)
            append = em.out.append
            if timed:
                t = perf()
                lat_append(t - t_prev)
                t_prev = t
    em.count += direct
    return n - failed, failed, filtered, lat, lazy


def _emit_lazy(em: Emitter, r: Any) -> bool:
    """Emit what a returned generator yields, or send a returned ``mg.to``; True when that
    emitted nothing (the item counts as filtered). A generator that fails half-way takes back
    what it yielded (what a full buffer already delivered stays delivered), then re-raises."""
    before, mark, flushes = em.count, em.item_start(), em.flushes
    try:
        if type(r) is Routed:
            em.send(r.target, r.item)
        else:
            for v in r:
                em.emit_value(v)
        if em.dyn:
            em.flush_dynamic()
    except BaseException:
        em.discard_item_emissions(mark, flushes)
        if type(r) is GeneratorType:
            r.close()  # run its finally blocks now (it stopped at a yield: a cancel)
        raise
    return em.count == before
