"""The warm loky pools of process stages, kept warm between runs, idle ones capped.

loky's process-wide reusable executor is a singleton that is replaced whenever it is asked for
other arguments, so it cannot serve several stages: each stage owns a ``ProcessPoolExecutor``,
keyed by the pipeline's name, the stage's path and its worker count (not by the Stage object:
a cell re-run ten times, its old pipelines kept alive by ``Out[]``, reuses one pool), so
re-running a pipeline (or a cell a minute later) finds its workers warm.

A run holds its pool's workers until it ends, so a run that starts while another run of the
same stage is going gets a second pool. When a pool goes idle, other idle pools of the same
stage path close, and idle workers across all stages are capped at the CPU count
(``MINIGUN_MAX_IDLE_WORKERS``), the oldest idle pool closing first. Workers exit after
``worker_idle_timeout`` idle seconds (loky's ``timeout=``) and within a second of the kernel's
death (they watch their parent); the pool itself is closed after that long unused.
:func:`shutdown` (``mg.shutdown()``, interpreter exit) closes every pool now.
"""

from __future__ import annotations

import atexit
import itertools
import logging
import os
import threading
import time
from collections import deque
from typing import Any

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

    def executor(self, extra: dict[str, Any] | None = None) -> Any:
        """The live executor (a broken one is shut down and replaced here, never in a loky
        callback thread, which could not join itself)."""
        from loky import ProcessPoolExecutor

        with self._lock:
            ex = self._ex
            if ex is not None and (ex._flags.broken is not None or ex._flags.shutdown):
                log.debug("replacing the broken process pool of %s", self.name, extra=extra)
                self._ex = None
                ex.shutdown(wait=True, kill_workers=True)
                ex = None
            if ex is None:
                from ..stagefn.worker import watch_parent

                # workers end within a second of this process's death (SPEC §14)
                ex = ProcessPoolExecutor(max_workers=self.workers, timeout=self.idle,
                                         initializer=watch_parent, initargs=(os.getpid(),))
                self._ex = ex
                log.debug(
                    "process pool of %s started (%d workers, idle timeout %s s)",
                    self.name,
                    self.workers,
                    self.idle,
                    extra=extra,
                )
            return ex

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
            idle = self.users == 0 and not self.closed
            if idle:
                self._timer = threading.Timer(self.idle, self._close_if_idle)
                self._timer.daemon = True
                self._timer.start()
        if idle:
            _trim_idle(self)

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
            log.debug("process pool of %s shut down", self.name,
                      extra={"run_id": None, "stage": self.name})
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


#: idle warm workers kept across all stages; beyond it the oldest idle pools close
MAX_IDLE_WORKERS = int(os.environ.get("MINIGUN_MAX_IDLE_WORKERS", 0)) or (os.cpu_count() or 4)


def _trim_idle(released: StagePool) -> None:
    """A pool just went idle: keep one idle pool per stage path (the one just released)
    and at most :data:`MAX_IDLE_WORKERS` idle workers in all, closing the oldest first."""
    with _registry_lock:
        idle = sorted((p for p in _registry.values()
                       if p.users == 0 and not p.closed and p._ex is not None),
                      key=lambda p: p.last_used, reverse=True)  # newest first
        doomed = [p for p in idle if p is not released and p.key[:2] == released.key[:2]]
        total = 0
        for p in idle:
            if p in doomed:
                continue
            total += p.workers
            if total > MAX_IDLE_WORKERS and p is not idle[0]:
                doomed.append(p)
        for p in doomed:
            _registry.pop(p.key, None)
    for p in doomed:
        log.debug("closing the idle process pool of %s (idle workers capped at %d)", p.name,
                  MAX_IDLE_WORKERS, extra={"run_id": None, "stage": p.name})
        p.close(wait=False)


def get_pool(name: str, workers: int, idle: float, owner: str = "") -> StagePool:
    """A warm pool of ``stage`` that no run is using (created when there is none); the
    caller must release() it.

    A run holds its pool's workers from its first chunk to its end (one serve task each), so
    two runs of one pipeline at the same time get a pool each: sharing one, the second would
    wait for the first to end, and two stages crossing over (run 1 holds g's workers and
    waits for f's replaced pool, run 2 holds f's and waits for g's) would never end. The
    second pool is kept warm and closed the same way as the first.
    """
    _close_forgotten()
    with _registry_lock:
        for slot in itertools.count():
            # keyed by the stage's path, not the Stage object: a cell re-run ten times (its
            # old pipelines kept alive by Out[]) reuses one pool; the job travels per run
            key = (owner, name, workers, float(idle), slot)
            pool = _registry.get(key)
            if pool is None or pool.closed:
                pool = StagePool(key, name, workers, float(idle))
                _registry[key] = pool
                break
            if pool.users == 0:
                break
        pool.acquire()
        return pool


def _forget(key: tuple[Any, ...], wait: bool = False) -> None:
    with _registry_lock:
        pool = _registry.pop(key, None)
    if pool is not None:
        pool.close(wait=wait)


def shutdown(wait: bool = True) -> None:
    """Close every stage's process pool now (their workers exit)."""
    _forgotten.clear()
    with _registry_lock:
        pools = list(_registry.values())
        _registry.clear()
    for pool in pools:
        pool.close(wait=wait)


atexit.register(shutdown)
