"""Pure operator logic (batching, debatching) used by the runtime's operator stages."""

from __future__ import annotations

from minigun_nb.ops.batching import (
    MODES,
    Batcher,
    BatchItemError,
    check_debatch_rows,
    debatch_item,
    iter_debatch,
)

__all__ = [
    "MODES",
    "BatchItemError",
    "Batcher",
    "check_debatch_rows",
    "debatch_item",
    "iter_debatch",
]
