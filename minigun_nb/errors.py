"""The exceptions and warnings of minigun_nb.

Every definition problem is a :class:`DefinitionError` raised before anything runs; its message
names the stage, what is wrong and how to fix it. Run-time problems of one item are rows of the
error table, never exceptions, unless the stage asked for ``on_error="raise"`` (then
:class:`StageError`).
"""

from __future__ import annotations

from typing import Any


class MinigunError(Exception):
    """Base class of every minigun_nb exception."""


class DefinitionError(MinigunError, ValueError):
    """A pipeline or stage is defined wrongly; nothing has run.

    Examples
    --------
    >>> import minigun_nb as mg
    >>> pipe = mg.Pipeline("p")
    >>> try:
    ...     pipe.processor(lambda a, b: a)
    ... except mg.DefinitionError as exc:
    ...     print(type(exc).__name__)
    DefinitionError
    """

    def _render_traceback_(self) -> list[str]:
        # IPython's hook for exceptions that format themselves: in a notebook the message comes
        # first and the frames inside minigun_nb are left out (the raise is always deep inside
        # the package, and __tracebackhide__ cannot hide the innermost frame)
        from .notebook.tracebacks import render_traceback

        return render_traceback(self)


class DuplicateStageError(DefinitionError):
    """Two different functions were given the same stage name in one pipeline."""


class UnknownStageError(DefinitionError):
    """A ``to=``/``from_=``/``route`` name does not match any stage or pipeline."""


class AmbiguousStageError(DefinitionError):
    """A name matches several stages at the same level; use a full path."""


class CycleError(DefinitionError):
    """The static edges of a pipeline form a cycle."""


class PipelineRunningError(DefinitionError, RuntimeError):
    """The pipeline's definition is locked while one of its runs is in progress."""


class StageError(MinigunError):
    """A stage with ``on_error="raise"`` failed; the run stopped.

    Attributes
    ----------
    stage : str
        Path of the stage that failed (``"inner/load"``).
    item : object
        The item being processed (None for a producer).
    remote_traceback : str
        The formatted traceback of the original exception, also from a worker process.
    """

    def __init__(
        self, message: str, *, stage: str, item: Any = None, remote_traceback: str = ""
    ) -> None:
        super().__init__(message)
        self.stage = stage
        self.item = item
        self.remote_traceback = remote_traceback


class WorkerCrashed(MinigunError):
    """A worker process died while processing an item (recorded in the error table)."""


class CapacityWarning(UserWarning):
    """A stage asked for more workers than ``max_threads``/``max_processes`` allow."""


__all__ = [
    "AmbiguousStageError",
    "CapacityWarning",
    "CycleError",
    "DefinitionError",
    "DuplicateStageError",
    "MinigunError",
    "PipelineRunningError",
    "StageError",
    "UnknownStageError",
    "WorkerCrashed",
]
