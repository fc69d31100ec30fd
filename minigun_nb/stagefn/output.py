"""How stage functions emit: return values, generators, ``output`` and ``mg.to`` (stdlib only)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple


class _Address(NamedTuple):
    target: str
    item: Any


#: non-empty once a :class:`Routed` was made in this process (by ``mg.to``, ``output.to``,
#: unpickling or a copy): until then no value anywhere can be one, and a batch of plain
#: values need not be searched for them
MADE: list[bool] = []


class Routed(_Address):
    """An item addressed to a named stage (``yield mg.to("name", item)``)."""

    __slots__ = ()

    def __new__(cls, target: str, item: Any) -> Routed:
        if not MADE:
            MADE.append(True)
        return tuple.__new__(cls, (target, item))

    # every other way of making one goes through __new__ too: unpickling with any protocol,
    # copies, _make and _replace
    def __reduce__(self) -> tuple[Any, tuple[str, Any]]:
        return (Routed, (self.target, self.item))

    @classmethod
    def _make(cls, iterable: Any) -> Routed:
        return cls(*iterable)


def to(name: str, item: Any) -> Routed:
    """Address one emitted item to the stage (or pipeline) called ``name``.

    Examples
    --------
    >>> import minigun_nb as mg
    >>> def triage(x):
    ...     yield mg.to("small" if x < 10 else "large", x)
    >>> next(triage(3))
    Routed(target='small', item=3)
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"mg.to(name, item): name must be a stage name (str), got {name!r}")
    return Routed(name, item)


Sink = Callable[[Any], None]


def _closed_error() -> RuntimeError:
    return RuntimeError(
        "output was used after its stage function's call returned (kept in a closure, or "
        "used from another thread): output is valid only during its own call; emit before "
        "returning, or yield the items"
    )


class _Targeted:
    __slots__ = ("_out", "_name")

    def __init__(self, out: Output, name: str) -> None:
        self._out = out
        self._name = name

    def emit(self, item: Any) -> None:
        out = self._out
        if out._closed:
            raise _closed_error()
        out._send(self._name, item)

    def __lshift__(self, item: Any) -> _Targeted:
        self.emit(item)
        return self


class Output:
    """The ``output`` parameter a stage function may ask for.

    ``output.emit(x)`` or ``output << x`` sends ``x`` on the stage's edges;
    ``output.to("name").emit(x)`` sends it to the named stage.

    Examples
    --------
    >>> sent = []
    >>> out = Output(sent.append, lambda name, x: sent.append((name, x)))
    >>> _ = out << 1
    >>> out.to("audit").emit(2)
    >>> sent
    [1, ('audit', 2)]
    """

    __slots__ = ("_emit", "_send", "_closed")

    def __init__(self, emit: Sink, send: Callable[[str, Any], None]) -> None:
        self._emit = emit
        self._send = send
        self._closed = False

    def emit(self, item: Any) -> None:
        if self._closed:
            raise _closed_error()
        self._emit(item)

    def __lshift__(self, item: Any) -> Output:
        self.emit(item)
        return self

    def to(self, name: str) -> _Targeted:
        if not isinstance(name, str) or not name:
            raise TypeError(f"output.to(name): name must be a stage name (str), got {name!r}")
        return _Targeted(self, name)

    def close(self) -> None:
        """The call it was made for has ended: later use raises ``RuntimeError`` in the
        caller (SPEC §14), instead of an emission nobody counts or that is dropped."""
        self._closed = True
