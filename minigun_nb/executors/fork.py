"""``backend="fork"``: a copy-on-write ``os.fork()`` child per chunk (POSIX).

The child sees the kernel's memory as it was at the fork (nothing is pickled on the way in),
runs ``after_fork`` hooks and ``setup``, processes its chunk and streams outcomes back over a
pipe as it produces them: length-prefixed pickles, read concurrently by a thread in the kernel,
so outputs of any size neither block nor deadlock. An item's exception costs only that item. The
kernel reaps every child (``waitpid``); a child that dies costs the items it had not reported,
which the driver re-runs (:mod:`minigun_nb.runtime.crash`).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from functools import partial
from typing import Any

from ..stagefn.outcome import TIMEOUT_EXIT, ErrorInfo, Job, Outcome, TaskCancelled, WorkerDied
from ..stagefn.wire import read_exact, read_payload, unpack
from ..stagefn.worker import fork_child
from .base import ExecutorSpec, may_drive_here

log = logging.getLogger("minigun_nb")


def read_frame(fd: int) -> Any:
    """The next outcome a child wrote (:func:`~minigun_nb.stagefn.wire.write_payload`); None
    at end of file, or when the child died mid-frame."""
    payload = read_payload(partial(read_exact, fd))
    return None if payload is None else unpack(payload)


def _grow_pipe(fd: int) -> None:
    """A bigger pipe buffer (Linux): fewer wake-ups per megabyte of results."""
    try:
        import fcntl

        fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), 1 << 20)
    except (ImportError, OSError):
        pass


def describe_status(status: int) -> str:
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        return f"killed by {name}"
    return f"exit code {os.WEXITSTATUS(status)}"


class ForkExecutor:
    """One forked child per task; at most ``workers`` tasks (children) at a time."""

    depth = 1
    isolates_crashes = True
    # a fork, and a fresh child's first writes to the pages it shares with the kernel (copy-on-
    # write faults, refcounts included), cost several ms: give each child real work. With long
    # items the driver caps a chunk at a worker's share of the queue (dispatch.limit), so the
    # chunks shrink as the queue empties and the children finish together
    target_seconds = 1.0
    moves_bytes = False  # the items are not pickled; the results are, but stream back
    reporter_drives = True
    item_bytes = 0.0

    def __init__(self, spec: ExecutorSpec) -> None:
        self.path = spec.path
        self.extra = dict(spec.log_extra)
        self.job: Job | None = None
        self.children: dict[int, bool] = {}  # pid -> killed by us
        self.lock = threading.Lock()

    def open(self, job: Job) -> None:
        self.job = job

    def submit(self, items: Sequence[Any], report: Callable[[Outcome], None]) -> Future[None]:
        fut: Future[None] = Future()
        fut.set_running_or_notify_cancel()
        threading.Thread(
            target=self._run,
            args=(list(items), report, fut),
            daemon=True,
            name=f"mg-{self.path}-fork",
        ).start()
        return fut

    def _run(self, items: list[Any], report: Callable[[Outcome], None], fut: Future[None]) -> None:
        may_drive_here()  # this thread only waits for its child: its reports may drive
        try:
            r, w = os.pipe()
            _grow_pipe(w)
            for stream in (sys.stdout, sys.stderr):  # or the child would print it again
                try:
                    stream.flush()
                except Exception:  # noqa: BLE001 - a closed or odd stream
                    pass
            parent = os.getpid()
            pid = os.fork()
            if pid == 0:  # the child: never returns
                code = 70
                try:
                    os.close(r)
                    assert self.job is not None
                    code = fork_child(self.job, items, w, parent)
                finally:
                    os._exit(code)
            os.close(w)
            with self.lock:
                self.children[pid] = False
            log.debug(
                "forked child %d for %s (%d items)", pid, self.path, len(items), extra=self.extra
            )
            try:
                while (oc := read_frame(r)) is not None:
                    report(oc)
            finally:
                os.close(r)
                _, status = os.waitpid(pid, 0)
                with self.lock:
                    killed = self.children.pop(pid, False)
                log.debug(
                    "reaped child %d of %s: %s",
                    pid,
                    self.path,
                    describe_status(status),
                    extra=self.extra,
                )
        except BaseException as exc:  # noqa: BLE001 - handed to the driver
            fut.set_exception(exc)
            return
        if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
            fut.set_result(None)
        elif killed:
            fut.set_exception(TaskCancelled())
        elif os.WIFEXITED(status) and os.WEXITSTATUS(status) == TIMEOUT_EXIT:
            fut.set_exception(WorkerDied(f"fork child {pid} overran the timeout", timeout=True))
        else:
            fut.set_exception(WorkerDied(f"fork child {pid} died ({describe_status(status)})"))

    def cancel(self) -> None:
        """Kill the children (a cancelling stop); what they reported stays done."""
        with self.lock:
            pids = list(self.children)
            for pid in pids:
                self.children[pid] = True
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def finish(self) -> list[ErrorInfo]:
        return []  # each child tears down before it exits

    def close(self) -> None:
        self.cancel()  # normally none is left: every task ended before the driver closes
