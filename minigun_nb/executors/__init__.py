"""Where stage functions run, behind one small interface (:mod:`.base`).

``thread`` and ``inline`` stages run in the runtime's own worker threads; ``process`` (loky),
``fork``, ``async`` and ``dask`` stages run here, driven from the kernel by the runtime's
driver. A backend is one module with one executor class, named in :data:`BACKENDS`; its module
is imported only when a stage uses it, so importing minigun_nb loads neither loky nor dask.
:class:`~.inline.InlineExecutor` is the small reference (and test double): chunks in the
calling thread.
"""

from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING, Any

from .base import ExecutorSpec

if TYPE_CHECKING:
    from .base import Executor

#: backend name -> "module:Class" of its executor (a new backend: one module, one line here)
BACKENDS: dict[str, str] = {
    "process": "minigun_nb.executors.process:ProcessExecutor",
    "fork": "minigun_nb.executors.fork:ForkExecutor",
    "async": "minigun_nb.executors.async_:AsyncExecutor",
    "dask": "minigun_nb.executors.dask:DaskExecutor",
}


def executor_class(backend: str) -> type[Executor]:
    """The executor class of ``backend`` (its module imported now)."""
    try:
        where = BACKENDS[backend]
    except KeyError:
        raise ValueError(f"no pooled executor for backend {backend!r}") from None
    module, _, name = where.partition(":")
    cls: type[Executor] = getattr(importlib.import_module(module), name)
    return cls


def make_executor(backend: str, spec: ExecutorSpec) -> Executor:
    """The executor of one pooled stage for one run."""
    return executor_class(backend)(spec)


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
    mod: Any = sys.modules.get("minigun_nb.executors.process_pool")
    if mod is not None:  # no process stage ever ran: nothing to close (and no loky import)
        mod.shutdown(wait=wait)


__all__ = ["BACKENDS", "ExecutorSpec", "executor_class", "make_executor", "shutdown"]
