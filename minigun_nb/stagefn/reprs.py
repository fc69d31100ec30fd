"""Short, safe, one-line reprs of user objects (stdlib only; safe to import anywhere).

Used for what a display shows of an item or an output (``peek``) and for ``item_repr`` in
error rows: one line of at most ``limit`` characters, built with :mod:`reprlib` so that a
huge container is not rendered whole, and never raising (a ``__repr__`` that raises gives
``"<repr failed>"``).

Examples
--------
>>> short_repr(list(range(100)), 30)
'[0, 1, 2, 3, 4, 5, ...]'
>>> short_repr("a\\nb")
"'a\\\\nb'"
>>> class Bad:
...     def __repr__(self): raise ValueError("no")
>>> short_repr(Bad())
'<repr failed>'
"""

from __future__ import annotations

import itertools
import reprlib
from collections.abc import Callable
from typing import Any

__all__ = ["REPR_FAILED", "short_repr"]

REPR_FAILED = "<repr failed>"

class _Repr(reprlib.Repr):
    def repr_bytes(self, x: bytes, level: int) -> str:
        # slice first: repr() of 50 MB of bytes would build a 200 MB string
        if len(x) <= self.maxstring:
            return repr(x)
        return repr(x[: self.maxstring]) + f"... ({len(x):,} bytes)"

    def repr_bytearray(self, x: bytearray, level: int) -> str:
        if len(x) <= self.maxstring:
            return repr(x)
        return f"bytearray({bytes(x[: self.maxstring])!r}... ({len(x):,} bytes))"

    def repr_set(self, x: set[Any], level: int) -> str:
        return self._unsorted(x, "{", "}", level, "set()")

    def repr_frozenset(self, x: frozenset[Any], level: int) -> str:
        return self._unsorted(x, "frozenset({", "})", level, "frozenset()")

    def _unsorted(self, x: Any, left: str, right: str, level: int, empty: str) -> str:
        # reprlib sorts a set before cutting it: 10M items would be sorted for 6
        if not x:
            return empty
        if level <= 0:
            return left + "..." + right
        parts = [self.repr1(v, level - 1) for v in itertools.islice(x, self.maxset)]
        if len(x) > self.maxset:
            parts.append("...")
        return left + ", ".join(parts) + right

    def repr_instance(self, x: Any, level: int) -> str:
        # reprlib hides a failing __repr__ behind "<X instance at 0x...>": say it failed
        text = repr(x)
        if len(text) > self.maxother:
            text = text[: self.maxother - 3] + "..."
        return text


_REPR = _Repr()
_REPR.maxstring = 160
_REPR.maxother = 160
_REPR.maxlist = _REPR.maxtuple = _REPR.maxset = _REPR.maxfrozenset = 6
_REPR.maxdict = 4
_REPR.maxlevel = 3


def short_repr(value: Any, limit: int = 200, *,
               failed: str | Callable[[Any, BaseException], str] = REPR_FAILED) -> str:
    """One line of at most ``limit`` characters describing ``value``; never raises.

    ``failed`` is what a ``__repr__`` that raises (or returns no string) gives: a string, or
    a function of the value and the exception.
    """
    try:
        text = _REPR.repr(value)
        if not isinstance(text, str):
            raise TypeError("__repr__ returned a non-string")
    except BaseException as exc:  # noqa: BLE001 - a user __repr__ may do anything
        return failed(value, exc) if callable(failed) else failed
    if "\n" in text or "\r" in text:  # a DataFrame, a multi-line __repr__: keep it one line
        text = " ".join(part.strip() for part in text.splitlines() if part.strip())
    if len(text) > limit:
        text = text[: max(0, limit - 3)] + "..."
    return text
