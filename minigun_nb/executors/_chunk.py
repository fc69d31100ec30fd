"""Running a chunk of items inside a worker process (loky worker, fork child, Dask worker).

The per-item semantics mirror the thread worker (``runtime/stagerun.py``): ``output`` and
``setup`` resources are injected with ``calls.bind``; a generator's values, ``output.emit`` and
``mg.to`` are collected; retries with backoff on ``retry_on``; what a failed attempt emitted is
discarded, before a retry and when the item finally fails. Everything is collected locally and shipped back as :class:`~.base.Outcome` records; the
kernel routes it.

A worker caches the unpickled job under its token, so a function travels once per worker per
run. ``after_fork`` hooks run once per run in each worker process (and in every fork child),
``setup`` once per worker per run.
"""

from __future__ import annotations

import os
import pickle
import random
import signal
import sys
import threading
import time
import traceback
from collections import OrderedDict
from collections.abc import Callable, Sequence
from functools import partial
from types import GeneratorType
from typing import Any

from ..observe.histogram import time_this_chunk
from ..runtime.calls import TimeoutCaller, as_resources, bind, format_tb, safe_str, wants
from ..runtime.emit import Output, Routed
from .base import TIMEOUT_EXIT, ErrorInfo, Job, Outcome, Payload, Unpicklable, dumps, pack, unpack

perf = time.perf_counter

#: returned by a worker that does not hold the job yet: the kernel resends it with the job
NEED_JOB = b""
#: fork children send what they have at least this often (streaming, not at exit)
FLUSH_SECONDS = 0.005
_MAX_JOBS = 4

_jobs: OrderedDict[str, Prepared] = OrderedDict()
_after_fork_runs: set[str] = set()
_lock = threading.Lock()


def encode_error(index: int, exc: BaseException, attempts: int) -> ErrorInfo:
    try:
        import cloudpickle

        blob: bytes | None = cloudpickle.dumps(exc)
    except BaseException:  # noqa: BLE001 - the kernel gets a stand-in of the same class name
        blob = None
    # a __str__ that raises gives a placeholder message, never a lost row (SPEC §14)
    return ErrorInfo(index, type(exc).__name__, safe_str(exc), format_tb(exc), blob, attempts)


def worker_name(kind: str) -> str:
    import socket

    return f"{kind} pid={os.getpid()} host={socket.gethostname()}"


class _Collector(threading.local):
    """The sinks behind the ``output`` parameter: the current item's lists (per thread, as a
    Dask worker may run several chunks of a job at once)."""

    def __init__(self) -> None:
        self.out: list[Any] = []
        self.dyn: list[tuple[int, str, Any]] = []
        self.index = 0

    def emit(self, item: Any) -> None:
        self.out.append(item)

    def send(self, name: str, item: Any) -> None:
        self.dyn.append((self.index, name, item))


#: how often a worker process checks that its parent is still there
PARENT_POLL_SECONDS = 0.5
_watching: list[int] = []


def watch_parent(parent: int) -> None:
    """End this worker process within about a second of its parent's death (SIGKILL,
    SIGTERM of a script, a crashed kernel): without it a warm loky worker is re-parented to
    init and lives on until its idle timeout, a fork child until its chunk ends (SPEC §14).
    A loky ``initializer`` and the first thing a fork child does."""
    if _watching:
        return
    _watching.append(parent)

    def watch() -> None:
        while True:
            time.sleep(PARENT_POLL_SECONDS)
            if os.getppid() != parent:
                os._exit(0)

    threading.Thread(target=watch, name="mg-parent-watch", daemon=True).start()


# -- per-item timeouts ---------------------------------------------------------------------------
class _Watchdog:
    """Ends the process when an item overruns its deadline and ignored the soft timeout."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._deadline: float | None = None
        threading.Thread(target=self._watch, name="mg-watchdog", daemon=True).start()

    def arm(self, deadline: float) -> None:
        with self._cond:
            self._deadline = deadline
            self._cond.notify()

    def disarm(self) -> None:
        self._deadline = None  # the watcher re-checks on wake; no notify needed

    def _watch(self) -> None:
        with self._cond:
            while True:
                deadline = self._deadline
                if deadline is None:
                    self._cond.wait()
                    continue
                left = deadline - time.monotonic()
                if left <= 0:
                    sys.stderr.flush()
                    os._exit(TIMEOUT_EXIT)
                self._cond.wait(left)


_watchdog: _Watchdog | None = None
_alarm = {"armed": False, "message": ""}


def _on_alarm(signum: int, frame: Any) -> None:
    if _alarm["armed"]:
        _alarm["armed"] = False
        raise TimeoutError(_alarm["message"])


class _Timer:
    """A soft timeout (SIGALRM raises TimeoutError in the item) backed by a hard one (the
    watchdog ends the process, the kernel records TimeoutError). Off the main thread (Dask
    worker threads) the item runs on a helper thread that is abandoned when it overruns."""

    def __init__(self, timeout: float) -> None:
        global _watchdog
        self.timeout = timeout
        self.grace = max(1.0, timeout)
        self.main = threading.current_thread() is threading.main_thread() and hasattr(
            signal, "setitimer"
        )  # no SIGALRM on Windows
        self.caller: TimeoutCaller | None = None
        if self.main:
            signal.signal(signal.SIGALRM, _on_alarm)
            if _watchdog is None:
                _watchdog = _Watchdog()
        else:
            self.caller = TimeoutCaller("mg-remote")

    def run(self, fn: Callable[[], None]) -> None:
        if self.caller is not None:
            self.caller.call(lambda _: fn(), None, self.timeout)
            return
        assert _watchdog is not None
        _alarm["message"] = f"item took longer than timeout={self.timeout} s"
        _watchdog.arm(time.monotonic() + self.timeout + self.grace)
        _alarm["armed"] = True
        signal.setitimer(signal.ITIMER_REAL, self.timeout)
        try:
            fn()
        finally:
            _alarm["armed"] = False
            signal.setitimer(signal.ITIMER_REAL, 0)
            _watchdog.disarm()


# -- a job, ready to run in this process ----------------------------------------------------------
class Prepared:
    """One stage's job inside one worker process: hooks run, resources set up, call bound."""

    def __init__(self, job: Job, kind: str = "process") -> None:
        self.job = job
        self.kind = kind
        self.call: Callable[[Any], Any] | None = None
        self.resources: dict[str, Any] | None = None
        self.failed: ErrorInfo | None = None
        self.col = _Collector()
        self.lock = threading.Lock()  # a Dask worker may start several chunks at once
        self.timer = _Timer(job.timeout) if job.timeout else None
        self.worker = worker_name(kind)
        # the fast loop serves stages without retries, timeout or ``output``
        self.fast = job.retries == 0 and job.timeout is None and not wants(job.fn)[0]
        self.per_item = 0.0
        self.sampled = 0
        self.timed_items = 0  # latencies measured so far in this worker

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
        """Run every item; return the outcome of the last segment and its emission ends.

        With ``sink``, finished segments are handed to it as they complete (streaming).
        ``maybe_bad``: the chunk may hold stand-ins for items that could not be pickled.
        """
        if maybe_bad and not any(type(x) is Unpicklable for x in items):
            maybe_bad = False
        if self.fast and sink is None and not maybe_bad:
            return self._run_fast(items)
        return self._run_general(items, sink, maybe_bad)

    def _run_fast(self, items: Sequence[Any]) -> tuple[Outcome, Any]:
        """The hot loop: per item the call, a type check and (when sampled) a clock read."""
        call = self.call
        assert call is not None
        out: list[Any] = []
        append = out.append
        dyn: list[tuple[int, str, Any]] = []
        errors: list[ErrorInfo] = []
        lat: list[float] = []
        nones: list[int] = []  # items that returned None (filtered)
        multi: dict[int, int] = {}  # items that emitted through a generator or mg.to
        self.sampled += 1
        timed = self.job.track and time_this_chunk(self.sampled, self.timed_items, self.per_item)
        n = len(items)
        i = 0
        t0 = prev = perf()
        while i < n:
            try:
                while i < n:
                    item = items[i]
                    i += 1
                    r = call(item)
                    if r is None:
                        nones.append(i - 1)
                    elif type(r) is GeneratorType or type(r) is Routed:
                        multi[i - 1] = _emit_many(r, i - 1, out, dyn)
                        append = out.append
                    else:
                        append(r)
                    if timed:
                        t = perf()
                        lat.append(t - prev)
                        prev = t
            except BaseException as exc:  # noqa: BLE001 - an item error (SystemExit too)
                errors.append(encode_error(i - 1, exc, 1))
                if timed:
                    t = perf()
                    lat.append(t - prev)
                    prev = t
        busy = perf() - t0
        if n:
            self.per_item = busy / n
        filtered = len(nones) + sum(1 for k in multi.values() if k == 0)
        oc = Outcome(
            0,
            n,
            out,
            dyn,
            n - len(errors),
            len(errors),
            filtered,
            0,
            busy,
            lat,
            errors,
            self.worker,
        )
        self.timed_items += len(lat)
        return oc, (nones, multi)

    def _run_general(
        self,
        items: Sequence[Any],
        sink: Callable[[Outcome, Any], None] | None,
        check_bad: bool = False,
    ) -> tuple[Outcome, Any]:
        job = self.job
        call = self.call
        assert call is not None
        col = self.col
        out: list[Any] = []
        dyn: list[tuple[int, str, Any]] = []
        col.out, col.dyn = out, dyn
        errors: list[ErrorInfo] = []
        lat: list[float] = []
        ends: list[int] = []
        track = job.track
        retries = job.retries
        retry_on = job.retry_on
        timer = self.timer
        done = failed = filtered = retried = 0
        seg = 0
        seg_t0 = prev = last_flush = perf()
        for i, item in enumerate(items):
            col.index = i
            mark = len(out)
            dmark = len(dyn)
            attempt = 1
            while True:
                try:
                    if check_bad and type(item) is Unpicklable:
                        raise pickle.PicklingError(item.message)
                    if timer is not None:
                        timer.run(partial(_call_into, call, item, i, col, out, dyn))
                    else:
                        r = call(item)
                        if r is not None:
                            if type(r) is GeneratorType:
                                for v in r:
                                    if type(v) is Routed:
                                        dyn.append((i, v.target, v.item))
                                    else:
                                        out.append(v)
                            elif type(r) is Routed:
                                dyn.append((i, r.target, r.item))
                            else:
                                out.append(r)
                    done += 1
                    if len(out) == mark and len(dyn) == dmark:
                        filtered += 1
                    break
                except BaseException as exc:  # noqa: BLE001 - an item error (SystemExit too)
                    if (
                        attempt <= retries
                        and isinstance(exc, retry_on)
                        and not (check_bad and type(item) is Unpicklable)
                    ):
                        del out[mark:]
                        del dyn[dmark:]
                        retried += 1
                        if job.backoff > 0:
                            time.sleep(job.backoff * 2 ** (attempt - 1) * (0.5 + random.random()))
                        attempt += 1
                        continue
                    del out[mark:]  # a failed item leaves nothing behind
                    del dyn[dmark:]
                    failed += 1
                    errors.append(encode_error(i, exc, attempt))
                    break
            ends.append(len(out))
            t = perf()
            if track:
                lat.append(t - prev)
            prev = t
            if sink is not None and t - last_flush >= FLUSH_SECONDS and i + 1 < len(items):
                sink(
                    Outcome(
                        seg,
                        i + 1 - seg,
                        out,
                        dyn,
                        done,
                        failed,
                        filtered,
                        retried,
                        t - seg_t0,
                        lat,
                        errors,
                        self.worker,
                    ),
                    ends,
                )
                out, dyn, errors, lat, ends = [], [], [], [], []
                col.out, col.dyn = out, dyn
                done = failed = filtered = retried = 0
                seg = i + 1
                seg_t0 = last_flush = t
        oc = Outcome(
            seg,
            len(items) - seg,
            out,
            dyn,
            done,
            failed,
            filtered,
            retried,
            perf() - seg_t0,
            lat,
            errors,
            self.worker,
        )
        if sink is not None:
            sink(oc, ends)
        return oc, ends


def _emit_many(r: Any, i: int, out: list[Any], dyn: list[tuple[int, str, Any]]) -> int:
    """Collect a generator's values (or one mg.to); all or nothing. How many it emitted."""
    if type(r) is Routed:
        dyn.append((i, r.target, r.item))
        return 1
    mark, dmark = len(out), len(dyn)
    try:
        for v in r:
            if type(v) is Routed:
                dyn.append((i, v.target, v.item))
            else:
                out.append(v)
    except BaseException:
        del out[mark:]  # a generator failing half-way takes back what it yielded
        del dyn[dmark:]
        raise
    return len(out) - mark + len(dyn) - dmark


def _ends(oc: Outcome, layout: Any) -> list[int]:
    """Where each item's static emissions end in ``oc.out``."""
    if isinstance(layout, list):
        return layout
    nones, multi = layout
    skip = set(nones) | {e.index for e in oc.errors}
    statics: dict[int, int] = {}
    for idx, _name, _item in oc.dyn:
        statics[idx] = statics.get(idx, 0) - 1
    ends = []
    pos = 0
    for j in range(oc.start, oc.start + oc.n):
        if j in multi:
            pos += multi[j] + statics.get(j, 0)
        elif j not in skip:
            pos += 1
        ends.append(pos)
    return ends


def _call_into(
    call: Callable[[Any], Any],
    item: Any,
    i: int,
    col: _Collector,
    out: list[Any],
    dyn: list[tuple[int, str, Any]],
) -> None:
    col.out, col.dyn, col.index = out, dyn, i  # this may be a helper thread (Dask + timeout)
    r = call(item)
    if r is None:
        return
    split_values(r if type(r) is GeneratorType else (r,), i, out, dyn)


def split_values(
    values: Any, i: int, out: list[Any], dyn: list[tuple[int, str, Any]]
) -> None:
    """Sort what item ``i`` emitted: ``mg.to(...)`` values into ``dyn``, the rest into ``out``."""
    for v in values:
        if type(v) is Routed:
            dyn.append((i, v.target, v.item))
        else:
            out.append(v)


def dump_outcome(oc: Outcome, layout: Any, oob: bool = False) -> Payload:
    """Pickle an outcome; an item whose results cannot be pickled becomes an item error."""
    try:
        return pack(oc, oob)
    except Exception:  # noqa: BLE001 - find the items at fault
        pass
    ends = _ends(oc, layout)
    failed_idx = {e.index for e in oc.errors}
    out: list[Any] = []
    dyn_by: dict[int, list[tuple[int, str, Any]]] = {}
    for d in oc.dyn:
        dyn_by.setdefault(d[0], []).append(d)
    dyn: list[tuple[int, str, Any]] = []
    errors = list(oc.errors)
    done, failed = oc.done, oc.failed
    lo = 0
    for j, hi in enumerate(ends):
        idx = oc.start + j
        values = oc.out[lo:hi]
        routed = dyn_by.get(idx, [])
        lo = hi
        try:
            dumps((values, routed))
        except Exception as exc:  # noqa: BLE001
            if idx not in failed_idx:
                done -= 1
                failed += 1
                errors.append(
                    ErrorInfo(
                        idx,
                        "PicklingError",
                        f"the item's results cannot be pickled to send them back to the kernel "
                        f"({type(exc).__name__}: {exc})",
                        "",
                        None,
                        1,
                    )
                )
            continue
        out.extend(values)
        dyn.extend(routed)
    return pack(oc._replace(out=out, dyn=dyn, errors=errors, done=done, failed=failed), oob)


# -- entry points ---------------------------------------------------------------------------------
def _install(token: str, blob: bytes, kind: str) -> Prepared:
    if kind == "process" and threading.current_thread() is threading.main_thread():
        # Ctrl-C in a terminal reaches the whole process group: the kernel decides whether
        # to drain or cancel, a worker must not die of it half-way through a chunk
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    job = pickle.loads(blob)
    prep = Prepared(job, kind)
    with _lock:
        _jobs[token] = prep
        while len(_jobs) > _MAX_JOBS:
            _, old = _jobs.popitem(last=False)
            old.teardown()
    return prep


def run_task(
    token: str, blob: bytes | None, items: Payload, kind: str = "process"
) -> tuple[Payload, float]:
    """Run a chunk in a pool worker (loky or Dask).

    Returns the pickled Outcome (or NEED_JOB when this worker lacks the job and none was
    sent) and the seconds spent unpickling the items and pickling the outcome. Items that came
    with out-of-band buffers go back the same way.
    """
    prep = _jobs.get(token)
    if prep is None:
        if blob is None:
            return NEED_JOB, 0.0
        prep = _install(token, blob, kind)
    oob = isinstance(items, tuple)
    # a stand-in's class name is in the pickle only when the kernel had to use one
    maybe_bad = b"Unpicklable" in (items[0] if oob else items)
    t = perf()
    chunk = unpack(items)
    del items
    moved = perf() - t
    err = prep.ensure()
    if err is not None:
        return pack(Outcome(0, len(chunk), worker=prep.worker, setup_error=err), oob), moved
    oc, ends = prep.run(chunk, maybe_bad=maybe_bad)
    del chunk
    t = perf()
    payload = dump_outcome(oc, ends, oob)
    return payload, moved + perf() - t


def teardown_task(token: str) -> tuple[int, str, list[ErrorInfo]]:
    """End a job in this worker (teardown); a worker without it waits a moment so the
    workers that hold it pick up the other teardown tasks."""
    with _lock:
        prep = _jobs.pop(token, None)
    if prep is None:
        time.sleep(0.05)
        return os.getpid(), "absent", []
    return os.getpid(), "torn", prep.teardown()


def _write_all(fd: int, data: Any) -> None:
    view = memoryview(data).cast("B")
    while view:
        n = os.write(fd, view)
        view = view[n:]


def write_frame(fd: int, payload: Payload) -> None:
    """One frame: ``[meta length][buffer count][buffer lengths...]`` then meta, then the
    out-of-band buffers as they are (a DataFrame's blocks are not copied into the frame)."""
    meta, bufs = payload if isinstance(payload, tuple) else (payload, [])
    views = [memoryview(b).cast("B") for b in bufs]
    head = b"".join(
        [len(meta).to_bytes(8, "little"), len(views).to_bytes(4, "little")]
        + [v.nbytes.to_bytes(8, "little") for v in views]
    )
    _write_all(fd, head + meta if len(meta) < 1 << 16 else head)
    if len(meta) >= 1 << 16:
        _write_all(fd, meta)
    for v in views:
        _write_all(fd, v)


def fork_child(job: Job, items: Sequence[Any], fd: int, parent: int) -> int:
    """Body of a fork child: run the chunk, stream outcomes over ``fd``; the exit code."""
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the kernel decides when to stop
        _watching.clear()  # a thread of the parent's does not survive the fork
        watch_parent(parent)
        prep = Prepared(job, "fork")
        err = prep.ensure(force_after_fork=True)
        if err is not None:
            write_frame(fd, dumps(Outcome(0, len(items), worker=prep.worker, setup_error=err)))
            return 0
        prep.run(items, sink=lambda oc, ends: write_frame(fd, dump_outcome(oc, ends, True)))
        errs = prep.teardown()
        if errs:
            write_frame(fd, dumps(Outcome(len(items), 0, worker=prep.worker, hook_errors=errs)))
        return 0
    except BaseException:  # noqa: BLE001 - an engine failure in the child: report and die
        traceback.print_exc()
        return 70
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001
                pass
