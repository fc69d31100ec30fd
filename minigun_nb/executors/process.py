"""``backend="process"``: a loky process pool private to each stage, kept warm between runs.

loky's process-wide reusable executor is a singleton that is replaced whenever it is asked for
other arguments, so it cannot serve several stages: each stage owns a ``ProcessPoolExecutor``,
keyed by the Stage object and its worker count, so re-running a pipeline (or a cell a minute
later) finds its workers warm. Workers exit after ``worker_idle_timeout`` idle seconds (loky's
``timeout=``) and the pool itself is closed after that long unused; ``mg.shutdown()`` and
interpreter exit close every pool now. A pool whose worker died is replaced on the next submit.

Chunks are pickled by us, with protocol 5 and out-of-band buffers (a DataFrame's blocks are
copied once on the way, not three times), so an item or a result that cannot be pickled costs
only that item. The job (function, hooks, options) travels once per worker per run: it rides
with the first tasks, and a worker that has not seen it asks for it.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from functools import partial
from typing import TYPE_CHECKING, Any

from . import _chunk
from .base import (
    TIMEOUT_EXIT,
    ErrorInfo,
    Job,
    Outcome,
    TaskCancelled,
    WorkerDied,
    dump_items,
    payload_size,
    unpack,
)

if TYPE_CHECKING:
    from ..runtime.stagerun import StageRun

log = logging.getLogger("minigun_nb")


class StagePool:
    """One stage's loky executor, created on first use and replaced when it breaks."""

    def __init__(self, key: tuple[Any, ...], name: str, workers: int, idle: float) -> None:
        self.key = key
        self.name = name
        self.workers = workers
        self.idle = idle
        self.users = 0
        self.closed = False
        self.last_used = time.monotonic()
        self._ex: Any = None
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None

    def executor(self) -> Any:
        """The live executor (a broken one is shut down and replaced here, never in a loky
        callback thread, which could not join itself)."""
        from loky import ProcessPoolExecutor

        with self._lock:
            ex = self._ex
            if ex is not None and (ex._flags.broken is not None or ex._flags.shutdown):
                log.debug("replacing the broken process pool of %s", self.name)
                self._ex = None
                ex.shutdown(wait=True, kill_workers=True)
                ex = None
            if ex is None:
                ex = ProcessPoolExecutor(max_workers=self.workers, timeout=self.idle)
                self._ex = ex
                log.debug(
                    "process pool of %s started (%d workers, idle timeout %s s)",
                    self.name,
                    self.workers,
                    self.idle,
                )
            return ex

    def pids(self) -> set[int] | None:
        ex = self._ex
        procs = getattr(ex, "_processes", None) if ex is not None else None
        return set(procs) if procs is not None else None

    def acquire(self) -> None:
        with self._lock:
            self.users += 1
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

    def release(self) -> None:
        with self._lock:
            self.users -= 1
            self.last_used = time.monotonic()
            if self.users == 0 and not self.closed:
                self._timer = threading.Timer(self.idle, self._close_if_idle)
                self._timer.daemon = True
                self._timer.start()

    def _close_if_idle(self) -> None:
        with self._lock:
            if self.users or time.monotonic() - self.last_used < self.idle * 0.99:
                return
        _forget(self.key, wait=False)

    def close(self, wait: bool = True) -> None:
        with self._lock:
            self.closed = True
            ex, self._ex = self._ex, None
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
        if ex is not None:
            log.debug("process pool of %s shut down", self.name)
            ex.shutdown(wait=wait, kill_workers=True)


_registry: dict[tuple[Any, ...], StagePool] = {}
_registry_lock = threading.Lock()
#: pools whose Stage was garbage-collected while the registry lock was held (by this very
#: thread, possibly: finalizers run wherever the collector does); closed at the next access
_forgotten: deque[tuple[Any, ...]] = deque()


def _close_forgotten() -> None:
    while True:
        try:
            key = _forgotten.popleft()
        except IndexError:  # empty (another thread may have taken the last one)
            return
        _forget(key)


def get_pool(stage: Any, name: str, workers: int, idle: float) -> StagePool:
    """The warm pool of ``stage`` (created when missing); the caller must release() it."""
    _close_forgotten()
    key = (id(stage), workers, float(idle))
    with _registry_lock:
        pool = _registry.get(key)
        if pool is None or pool.closed:
            pool = StagePool(key, name, workers, float(idle))
            _registry[key] = pool
            try:
                # a redefined stage (a re-run cell) frees its old pool now, not after the
                # idle timeout
                weakref.finalize(stage, _forget_later, key)
            except TypeError:
                pass
        pool.acquire()
        return pool


def _forget(key: tuple[Any, ...], wait: bool = False) -> None:
    with _registry_lock:
        pool = _registry.pop(key, None)
    if pool is not None:
        pool.close(wait=wait)


def _forget_later(key: tuple[Any, ...]) -> None:
    """A Stage's finalizer. Finalizers run wherever the collector does, possibly inside the
    registry or pool locks of this very thread, so it only queues the key and lets a short
    thread take the locks."""
    _forgotten.append(key)
    threading.Thread(target=_close_forgotten, daemon=True, name="mg-pool-forget").start()


def shutdown(wait: bool = True) -> None:
    """Close every stage's process pool now (their workers exit)."""
    _forgotten.clear()
    with _registry_lock:
        pools = list(_registry.values())
        _registry.clear()
    for pool in pools:
        pool.close(wait=wait)


atexit.register(shutdown)


def _pid(worker: str) -> int | None:
    try:
        return int(worker.split("pid=", 1)[1].split()[0])
    except (IndexError, ValueError):
        return None


class ProcessExecutor:
    """Chunks as tasks of the stage's loky pool."""

    depth = 2
    isolates_crashes = False
    target_seconds = 0.02

    def __init__(self, st: StageRun) -> None:
        opts = st.spec.options
        self.workers = st.workers
        self.pool = get_pool(st.spec.stage, st.path, st.workers, opts["worker_idle_timeout"])
        self.job: Job | None = None
        self.blob = b""
        self.sent = 0
        self.served: set[int] = set()
        self.pending: set[Any] = set()
        self.lock = threading.Lock()
        self.item_bytes = 0.0  # pickled bytes per item (items or results, the larger)

    def open(self, job: Job) -> None:
        import cloudpickle

        self.job = job
        self.blob = cloudpickle.dumps(job)

    def submit(self, items: Sequence[Any], report: Callable[[Outcome], None]) -> Future[None]:
        fut: Future[None] = Future()
        fut.set_running_or_notify_cancel()
        with self.lock:
            with_job = self.sent < self.workers
            self.sent += with_job
        t = time.perf_counter()
        blob = dump_items(items, oob=True)
        moved = time.perf_counter() - t
        if items:
            per = payload_size(blob) / len(items)
            self.item_bytes = per if not self.item_bytes else 0.7 * self.item_bytes + 0.3 * per
        self._send(fut, blob, report, with_job, moved)
        return fut

    def _send(
        self,
        fut: Future[None],
        items_blob: bytes,
        report: Callable[[Outcome], None],
        with_job: bool,
        moved: float = 0.0,
    ) -> None:
        from loky.process_executor import BrokenProcessPool

        assert self.job is not None
        try:
            lf = self.pool.executor().submit(
                _chunk.run_task, self.job.token, self.blob if with_job else None, items_blob
            )
        except (BrokenProcessPool, RuntimeError) as exc:
            fut.set_exception(WorkerDied(f"the process pool is broken: {exc}"))
            return
        with self.lock:
            self.pending.add(lf)
        lf.add_done_callback(partial(self._done, fut, items_blob, report, moved))

    def _done(
        self,
        fut: Future[None],
        items_blob: bytes,
        report: Callable[[Outcome], None],
        moved: float,
        lf: Any,
    ) -> None:
        from loky.process_executor import BrokenProcessPool

        with self.lock:
            self.pending.discard(lf)
        if lf.cancelled():
            fut.set_exception(TaskCancelled())
            return
        exc = lf.exception()
        if exc is not None:
            if isinstance(exc, BrokenProcessPool):
                text = str(exc)
                fut.set_exception(
                    WorkerDied(
                        f"a worker process of the pool died: {text.splitlines()[0] if text else exc!r}"
                        + (f" {text.strip().splitlines()[-1]}" if "exit codes" in text else ""),
                        timeout=f"EXIT({TIMEOUT_EXIT})" in text,
                    )
                )
            else:
                fut.set_exception(exc)
            return
        payload, remote_moved = lf.result()
        if payload == _chunk.NEED_JOB:
            # a worker that has not seen this run's job (respawned, or not among the first)
            threading.Thread(
                target=self._send, args=(fut, items_blob, report, True, moved), daemon=True
            ).start()
            return
        try:
            t = time.perf_counter()
            oc = unpack(payload)
            oc = oc._replace(cost=moved + remote_moved + time.perf_counter() - t)
            if oc.n:
                per = payload_size(payload) / oc.n
                if per > self.item_bytes:
                    self.item_bytes = per
            pid = _pid(oc.worker)
            if pid is not None:
                self.served.add(pid)
            report(oc)
        except BaseException as err:  # noqa: BLE001 - handed to the driver
            fut.set_exception(err)
            return
        fut.set_result(None)

    def cancel(self) -> None:
        with self.lock:
            pending = list(self.pending)
        for lf in pending:
            lf.cancel()

    def finish(self) -> list[ErrorInfo]:
        """Teardown in every worker that set the job up (and drop the job there)."""
        job = self.job
        if job is None or (job.setup is None and job.teardown is None) or not self.served:
            return []
        errors: list[ErrorInfo] = []
        remaining = set(self.served)
        for _ in range(20):
            alive = self.pool.pids()
            if alive is not None:
                remaining &= alive
            if not remaining:
                break
            try:
                ex = self.pool.executor()
                futs = [ex.submit(_chunk.teardown_task, job.token) for _ in remaining]
            except Exception:  # noqa: BLE001 - a broken pool has no workers to tear down
                break
            for f in futs:
                try:
                    pid, status, errs = f.result(timeout=60)
                except Exception:  # noqa: BLE001
                    continue
                if status == "torn":
                    remaining.discard(pid)
                    errors.extend(errs)
        return errors

    def close(self) -> None:
        self.pool.release()
