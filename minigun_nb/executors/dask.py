"""``backend="dask"``: chunks as tasks of a Dask distributed cluster.

The client comes from ``mg.Pipeline(dask_client=...)``, else ``MINIGUN_DASK_ADDRESS`` (a client
opened for the run), else a ``LocalCluster(n_workers=2, processes=True)`` started for the run.
Whatever the run opened, it closes when the stage ends; a client given by the user is left
alone. The job is scattered once to every worker (``broadcast=True``); each task carries only
its chunk. Dask workers need minigun_nb installed (they import its chunk runner).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from . import _chunk
from .base import ErrorInfo, Job, Outcome, TaskCancelled, WorkerDied, dump_items, unpack

if TYPE_CHECKING:
    from ..runtime.stagerun import StageRun

log = logging.getLogger("minigun_nb")
ADDRESS_ENV = "MINIGUN_DASK_ADDRESS"


def available() -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec("distributed") is not None
    except (ImportError, ValueError):
        return False


class DaskExecutor:
    """Chunks submitted to a distributed Client, ``workers`` tasks at a time."""

    depth = 1
    isolates_crashes = True
    target_seconds = 0.1  # a Dask task costs a few ms: ship bigger chunks

    def __init__(self, st: StageRun) -> None:
        self.path = st.path
        self.extra = st.run.log_extra(st.path)
        self.given = st.run.graph.options.get("dask_client")
        self.client: Any = None
        self.cluster: Any = None
        self.owned = False
        self.job: Job | None = None
        self.job_future: Any = None
        self.pending: set[Any] = set()
        self.lock = threading.Lock()

    def open(self, job: Job) -> None:
        import cloudpickle
        from distributed import Client

        self.job = job
        if self.given is not None:
            self.client = self.given
        elif os.environ.get(ADDRESS_ENV):
            self.client = Client(os.environ[ADDRESS_ENV])
            self.owned = True
        else:
            from distributed import LocalCluster

            self.cluster = LocalCluster(
                n_workers=2,
                processes=True,
                threads_per_worker=1,
                dashboard_address=":0",
                silence_logs=logging.ERROR,
            )
            self.client = Client(self.cluster)
            self.owned = True
            log.debug("LocalCluster started for %s", self.path, extra=self.extra)
        self.job_future = self.client.scatter(cloudpickle.dumps(job), broadcast=True)

    def submit(self, items: Sequence[Any], report: Callable[[Outcome], None]) -> Future[None]:
        assert self.job is not None
        fut: Future[None] = Future()
        fut.set_running_or_notify_cancel()
        df = self.client.submit(
            _chunk.run_task, self.job.token, self.job_future, dump_items(items), "dask", pure=False
        )
        with self.lock:
            self.pending.add(df)

        def done(df: Any) -> None:
            from distributed import KilledWorker

            with self.lock:
                self.pending.discard(df)
            try:
                if df.status == "cancelled":
                    fut.set_exception(TaskCancelled())
                    return
                if df.status == "error":
                    exc = df.exception()
                    if isinstance(exc, KilledWorker):
                        exc = WorkerDied(f"the Dask worker running the task died: {exc}")
                    fut.set_exception(exc)
                    return
                payload, moved = df.result()
                report(unpack(payload)._replace(cost=moved))
            except BaseException as err:  # noqa: BLE001 - handed to the driver
                fut.set_exception(err)
                return
            fut.set_result(None)

        df.add_done_callback(done)
        return fut

    def cancel(self) -> None:
        with self.lock:
            pending = list(self.pending)
        for df in pending:
            df.cancel()

    def finish(self) -> list[ErrorInfo]:
        job = self.job
        if job is None or self.client is None or (job.setup is None and job.teardown is None):
            return []
        errors: list[ErrorInfo] = []
        try:
            for _pid, status, errs in self.client.run(_chunk.teardown_task, job.token).values():
                if status == "torn":
                    errors.extend(errs)
        except Exception:  # noqa: BLE001 - a worker gone away has nothing to tear down
            log.debug("teardown on the Dask workers failed", exc_info=True, extra=self.extra)
        return errors

    def close(self) -> None:
        if self.job_future is not None:
            try:
                self.job_future.release()
            except Exception:  # noqa: BLE001
                pass
        if self.owned:
            try:
                self.client.close()
            finally:
                if self.cluster is not None:
                    self.cluster.close()
                    log.debug("LocalCluster of %s closed", self.path, extra=self.extra)
