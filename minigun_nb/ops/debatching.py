"""``debatch``: one list, tuple or DataFrame split into the items it holds, lazily.

Pure and synchronous, like :mod:`.batching`; pandas is never imported here (a DataFrame item
means it is loaded already).
"""

from __future__ import annotations

import numbers
from collections.abc import Iterator
from typing import Any

from .items import BatchItemError, is_frame, type_name

__all__ = ["DICT_ROWS_PER_STEP", "check_debatch_rows", "debatch_item", "iter_debatch"]


def check_debatch_rows(rows: Any) -> None:
    """Validate the ``rows`` option of ``debatch``.

    Raises
    ------
    ValueError
        Unless ``rows`` is ``"series"``, ``"dict"`` or an int ``>= 1``.
    """
    if isinstance(rows, str) and rows in ("series", "dict"):
        return
    if isinstance(rows, numbers.Integral) and not isinstance(rows, bool) and rows >= 1:
        return
    raise ValueError(f"rows must be 'series', 'dict' or an int >= 1, got {rows!r}")


def debatch_item(item: Any, rows: str | int = "series") -> list:
    """Split one item into the items ``debatch`` emits.

    Parameters
    ----------
    item : list, tuple or DataFrame
        A list or tuple gives its elements, untouched (``None`` included).
    rows : {"series", "dict"} or int
        For a DataFrame: ``"series"`` gives one Series per row, named by the
        row's index label (values and columns kept; a frame whose columns
        have several dtypes gives object Series, so values are never cast);
        ``"dict"`` gives one dict per row (index dropped); an int ``N`` gives
        frames of ``N`` rows (the last may be short), sliced with ``iloc`` so
        that concatenating them reproduces the frame exactly.

    Returns
    -------
    list
        The pieces, in order; ``[]`` for an empty list or a frame with no rows.

    Raises
    ------
    BatchItemError
        If ``item`` is not a list, tuple or DataFrame, or ``rows="dict"`` meets
        duplicated column names.
    ValueError
        If ``rows`` is invalid.
    """
    return list(iter_debatch(item, rows))


#: ``rows="dict"`` converts this many rows at a time (``to_dict`` is vectorised, but a
#: whole big frame at once would hold every dict in memory before the first is emitted)
DICT_ROWS_PER_STEP = 10_000


def iter_debatch(item: Any, rows: str | int = "series") -> Iterator[Any]:
    """:func:`debatch_item`, lazily: the pieces are built as they are iterated.

    The runtime's ``debatch`` stage uses this so that splitting a big frame into
    many pieces never holds them all at once: the stage emits each piece as it is
    built, and backpressure from the next stage bounds how many exist.  Invalid
    input raises at the call, before anything is iterated (same errors as
    :func:`debatch_item`).

    Examples
    --------
    >>> pieces = iter_debatch([1, 2, 3])
    >>> next(pieces), list(pieces)
    (1, [2, 3])
    """
    check_debatch_rows(rows)
    if isinstance(item, (list, tuple)):
        return iter(item)
    if not is_frame(item):
        raise BatchItemError(f"debatch expects a list, tuple or DataFrame, got {type_name(item)}")
    n = len(item)
    if n == 0:
        return iter(())
    if rows == "series":
        # A single dtype survives a row; mixed dtypes would be cast to a common one
        # (int -> float), so go through object to keep every value as it is.
        frame = item if item.dtypes.nunique() <= 1 else item.astype(object)
        return (row for _, row in frame.iterrows())
    if rows == "dict":
        if not item.columns.is_unique:
            dup = list(dict.fromkeys(item.columns[item.columns.duplicated()]))
            raise BatchItemError(f"rows='dict' needs unique column names; duplicated: {dup!r}")
        if n <= DICT_ROWS_PER_STEP:
            return iter(item.to_dict(orient="records"))
        return _dict_rows(item, n)
    if n <= rows:
        return iter((item,))
    return (item.iloc[i : i + rows] for i in range(0, n, rows))


def _dict_rows(item: Any, n: int) -> Iterator[dict]:
    step = DICT_ROWS_PER_STEP
    for i in range(0, n, step):
        yield from item.iloc[i : i + step].to_dict(orient="records")
