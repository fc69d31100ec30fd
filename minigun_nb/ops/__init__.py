"""Pure operator logic (batching, debatching) used by the runtime's operator stages."""

from __future__ import annotations

from minigun_nb.ops.batching import MODES, Batcher
from minigun_nb.ops.debatching import check_debatch_rows, debatch_item, iter_debatch
from minigun_nb.ops.items import BatchItemError

__all__ = [
    "MODES",
    "BatchItemError",
    "Batcher",
    "check_debatch_rows",
    "debatch_item",
    "iter_debatch",
]
