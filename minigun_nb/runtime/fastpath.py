"""The hot path of a plain stage: one chunk, per item only the call and (sampled) a clock read.

Everything else (events, locks, delivery) is paid once per chunk. The general loop in :mod:`stagerun` handles what these do not
(retries, per-item timeouts, ``output``, load-balancing policies).
"""

from __future__ import annotations

import time
from types import GeneratorType
from typing import TYPE_CHECKING, Any

from .emit import Routed

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


def run_chunk(
    st: StageRun, em: Emitter, call: Callable[[Any], Any], chunk: list[Any], track: bool
) -> tuple[int, int, int, list[float]]:
    """Process one chunk; returns (done, failed, filtered, latencies)."""
    record_error = st.run.record_error
    append = em.out.append
    direct = failed = filtered = 0
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
                    before = em.count
                    if type(r) is Routed:
                        em.send(r.target, r.item)
                    else:
                        for v in r:
                            em.emit_value(v)
                    if em.dyn:
                        em.flush_dynamic()
                    if em.count == before:
                        filtered += 1
                    append = em.out.append  # emit_value may have flushed a full buffer
                else:
                    append(r)
                    direct += 1
                if track:
                    t = perf()
                    lat_append(t - t_prev)
                    t_prev = t
        except Exception as exc:  # noqa: BLE001 - an item error, recorded
            em.dyn.clear()
            failed += 1
            record_error(st, chunk[i - 1], exc, 1)
            append = em.out.append
            if track:
                t = perf()
                lat_append(t - t_prev)
                t_prev = t
    em.count += direct
    return n - failed, failed, filtered, lat
