"""What kind of item an operator holds, without importing pandas (shared by batching and
debatching): pandas is looked up in ``sys.modules``, as an item can only be a DataFrame if
whoever built it imported pandas already."""

from __future__ import annotations

import sys
from typing import Any


class BatchItemError(Exception):
    """An incoming item the batcher refuses (message says why; state is unchanged)."""


def loaded_pandas() -> Any:
    """The pandas module if it is fully imported, else None (never imports it).

    Another thread may be importing pandas right now (a notebook reading ``handle.stats``
    during a run): its half-initialised module has no ``DataFrame`` yet, and no item can be
    a DataFrame of it, so it counts as not loaded."""
    pd = sys.modules.get("pandas")
    if pd is None or getattr(getattr(pd, "__spec__", None), "_initializing", False):
        return None
    return pd



def is_frame(item: Any) -> bool:
    pd = loaded_pandas()
    return pd is not None and isinstance(item, pd.DataFrame)


def type_name(item: Any) -> str:
    return type(item).__name__
