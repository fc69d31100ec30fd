"""A producer's loop: the user's generator runs on the producer thread, which ships what it pulls.

The generator is pulled in batches that run in C and each batch is shipped downstream from
the same thread (see :class:`Handoff`): a fast generator moves in full chunks with no thread
hop, a slow one hands over every item as it is yielded, and an item yielded just before the
generator blocks is shipped by a watcher thread. The user's code stays on the producer thread,
so resources from ``setup=`` are used on the thread that made them.
"""

from __future__ import annotations

import inspect
import logging
import threading
import time
from collections.abc import Callable, Sequence
from functools import partial
from types import GeneratorType
from typing import TYPE_CHECKING, Any

from ..observe.events import ChunkProcessed
from ..stagefn.calling import bind
from ..stagefn.output import MADE as ROUTED
from ..stagefn.output import Output, Routed
from .emitter import ROUTING_ERRORS, Emitter

if TYPE_CHECKING:
    from .run import Run
    from .stagerun import StageRun

log = logging.getLogger("minigun_nb")

_NOT_ITERATED = (str, bytes, bytearray, dict)

#: a batch of pulls should take about this long: a fast generator then moves in full chunks
#: (the batch doubles while it takes less than half of this), a slow one item by item
BATCH_SECONDS = 0.002
#: the watcher's tick: an item that waited a whole tick with nothing shipped leaves then, so
#: what a generator yields reaches the next stage within two ticks (SPEC §14: about 100 ms)
WATCH_SECONDS = 0.04
#: the last ticket of every batch: its next() ends the batch, so a batch that ends before it
#: met the end of the source
_PROBE = iter(())


class ProducerStopped(BaseException):
    """Raised by ``output.emit``/``output.to`` in a producer once the run stops: it ends a
    producer that only emits (a ``while True`` loop) as the end of a generator would. A
    BaseException, so that ``except Exception`` in the producer lets it through; its
    ``finally`` blocks run."""


class Handoff:
    """A bounded hand-off from the thread that pulls items (a producer's generator, an
    ``items=`` iterable) to the stages downstream.

    The puller pulls in batches that run in C (``list.extend(map(next, tickets))``: no Python
    work per item) and, at the end of each batch, ships the batch itself: no thread hop for a
    fast generator, and while a ship waits for room downstream nothing more is pulled (that is
    how backpressure reaches it). A batch is sized to take about :data:`BATCH_SECONDS` (one
    item at first, doubling while pulls are fast, up to ``limit`` and to what the receivers
    take at a time), so a slow generator's items leave one by one. An item that waits anyway,
    because the generator blocks in the middle of a batch (or a producer emits, then works), is
    shipped by a watcher thread within two :data:`WATCH_SECONDS` (SPEC §14). A stop clears the
    batch's tickets: the pull ends before the next item, as between two yields.

    Every shipper takes the whole list under :attr:`lock` (in order; a concurrent
    ``output.emit`` only appends), so the list never holds more than a batch plus what was
    emitted since the last ship: a source holds at most one chunk beyond its downstream queue.
    """

    def __init__(self, name: str, limit: int, deliver: Callable[[list[Any]], None],
                 run: Run, receivers: Sequence[StageRun] = ()) -> None:
        self.limit = max(1, limit)
        #: the stages the batches go to (they say how big a batch is worth pulling)
        self.receivers = tuple(receivers)
        self.deliver = deliver
        #: delivers a batch known to hold plain ints (a range's): nothing to look for in it
        self.deliver_ints = deliver
        self.run = run
        self.queue: list[Any] = []  # pulled or emitted, not shipped yet
        #: one shipper at a time (order, the sink's buffers); reentrant, as an ``on_error``
        #: hook that a ship runs may emit
        self.lock = threading.RLock()
        self.ships = 0  # the watcher ships only what waited through one of its ticks
        #: non-empty once the run stops: the puller looks at it between batches and items
        self.signal: list[bool] = []
        self.tickets: list[Any] = []  # the running batch's pulls left; halt() clears them
        self.closed = False
        self.finished = threading.Event()
        self.broken: BaseException | None = None  # the watcher's ship failed (an engine bug)
        self.puller: int | None = None  # the thread whose waiting is not busy time
        # busy time of the puller = wall time not spent shipping (waiting for room) or done
        self.t_report = time.perf_counter()
        self.t_ship = self.t_report
        #: (seconds waited in total, start of the current wait or None): one tuple, replaced
        #: whole, so a shipper on another thread never reads half an update
        self.wait_state: tuple[float, float | None] = (0.0, None)
        self.waited_reported = 0.0
        self.thread = threading.Thread(target=self._watch, daemon=True, name=name)
        run.handoffs.append(self)  # run.stop() halts every hand-off
        if run.stopping:  # a stop that came before the registration
            self.halt()
        self.thread.start()

    def halt(self) -> None:
        """The run stops: the puller stops before its next item (any thread may call it)."""
        self.signal.append(True)
        self.tickets.clear()

    def wanted(self) -> int:
        """The biggest batch worth pulling now: ``limit``, or less when a receiver's workers
        take fewer items at a time (a slow consumer). A bigger batch would only wait, in the
        receiver's queue and in this list while a ship waits for room: memory, not speed."""
        n = self.limit
        for t in self.receivers:
            n = min(n, t.chunk_wanted())
        return n

    # -- puller side -------------------------------------------------------------------------
    def pull(self, source: Any) -> bool:
        """Pull ``source`` until it ends or the run stops; True when it ended."""
        q, signal, limit, perf = self.queue, self.signal, self.limit, time.perf_counter
        it = iter(source)
        self.puller = threading.get_ident()
        k = 1
        while not signal:
            n = min(k, self.wanted())
            # n pulls, then the probe: a batch that pulled all n spends the probe too, one
            # that met the end of the source leaves it (a halt leaves no ticket at all)
            tickets = self.tickets = [it] * n
            tickets.append(_PROBE)
            if signal:  # a halt between the test and the new tickets
                return False
            left = iter(tickets)
            t0 = perf()
            q.extend(map(next, left))  # ends at StopIteration: the source's, or the probe's
            elapsed = perf() - t0
            self.ship()
            if left.__length_hint__():
                return True
            if elapsed < BATCH_SECONDS / 2:
                k = min(limit, 2 * k)
            elif elapsed > 2 * BATCH_SECONDS and k > 1:
                k //= 2
        return False

    def put(self, value: Any) -> None:
        """``output.emit``/``output.to`` in a producer; raises :class:`ProducerStopped` once
        the run stops (the item is still delivered)."""
        q = self.queue
        q.append(value)
        if self.signal:
            self.ship()
            raise ProducerStopped
        if len(q) >= self.limit or time.perf_counter() - self.t_ship > BATCH_SECONDS:
            self.ship()

    def put_all(self, seq: Any) -> None:
        """Deliver a list, tuple or range in slices (no Python work per item)."""
        step, run = self.limit, self.run
        deliver = self.deliver_ints if isinstance(seq, range) else self.deliver
        self.puller = threading.get_ident()
        self.ship()  # what was emitted before goes first
        self._waiting(True)
        try:
            for i in range(0, len(seq), step):
                if run.stopping:
                    break
                with self.lock:
                    self.ships += 1
                    deliver(list(seq[i:i + step]))
        finally:
            self._waiting(False)

    def ship(self, block: bool = True) -> None:
        """Deliver what is in the list; ``block=False`` gives up at once when another ship
        is under way (it takes these items too)."""
        if self.broken is not None:
            raise self.broken
        if not self.lock.acquire(block):
            return
        puller = threading.get_ident() == self.puller
        if puller:
            self._waiting(True)  # waiting for room downstream is not busy
        try:
            q = self.queue
            n = len(q)
            self.ships += 1
            self.t_ship = time.perf_counter()
            if n:
                batch = q[:n]
                del q[:n]  # a concurrent output.emit only appends: nothing it adds is lost
                self.deliver(batch)
        finally:
            if puller:
                self._waiting(False)
            self.lock.release()

    def _waiting(self, start: bool) -> None:
        waited, started = self.wait_state
        if start:
            self.wait_state = (waited, time.perf_counter())
        elif started is not None:
            self.wait_state = (waited + time.perf_counter() - started, None)

    def producer_done(self) -> None:
        """The puller has finished: from now on its time is not busy time."""
        self.wait_state = (self.wait_state[0], time.perf_counter())

    def busy_since_report(self) -> float:
        """Seconds the puller spent working since the last report (shipper side)."""
        now = time.perf_counter()
        waited, started = self.wait_state
        if started is not None:
            waited += max(0.0, now - started)
        busy = max(0.0, (now - self.t_report) - (waited - self.waited_reported))
        self.t_report, self.waited_reported = now, waited
        return busy

    def close(self) -> None:
        """Deliver what is left, then stop the watcher (idempotent)."""
        if self.closed:
            return
        self.closed = True
        try:
            self.ship()
        finally:
            self.finished.set()
            self.thread.join()

    # -- watcher side ------------------------------------------------------------------------
    def _watch(self) -> None:
        seen = -1
        while not self.finished.wait(WATCH_SECONDS):
            if self.ships == seen and self.queue:
                try:
                    self.ship(block=False)  # waited a whole tick while the puller was busy
                except BaseException as exc:  # noqa: BLE001 - an engine bug: the puller raises it
                    log.exception("internal error shipping a source's items",
                                  extra=self.run.log_extra())
                    self.broken = exc
                    return
            seen = self.ships


class Courier(Handoff):
    """Ships what a producer emits to the downstream channels (through its Emitter)."""

    def __init__(self, st: StageRun) -> None:
        self.st = st
        self.em = Emitter(st)
        run = st.run
        super().__init__(f"mg-{run.graph.name}-{st.path}-courier", self.em.max_put,
                         self._emit, run, st.targets)
        self.deliver_ints = partial(self._emit, ints=True)

    def _emit(self, batch: list[Any], ints: bool = False) -> None:
        em, st = self.em, self.st
        run = st.run
        if em.pick is None and (ints or not ROUTED or Routed not in set(map(type, batch))):
            em.count += len(batch)
            em.out.extend(batch)
        else:
            for value in batch:
                try:
                    em.emit_value(value)
                    if em.dyn:
                        em.flush_dynamic()
                except ROUTING_ERRORS as exc:  # an emission that cannot land: an error row
                    em.dyn.clear()
                    run.record_error(st, value.item if type(value) is Routed else value,
                                     exc, 1)
                    run.publish(ChunkProcessed(st.path, 0, 1, 0, 0, 0, 0.0))
        em.flush()
        if em.count != em.reported:
            run.publish(ChunkProcessed(st.path, 0, 0, 0, em.count - em.reported, 0,
                                       self.busy_since_report()))
            em.reported = em.count


def producer_loop(st: StageRun, index: int) -> None:
    """Call the producer once and hand everything it emits to a courier."""
    run = st.run
    courier = Courier(st)
    try:
        resources = st.setup()
    except Exception as exc:  # noqa: BLE001 - no producer without its resources
        courier.producer_done()
        courier.close()
        st.status = "failed"
        run.record_error(st, None, exc, 1, has_item=False, fatal="setup")
        run.publish(ChunkProcessed(st.path, 0, 1, 0, 0, 0, 0.0))
        return
    put = courier.put
    output = Output(put, lambda name, item: put(Routed(name, item)))
    try:
        call = bind(st.spec.function, resources, output, item_param=False)
        result = call()
        if inspect.isasyncgen(result) or inspect.iscoroutine(result):
            from .async_iter import sync_iter

            result = sync_iter(result)  # an async def producer, on a private event loop
        if result is not None:
            if isinstance(result, Routed) or isinstance(result, _NOT_ITERATED) or not hasattr(
                result, "__iter__"
            ):
                result = [result]  # one item, not its characters or keys
            if isinstance(result, (list, tuple, range)):  # all there already: slices
                courier.put_all(result)
            elif not courier.pull(result) and isinstance(result, GeneratorType):
                result.close()  # a draining stop: run the generator's finally blocks
        courier.producer_done()
        if not run.stopping:
            st.status = "done"  # else stage_finished says "stopped" or "cancelled"
    except ProducerStopped:  # output.emit after a stop: the producer's function ends here
        courier.producer_done()
    except Exception as exc:  # noqa: BLE001 - a failing producer is an error row
        courier.producer_done()
        courier.close()  # what it produced before failing still flows
        st.status = "failed"
        run.record_error(st, None, exc, 1, has_item=False)
        run.publish(ChunkProcessed(st.path, 0, 1, 0, 0, 0, 0.0))
    finally:
        output.close()  # valid only during the producer's call (SPEC §14)
        courier.close()
        busy = courier.busy_since_report()  # what the last chunk's report did not cover
        if busy > 0:
            run.publish(ChunkProcessed(st.path, 0, 0, 0, 0, 0, busy))
        st.teardown(resources)
