"""What a run does once before its first pooled stage starts.

A *pooled* stage is one whose function an executor runs (``process``, ``fork``, ``async``,
``dask``), driven from the kernel by :mod:`.dispatch`. Before the first of them starts, a run
checks the optional dependencies they need, refuses a local Dask cluster started from a script
line outside an ``if __name__ == "__main__":`` guard, and runs the ``before_fork`` hooks.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any

from ..core.stage import UNPOOLED_KINDS
from ..errors import DefinitionError
from ..executors import BACKENDS

if TYPE_CHECKING:
    from .run import Run

#: backends whose stages an executor runs: the executor registry's (one line there adds one)
POOLED_BACKENDS = tuple(BACKENDS)
_state_lock = threading.Lock()


def pooled_specs(run: Run) -> list[Any]:
    """The specs of the run's stages that an executor runs."""
    return [
        s.spec
        for s in run.stages.values()
        if s.kind not in UNPOOLED_KINDS and s.spec.options["backend"] in POOLED_BACKENDS
    ]


def prepare_run(run: Run) -> None:
    """What is due once per run before its first pooled stage starts (idempotent).

    A missing optional dependency is a :class:`DefinitionError` naming the extra;
    ``before_fork`` hooks run in the kernel when the run has a process or fork stage.
    """
    with _state_lock:
        if run.pooled_prepared:
            return
        run.pooled_prepared = True
    specs = pooled_specs(run)
    dask_stages = [s.path for s in specs if s.options["backend"] == "dask"]
    if dask_stages:
        _check_dask(run, dask_stages[0])
    if any(s.options["backend"] in ("process", "fork") for s in specs):
        for _pp, hook in run.graph.hooks.get("before_fork", ()):
            hook()


def _check_dask(run: Run, path: str) -> None:
    """Dask is installed, and a LocalCluster would not re-run an unguarded script."""
    from ..executors.dask import ADDRESS_ENV, available, unguarded_script_line

    if not available():
        raise DefinitionError(
            f"stage {path!r}: backend='dask' needs Dask distributed, which is "
            f"not installed; install the extra with `pip install minigun_nb[dask]` "
            f"(or use backend='process')."
        )
    local = run.graph.options.get("dask_client") is None and not os.environ.get(ADDRESS_ENV)
    line = unguarded_script_line() if local else None
    if line is not None:
        raise DefinitionError(
            f"stage {path!r}: backend='dask' starts a LocalCluster, whose "
            f"workers import this script again, but the run starts at line {line} outside "
            f"an `if __name__ == \"__main__\":` block; put the code that runs the pipeline "
            f"under that guard (or pass dask_client= / set {ADDRESS_ENV})."
        )
