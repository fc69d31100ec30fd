"""Where stage functions run, behind one small interface (:mod:`.base`).

``thread`` and ``inline`` stages run in the runtime's own worker threads; ``process`` (loky),
``fork``, ``async`` and ``dask`` stages run here, driven from the kernel by
:mod:`minigun_nb.runtime.remote`. Backend modules are imported only when a stage uses them, so
importing minigun_nb loads neither loky nor dask.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..runtime.stagerun import StageRun
    from .base import Executor


def make_executor(backend: str, st: StageRun) -> Executor:
    """The executor of one remote stage for one run."""
    if backend == "process":
        from .process import ProcessExecutor

        return ProcessExecutor(st)
    if backend == "fork":
        from .fork import ForkExecutor

        return ForkExecutor(st)
    if backend == "async":
        from .async_ import AsyncExecutor

        return AsyncExecutor(st)
    if backend == "dask":
        from .dask import DaskExecutor

        return DaskExecutor(st)
    raise ValueError(f"no remote executor for backend {backend!r}")


def shutdown(wait: bool = True) -> None:
    """Close every warm process pool now; their worker processes exit.

    Process stages keep their loky pool warm between runs (``worker_idle_timeout``, default
    300 s) so a re-run cell does not pay a cold start. Call this to free the workers at once,
    when no run is in progress. It also happens at interpreter exit.

    Examples
    --------
    >>> import minigun_nb as mg
    >>> mg.shutdown()
    """
    mod: Any = sys.modules.get("minigun_nb.executors.process")
    if mod is not None:  # no process stage ever ran: nothing to close (and no loky import)
        mod.shutdown(wait=wait)


__all__ = ["make_executor", "shutdown"]
