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
from typing import Any

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
from .runtime.emit import to

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


def __getattr__(name: str) -> Any:
    # RunResult/RunHandle live in the runtime; load them only when asked for by name
    if name == "RunResult":
        from .runtime.result import RunResult

        return RunResult
    if name == "RunHandle":
        from .runtime.handle import RunHandle

        return RunHandle
    raise AttributeError(f"module 'minigun_nb' has no attribute {name!r}")


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext minigun_nb``: registers the ``%%minigun`` cell magic.

    The magic's module (and IPython with it) is imported only here, so ``import minigun_nb``
    stays light.
    """
    from .notebook.magic import load_ipython_extension as _load

    _load(ipython)
