"""The runtime's error rows: what ``result.errors`` holds for a failed item, and how it renders.

Calling a stage function (injection, retries, timeouts, error text) is :mod:`minigun_nb.stagefn`;
this module keeps what only the kernel needs.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from typing import Any

from ..stagefn.calling import format_tb, safe_str
from ..stagefn.reprs import short_repr as _short_repr


@dataclass(slots=True)
class ErrorRecord:
    """One row of ``result.errors`` (the exception object kept for ``StageError.__cause__``)."""

    stage: str
    item: Any
    exc_type: str
    message: str
    traceback: str
    attempts: int
    worker: str
    time: float
    exc: BaseException | None = None
    #: False for a failure that concerns no item (a producer, setup, teardown, ``items=``);
    #: ``result.failed_items()`` leaves those out, so a re-drive never feeds a None
    has_item: bool = True
    item_repr: str | None = None

    def row(self) -> dict[str, Any]:
        import datetime

        if self.item_repr is None:  # computed once: a user __repr__ may be slow or odd
            self.item_repr = short_repr(self.item)
        item_repr = self.item_repr
        return {
            "stage": self.stage,
            "item": self.item,
            "item_repr": item_repr,
            "exc_type": self.exc_type,
            "message": self.message,
            "traceback": self.traceback,
            "attempts": self.attempts,
            "worker": self.worker,
            "time": datetime.datetime.fromtimestamp(self.time),
        }


#: at most this many characters in an error row's ``item_repr`` (SPEC §14)
REPR_LIMIT = 200


def _repr_raised(obj: Any, exc: BaseException) -> str:
    return f"<{type(obj).__name__} object: repr() raised {type(exc).__name__}>"


def short_repr(obj: Any, limit: int = REPR_LIMIT) -> str:
    """An error row's ``item_repr``: :func:`minigun_nb.stagefn.reprs.short_repr` (one reprlib-style
    line of at most ``limit`` characters), with a placeholder naming the type when it raises."""
    return _short_repr(obj, limit, failed=_repr_raised)


class Unrenderable:
    """Stands in for an item whose ``repr``/``str`` raises in the ``item`` column of
    ``result.errors`` (pandas renders that column); the item itself is ``.item``."""

    __slots__ = ("item",)

    def __init__(self, item: Any) -> None:
        self.item = item

    def __repr__(self) -> str:
        return short_repr(self.item)

    __str__ = __repr__


def renderable(item: Any) -> Any:
    """``item``, or an :class:`Unrenderable` holding it when pandas could not show it."""
    try:
        str(item)
        repr(item)
    except BaseException:  # noqa: BLE001 - whatever it raises, the table must display
        return Unrenderable(item)
    return item


def error_record(stage: str, item: Any, exc: BaseException, attempts: int,
                 has_item: bool = True) -> ErrorRecord:
    return ErrorRecord(
        stage=stage,
        item=item,
        exc_type=type(exc).__name__,
        message=safe_str(exc),
        traceback=format_tb(exc),
        attempts=attempts,
        worker=f"{threading.current_thread().name} pid={os.getpid()}",
        time=time.time(),
        exc=exc,
        has_item=has_item,
    )
