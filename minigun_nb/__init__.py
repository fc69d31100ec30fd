"""minigun_nb: a notebook-first dataflow toolkit.

Define stages with decorators, run the pipeline from a cell, and watch it live::

    import minigun_nb as mg

    pipe = mg.Pipeline("demo")

    @pipe.producer
    def numbers():
        yield from range(100)

    @pipe.processor(workers=4)
    def square(x):
        return x * x

    result = pipe.run()

Importing the package is light: pandas, loky, widgets and IPython load only where used.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .core.graph import Edge, Graph
    from .core.pipeline import Pipeline
    from .core.stage import (
        Stage,
        accumulator,
        batch,
        consumer,
        debatch,
        processor,
        producer,
        rebatch,
        stage,
    )
    from .errors import (
        AmbiguousStageError,
        CapacityWarning,
        CycleError,
        DefinitionError,
        DuplicateStageError,
        MinigunError,
        PipelineRunningError,
        StageError,
        UnknownStageError,
        WorkerCrashed,
    )
    from .executors import shutdown
    from .runtime.handle import RunHandle
    from .runtime.result import RunResult
    from .stagefn.output import to

__version__ = "0.1.0"

# Silent by default (no "No handlers" fallback to stderr); displays and the CLI show what matters.
logging.getLogger("minigun_nb").addHandler(logging.NullHandler())

__all__ = [
    "AmbiguousStageError",
    "CapacityWarning",
    "CycleError",
    "DefinitionError",
    "DuplicateStageError",
    "Edge",
    "Graph",
    "MinigunError",
    "Pipeline",
    "PipelineRunningError",
    "Stage",
    "StageError",
    "UnknownStageError",
    "WorkerCrashed",
    "RunHandle",
    "RunResult",
    "__version__",
    "accumulator",
    "batch",
    "consumer",
    "debatch",
    "processor",
    "producer",
    "rebatch",
    "shutdown",
    "stage",
    "to",
]

#: where each public name lives. They load on first use (PEP 562), so a worker process that
#: imports ``minigun_nb.stagefn`` to run a chunk does not load the builder and the runtime.
_HOME = {
    "Edge": "core.graph",
    "Graph": "core.graph",
    "Pipeline": "core.pipeline",
    **dict.fromkeys(("Stage", "accumulator", "batch", "consumer", "debatch", "processor",
                     "producer", "rebatch", "stage"), "core.stage"),
    **dict.fromkeys(("AmbiguousStageError", "CapacityWarning", "CycleError", "DefinitionError",
                     "DuplicateStageError", "MinigunError", "PipelineRunningError",
                     "StageError", "UnknownStageError", "WorkerCrashed"), "errors"),
    "shutdown": "executors",
    "RunHandle": "runtime.handle",
    "RunResult": "runtime.result",
    "to": "stagefn.output",
}


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'minigun_nb' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value  # found once; later lookups are plain attribute reads
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext minigun_nb``: registers the ``%%minigun`` cell magic.

    The magic's module (and IPython with it) is imported only here, so ``import minigun_nb``
    stays light.
    """
    from .notebook.magic import load_ipython_extension as _load

    _load(ipython)
