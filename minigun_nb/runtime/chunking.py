"""How big a chunk a stage takes, and the order its chunks' outputs leave in: the rules the
thread workers (:mod:`.stagerun`) and the pooled stages' driver (:mod:`.dispatch`) share.

A stage learns what an item costs from the chunks it finishes (:func:`learn`) and sizes the
next chunk to about :data:`TARGET_CHUNK_SECONDS` of work (the pooled stages aim at their
executor's own target), never more than :data:`MAX_CHUNK` items, and with several workers no
more than their share of the queue (:func:`fair_share`). With ``ordered=True`` chunks are
numbered as they are taken and their outputs released in that order (:class:`Turns`).

Examples
--------
>>> per = learn(0.0, 100, 0.01)  # the first chunk sets the estimate
>>> round(per, 6), round(learn(per, 100, 0.02), 6)
(0.0001, 0.00013)
>>> fair_share(1000, queued=10, workers=4)
3
>>> turns, out = Turns(), []
>>> first, second = turns.number(), turns.number()
>>> turns.release(second, "b", out.append)  # early: held back
>>> turns.release(first, "a", out.append)
>>> out
['a', 'b']
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from typing import Any

from ..stagefn.sampling import running_mean

#: aim for about this much work per taken chunk: big enough to amortise the hop, small
#: enough that a slow stage shares its queue fairly between workers
TARGET_CHUNK_SECONDS = 0.002
#: the most items a chunk holds (taken or delivered)
MAX_CHUNK = 1000


def learn(per_item: float, n: int, seconds: float) -> float:
    """The running estimate of seconds per item after a chunk of ``n`` items took
    ``seconds``: the first chunk sets it, later ones move it by 30%."""
    if not n:
        return per_item
    return running_mean(per_item, seconds / n)


def fair_share(limit: int, queued: int, workers: int) -> int:
    """``limit`` capped at one worker's share of what is ``queued`` (at least one item)."""
    return min(limit, max(1, math.ceil(queued / workers)))


class Turns:
    """The order of a stage's chunks under ``ordered=True``: :meth:`number` when a chunk is
    taken; then either each worker waits for its chunk's turn (:meth:`wait_turn`, then
    :meth:`passed`: at most one chunk of outputs per worker is held back, the bounded reorder
    window), or one driver hands finished chunks to :meth:`release`, which holds an early one
    until those before it are released."""

    def __init__(self) -> None:
        self.take_lock = threading.Lock()  # taking and numbering a chunk is one step
        self._next = 0
        self._released = 0
        self._turn = threading.Condition()
        self._held: dict[int, Any] = {}

    def number(self) -> int:
        seq = self._next
        self._next += 1
        return seq

    def wait_turn(self, seq: int, cancelled: Callable[[], bool]) -> None:
        """Block until chunk ``seq`` is next (or the run is cancelled)."""
        with self._turn:
            while self._released != seq and not cancelled():
                self._turn.wait(0.1)

    def passed(self, seq: int) -> None:
        """Chunk ``seq`` is released: the next one may go."""
        with self._turn:
            self._released = seq + 1
            self._turn.notify_all()

    def release(self, seq: int, value: Any, action: Callable[[Any], None]) -> None:
        """``action(value)`` for chunk ``seq`` once every earlier chunk's has run (one
        thread calls this)."""
        held = self._held
        held[seq] = value
        while self._released in held:
            ready = held.pop(self._released)
            self._released += 1
            action(ready)
