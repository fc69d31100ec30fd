"""A stage's bounded input channel: chunks of items in, chunks of items out.

Items travel as lists (chunks) so a hop costs one lock round-trip per chunk, not per item.
``get`` takes what is already there up to a limit and never waits to fill a chunk, so a lone
item passes at once. The bound counts items: a put is accepted while at most ``capacity``
items are queued, so the queue never holds more than ``capacity`` items plus one chunk. With
chunks as big as the queue (the default for fast stages) that is two chunks: the sender fills
the second while the receiver works on the first, instead of a thread switch at every chunk.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

OK, CLOSED, CANCELLED = "ok", "closed", "cancelled"


class Channel:
    """Bounded, closable multi-producer multi-consumer queue of item chunks."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._chunks: deque[list[Any]] = deque()
        self._size = 0
        self._lock = threading.Lock()
        self._not_empty = threading.Condition(self._lock)
        self._not_full = threading.Condition(self._lock)
        self.closed = False
        self.cancelled = False
        self.waiting_getters = 0  # workers idle on this channel: a hungry consumer
        # a Condition's notify is Python code (~1 us) even when nobody waits: each side
        # notifies only when the other side has a waiter
        self._waiting_putters = 0
        #: called once (outside the lock) by the next put, close or cancel: a taker that
        #: waits on something else too (:meth:`take_or_listen`)
        self._listener: Any = None

    def __len__(self) -> int:
        return self._size

    @property
    def hungry(self) -> bool:
        """True when a worker is waiting for items (then a sender should not hold any back)."""
        return self.waiting_getters > 0 or self._listener is not None

    def put(self, chunk: list[Any], block: bool = True) -> str:
        """Add a chunk; blocks while the channel is full.

        Returns ``OK``, ``CLOSED`` (nothing was added) or ``CANCELLED`` (the run is being
        cancelled: the chunk was not queued and counts as cancelled).
        """
        with self._lock:
            if block and self._size > self.capacity:
                self._waiting_putters += 1
                try:
                    while self._size > self.capacity and not self.cancelled and not self.closed:
                        self._not_full.wait()
                finally:
                    self._waiting_putters -= 1
            if self.cancelled:
                return CANCELLED
            if self.closed:
                return CLOSED
            self._chunks.append(chunk)
            self._size += len(chunk)
            if self.waiting_getters:
                self._not_empty.notify()
            listener, self._listener = self._listener, None
        if listener is not None:
            listener()
        return OK

    def get(self, limit: int, timeout: float | None = None) -> list[Any] | None:
        """Up to ``limit`` items, waiting while empty. None when closed and empty.

        With ``timeout``, an empty list when nothing arrived in time.
        """
        with self._lock:
            if not self._chunks:
                self.waiting_getters += 1
                try:
                    while not self._chunks and not self.closed and not self.cancelled:
                        if not self._not_empty.wait(timeout):
                            return []
                finally:
                    self.waiting_getters -= 1
                if not self._chunks:
                    return None
            return self._take(limit)

    def take_or_listen(self, limit: int, listener: Any) -> list[Any] | None:
        """Up to ``limit`` items without waiting; None when closed and drained (or
        cancelled). When there is nothing yet, an empty list, and ``listener()`` is called
        once by the next put, close or cancel: a thread that waits on a queue of its own
        learns that there is something to take without a thread that only takes."""
        with self._lock:
            if self._chunks:
                return self._take(limit)
            if self.closed or self.cancelled:
                return None
            self._listener = listener
            return []

    def _take(self, limit: int) -> list[Any]:
        """Take up to ``limit`` items (the lock is held and a chunk is there)."""
        first = self._chunks[0]
        if len(first) <= limit:
            self._chunks.popleft()
            out = first
            # take more whole chunks while they fit: "take what is there"
            while self._chunks and len(out) + len(self._chunks[0]) <= limit:
                if out is first:
                    out = list(first)
                out.extend(self._chunks.popleft())
        else:
            out = first[:limit]
            self._chunks[0] = first[limit:]
        self._size -= len(out)
        if self._waiting_putters and self._size <= self.capacity:  # they proceed up to it
            self._not_full.notify_all()
        if self.waiting_getters and self._chunks:
            self._not_empty.notify()
        return out

    def close(self) -> None:
        """No more puts will come: getters drain what is left, then get None."""
        with self._lock:
            self.closed = True
            self._not_empty.notify_all()
            self._not_full.notify_all()
            listener, self._listener = self._listener, None
        if listener is not None:
            listener()

    def cancel(self) -> list[Any]:
        """Drop the run: return everything queued; later puts are reported as cancelled."""
        with self._lock:
            self.cancelled = True
            items = [x for chunk in self._chunks for x in chunk]
            self._chunks.clear()
            self._size = 0
            self._not_empty.notify_all()
            self._not_full.notify_all()
            listener, self._listener = self._listener, None
        if listener is not None:
            listener()
        return items
