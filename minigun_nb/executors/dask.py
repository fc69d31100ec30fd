"""``backend="dask"``: chunks as tasks of a Dask distributed cluster.

The client comes from ``mg.Pipeline(dask_client=...)``, else ``MINIGUN_DASK_ADDRESS`` (a client
opened for the run), else a ``LocalCluster`` started for the stage's run: ``workers`` worker
processes of one thread each, so ``workers`` is the number of concurrent calls (as for
``backend="process"``) and a worker that dies takes only its own task with it. Each dask stage
of a run starts its own cluster. Whatever the run opened, it closes when the stage ends; a
client given by the user is left alone. Dask workers need minigun_nb installed (they import
its chunk runner). Dask starts a LocalCluster's workers with ``spawn``, which imports the
``__main__`` module again: a *script* that runs a dask stage without a given client needs the
usual ``if __name__ == "__main__":`` guard (a notebook does not).

Nothing a task needs lives in the cluster's memory: the job (function, hooks, options) travels
inside the first tasks, a worker that lacks it (a fresh or restarted worker) answers
``NEED_JOB`` and gets the task again with the job, so a dying worker can never take the job
down with it. A dying worker is a crash, as for process and fork stages: the scheduler of a
cluster started for the run gives up on a task at the first death of its worker
(``allowed_failures=0``; a given cluster keeps its own ``allowed-failures`` retries), the task
ends as :class:`WorkerDied` and the driver re-runs its items one by one; an item that keeps
killing workers is re-run alone until it is a ``WorkerCrashed`` row (``crash_retries``).
"""

from __future__ import annotations

import ast
import logging
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import CancelledError, Future
from typing import Any

from ..stagefn import worker as stagefn_worker
from ..stagefn.frames import outer_frame
from ..stagefn.outcome import ErrorInfo, Job, Outcome, TaskCancelled, WorkerDied
from ..stagefn.wire import Payload, dump_items, unpack
from .base import ExecutorSpec

log = logging.getLogger("minigun_nb")
ADDRESS_ENV = "MINIGUN_DASK_ADDRESS"


def unguarded_script_line() -> int | None:
    """The line of a script's top-level code that started this run outside an
    ``if __name__ == "__main__":`` block, or None (guarded, a notebook, a REPL, unknown).

    Dask spawns a LocalCluster's workers, which import ``__main__`` again: an unguarded run
    would start again in every worker, whose nanny fails with "An attempt has been made to
    start a new process before the current process has finished its bootstrapping phase".
    """
    import sys

    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if not path:
        return None
    frame, _ = outer_frame(lambda f: not (f.f_code.co_name == "<module>"
                                          and f.f_globals.get("__name__") == "__main__"
                                          and f.f_code.co_filename == path), depth=1)
    if frame is None:
        return None
    line = frame.f_lineno
    try:
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), path)
    except (OSError, SyntaxError, ValueError):
        return None
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_main_test(node.test):
            end = node.body[-1].end_lineno or node.body[-1].lineno
            if node.body[0].lineno <= line <= end:
                return None
    return line


def _is_main_test(test: ast.expr) -> bool:
    if not isinstance(test, ast.Compare) or len(test.comparators) != 1:
        return False
    sides = [test.left, test.comparators[0]]
    names = [s for s in sides if isinstance(s, ast.Name) and s.id == "__name__"]
    consts = [s for s in sides if isinstance(s, ast.Constant) and s.value == "__main__"]
    return bool(names and consts)
_install_lock = threading.Lock()


def available() -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec("distributed") is not None
    except (ImportError, ValueError):
        return False


def run_task(token: str, blob: bytes | None, items: Payload) -> tuple[Payload, float]:
    """A chunk in a Dask worker. Several threads of one worker may bring the job at once:
    it is installed (and later set up) once per worker."""
    if blob is not None and not stagefn_worker.has_job(token):
        with _install_lock:
            if not stagefn_worker.has_job(token):
                stagefn_worker.install(token, blob, "dask")
    return stagefn_worker.run_task(token, blob, items, "dask")


def _lost_worker(exc: BaseException) -> bool:
    """True when ``exc`` means the task's worker (or the way to it) went away, not that the
    task failed by itself."""
    from distributed import KilledWorker
    from distributed.comm.core import CommClosedError

    return isinstance(exc, (KilledWorker, CommClosedError, CancelledError, ConnectionError))


class DaskExecutor:
    """Chunks submitted to a distributed Client, ``workers`` tasks at a time."""

    depth = 1
    #: a worker that dies loses every task the scheduler placed on it (a queued one too, or
    #: several on a multi-threaded worker): the driver re-runs suspects alone to blame one
    isolates_crashes = False
    target_seconds = 0.1  # a Dask task costs a few ms: ship bigger chunks
    moves_bytes = True
    reporter_drives = False
    item_bytes = 0.0  # not measured: Dask moves the pickles

    def __init__(self, spec: ExecutorSpec) -> None:
        self.path = spec.path
        self.extra = dict(spec.log_extra)
        self.given = spec.dask_client
        self.workers = max(1, int(spec.workers))
        self.client: Any = None
        self.cluster: Any = None
        self.owned = False
        self.job: Job | None = None
        self.blob = b""
        self.sent = 0
        self.cancelling = False
        self.pending: set[Any] = set()
        self.lock = threading.Lock()

    def open(self, job: Job) -> None:
        import cloudpickle
        from distributed import Client

        self.job = job
        self.blob = cloudpickle.dumps(job)
        if self.given is not None:
            self.client = self.given
        elif os.environ.get(ADDRESS_ENV):
            self.client = Client(os.environ[ADDRESS_ENV])
            self.owned = True
        else:
            from distributed import LocalCluster

            self.cluster = LocalCluster(
                n_workers=self.workers,
                processes=True,
                threads_per_worker=1,
                dashboard_address=":0",
                silence_logs=logging.ERROR,
                # a worker death ends its tasks at once (KilledWorker): the driver's crash
                # accounting (crash_retries) decides what is re-run, not the scheduler's
                scheduler_kwargs={"allowed_failures": 0},
            )
            self.owned = True
            self.client = Client(self.cluster)
            log.debug(
                "LocalCluster of %d workers started for %s",
                self.workers,
                self.path,
                extra=self.extra,
            )

    def submit(self, items: Sequence[Any], report: Callable[[Outcome], None]) -> Future[None]:
        fut: Future[None] = Future()
        fut.set_running_or_notify_cancel()
        with self.lock:
            with_job = self.sent < self.workers  # most workers get the job with their first task
            self.sent += with_job
        self._send(fut, dump_items(items), report, with_job)
        return fut

    def _send(
        self, fut: Future[None], items: Payload, report: Callable[[Outcome], None], with_job: bool
    ) -> None:
        assert self.job is not None
        if self.cancelling:
            fut.set_exception(TaskCancelled())
            return
        try:
            df = self.client.submit(
                run_task, self.job.token, self.blob if with_job else None, items, pure=False
            )
        except Exception as exc:  # noqa: BLE001 - e.g. a client that lost its scheduler
            fut.set_exception(WorkerDied(f"the Dask task could not be submitted: {exc!r}"))
            return
        with self.lock:
            self.pending.add(df)
        df.add_done_callback(lambda df: self._done(fut, items, report, df))

    def _done(
        self, fut: Future[None], items: Payload, report: Callable[[Outcome], None], df: Any
    ) -> None:
        with self.lock:
            self.pending.discard(df)
        try:
            if df.status == "cancelled":
                if self.cancelling:
                    fut.set_exception(TaskCancelled())
                else:  # not by us: the scheduler lost it (a worker or the connection died)
                    fut.set_exception(WorkerDied("the Dask task was lost by the cluster"))
                return
            if df.status == "error":
                exc = df.exception()
                if _lost_worker(exc):
                    exc = WorkerDied(f"the Dask worker running the task died: {exc}")
                fut.set_exception(exc)
                return
            try:
                payload, moved = df.result()
            except Exception as exc:  # noqa: BLE001 - classified below
                if self.cancelling and isinstance(exc, CancelledError):
                    fut.set_exception(TaskCancelled())
                elif _lost_worker(exc):
                    fut.set_exception(WorkerDied(f"the Dask task's result was lost: {exc!r}"))
                else:
                    fut.set_exception(exc)
                return
            finally:
                df.release()
            if payload == stagefn_worker.NEED_JOB:  # a fresh or restarted worker: send it the job
                self._send(fut, items, report, True)
                return
            report(unpack(payload)._replace(cost=moved))
        except BaseException as err:  # noqa: BLE001 - handed to the driver
            if not fut.done():
                fut.set_exception(err)
            return
        fut.set_result(None)

    def cancel(self) -> None:
        self.cancelling = True
        with self.lock:
            pending = list(self.pending)
        for df in pending:
            try:
                df.cancel()
            except Exception:  # noqa: BLE001 - a closed client has nothing left to cancel
                log.debug("cancelling a Dask task failed", exc_info=True, extra=self.extra)

    def finish(self) -> list[ErrorInfo]:
        job = self.job
        if job is None or self.client is None or (job.setup is None and job.teardown is None):
            return []
        errors: list[ErrorInfo] = []
        try:
            answers = self.client.run(stagefn_worker.teardown_task, job.token)
            for _pid, status, errs in answers.values():
                if status == "torn":
                    errors.extend(errs)
        except Exception:  # noqa: BLE001 - a worker gone away has nothing to tear down
            log.debug("teardown on the Dask workers failed", exc_info=True, extra=self.extra)
        return errors

    def close(self) -> None:
        if not self.owned:
            return
        try:
            if self.client is not None:
                self.client.close()
        finally:
            if self.cluster is not None:
                self.cluster.close()
                log.debug("LocalCluster of %s closed", self.path, extra=self.extra)
