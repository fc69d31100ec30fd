"""A worker process's side of a run: the jobs it holds, a chunk task, a fork child's body.

A worker caches the unpickled job under its token, so a function travels once per worker per
run. ``after_fork`` hooks run once per run in each worker process (and in every fork child),
``setup`` once per worker per run. Everything an item emits is collected locally and shipped
back as :class:`~.outcome.Outcome` records; the kernel routes it.
"""

from __future__ import annotations

import os
import pickle
import signal
import sys
import threading
import time
import traceback
from collections import OrderedDict
from collections.abc import Sequence
from functools import partial
from typing import Any

from .outcome import ErrorInfo, Job, Outcome
from .runner import PreparedJob, perf
from .wire import Payload, dump_outcome, dumps, pack, unpack, write_all, write_payload

#: returned by a worker that does not hold the job yet: the kernel resends it with the job
NEED_JOB = b""
_MAX_JOBS = 4

_jobs: OrderedDict[str, PreparedJob] = OrderedDict()
_lock = threading.Lock()

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


def has_job(token: str) -> bool:
    return token in _jobs


def install(token: str, blob: bytes, kind: str) -> PreparedJob:
    """Unpickle a job and keep it under ``token`` (the oldest of too many is torn down)."""
    if kind == "process" and threading.current_thread() is threading.main_thread():
        # Ctrl-C in a terminal reaches the whole process group: the kernel decides whether
        # to drain or cancel, a worker must not die of it half-way through a chunk
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    job = pickle.loads(blob)
    prep = PreparedJob(job, kind)
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
        prep = install(token, blob, kind)
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


def fork_child(job: Job, items: Sequence[Any], fd: int, parent: int) -> int:
    """Body of a fork child: run the chunk, stream outcomes over ``fd``; the exit code."""
    send = partial(write_all, fd)

    def write(payload: Payload) -> None:
        write_payload(send, payload, stream=True)

    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the kernel decides when to stop
        _watching.clear()  # a thread of the parent's does not survive the fork
        watch_parent(parent)
        prep = PreparedJob(job, "fork")
        err = prep.ensure(force_after_fork=True)
        if err is not None:
            write(dumps(Outcome(0, len(items), worker=prep.worker, setup_error=err)))
            return 0
        prep.run(items, sink=lambda oc, ends: write(dump_outcome(oc, ends, True)))
        errs = prep.teardown()
        if errs:
            write(dumps(Outcome(len(items), 0, worker=prep.worker, hook_errors=errs)))
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
