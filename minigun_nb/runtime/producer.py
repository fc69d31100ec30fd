"""A producer's loop: the user's generator runs on the producer thread, a courier delivers.

The generator (and ``output.emit`` calls) only append to a list; a courier thread takes
whatever has accumulated and delivers it as one chunk. So a fast generator moves in big chunks
(the courier gets the GIL at switch intervals) and a slow one hands over every item as soon as
it is yielded: nothing waits for a chunk to fill, and nothing already yielded is held while the
generator blocks. The list is bounded (two chunks): a full one pauses the generator, which is
how backpressure reaches a producer. The user's code stays on the producer thread, so resources
from ``setup=`` are used on the thread that made them.
"""

from __future__ import annotations

import inspect
import threading
import time
from collections.abc import Callable
from functools import partial
from types import GeneratorType
from typing import TYPE_CHECKING, Any

from ..observe.events import ChunkProcessed
from ..stagefn.calling import bind
from ..stagefn.output import Output, Routed
from .emitter import ROUTING_ERRORS, Emitter

if TYPE_CHECKING:
    from .run import Run
    from .stagerun import StageRun

_NOT_ITERATED = (str, bytes, bytearray, dict)


class ProducerStopped(BaseException):
    """Raised by ``output.emit``/``output.to`` in a producer once the run stops: it ends a
    producer that only emits (a ``while True`` loop) as the end of a generator would. A
    BaseException, so that ``except Exception`` in the producer lets it through; its
    ``finally`` blocks run."""


class Handoff:
    """A bounded hand-off from a thread that pulls items (a producer's generator, an
    ``items=`` iterable) to a thread that delivers them.

    The puller only appends to a list; the delivering thread takes whatever has accumulated
    (up to ``limit``) and hands it to ``deliver`` as one chunk. A fast puller therefore moves
    in big chunks and a slow one hands over every item at once. At ``room`` items the puller
    waits: that is how backpressure reaches it.
    """

    def __init__(self, name: str, limit: int, deliver: Callable[[list[Any]], None],
                 run: Run, room: int | None = None) -> None:
        self.limit = max(1, limit)
        # the puller pauses at ``room`` items and, while the courier delivers a batch, until
        # the list and that batch together hold less than a chunk: a source holds about one
        # chunk beyond its downstream queue (SPEC §14; with two chunks of room and one in
        # the courier's blocked put it held three). Half a chunk of room would bound it
        # tighter but costs ~30% of a no-op pipeline's throughput (the puller waits twice
        # as often)
        self.room = room if room is not None else self.limit
        self.in_hand = 0  # items the courier took and is delivering
        self.deliver = deliver
        #: delivers a batch known to hold plain ints (a range's): nothing to look for in it
        self.deliver_ints = deliver
        self.run = run
        #: a list, not a deque: the taker copies a prefix and deletes it (two memmoves), which
        #: is safe against the puller's appends, and 30x cheaper than popping item by item
        self.queue: list[Any] = []
        self.cond = threading.Condition()
        self.courier_waiting = False
        #: non-empty when the puller must look up from its loop: the courier waits for a
        #: wake-up, or the run is stopping (see :meth:`attend`). One truth test per item.
        self.signal: list[bool] = []
        self.producer_waiting = False
        self.closed = False
        # busy time of the puller = wall time not spent waiting for room (or finished)
        self.t_report = time.perf_counter()
        #: (seconds waited in total, start of the current wait or None): one tuple, replaced
        #: whole, so the courier never reads half an update
        self.wait_state: tuple[float, float | None] = (0.0, None)
        self.waited_reported = 0.0
        self.thread = threading.Thread(target=self._run, daemon=True, name=name)
        run.handoffs.append(self)  # run.stop() sets every signal
        if run.stopping:  # a stop that came before the registration
            self.signal.append(True)
        self.thread.start()

    # -- puller side -------------------------------------------------------------------------
    def put(self, value: Any) -> None:
        """``output.emit``/``output.to`` in a producer; raises :class:`ProducerStopped` once
        the run stops (the item is still delivered)."""
        q = self.queue
        q.append(value)
        if self.signal and self.attend():
            self.signal.append(True)  # the generator loop, if any, must see the stop too
            raise ProducerStopped
        if len(q) >= self.room and self.wait_for_room():
            self.signal.append(True)
            raise ProducerStopped

    def attend(self) -> bool:
        """The puller saw the signal: wake a waiting courier; True when it must stop."""
        with self.cond:
            self.signal.clear()
            if self.courier_waiting:
                self.courier_waiting = False
                self.cond.notify()
        return self.run.stopping

    def put_all(self, seq: Any) -> None:
        """Deliver a list, tuple or range in slices, from this thread (no Python work per
        item, no hop through the courier: nothing here can keep an item waiting)."""
        q, step, run = self.queue, self.limit, self.run
        self._waiting(True)  # waiting for the courier and for room downstream is not busy
        try:
            with self.cond:  # what was put before goes first: wait until the courier idles
                while (q or not self.courier_waiting) and self.thread.is_alive():
                    self.cond.wait(0.05)
            # the courier now waits on an empty list that only this thread fills: it stays idle
            deliver = self.deliver_ints if isinstance(seq, range) else self.deliver
            for i in range(0, len(seq), step):
                if run.stopping:
                    break
                deliver(list(seq[i:i + step]))
        finally:
            self._waiting(False)

    def _waiting(self, start: bool) -> None:
        waited, started = self.wait_state
        if start:
            self.wait_state = (waited, time.perf_counter())
        elif started is not None:
            self.wait_state = (waited + time.perf_counter() - started, None)

    def wait_for_room(self) -> bool:
        """Wait while the hand-off is full; True when the run is stopping (seen before the
        puller pulls again: a pull may block)."""
        q = self.queue
        self._waiting(True)
        with self.cond:
            self.producer_waiting = True
            while ((len(q) >= self.room or len(q) + self.in_hand >= self.limit)
                   and self.thread.is_alive() and not self.run.cancelled):
                self.cond.wait(0.1)
            self.producer_waiting = False
        self._waiting(False)
        return self.run.stopping

    def producer_done(self) -> None:
        """The puller has finished: from now on its time is not busy time."""
        self.wait_state = (self.wait_state[0], time.perf_counter())

    def busy_since_report(self) -> float:
        """Seconds the puller spent working since the last report (courier side)."""
        now = time.perf_counter()
        waited, started = self.wait_state
        if started is not None:
            waited += max(0.0, now - started)
        busy = max(0.0, (now - self.t_report) - (waited - self.waited_reported))
        self.t_report, self.waited_reported = now, waited
        return busy

    def close(self) -> None:
        """Deliver what is left, then stop the delivering thread."""
        with self.cond:
            self.closed = True
            self.cond.notify_all()
        self.thread.join()

    # -- courier side ------------------------------------------------------------------------
    def _run(self) -> None:
        q = self.queue
        while True:
            with self.cond:
                if not q and not self.closed:
                    # The flag and the signal are set before the courier looks at the queue
                    # again, so either it sees the new item or the puller sees the signal
                    # (the GIL orders the two). The puller clears both: one notify per wait.
                    self.courier_waiting = True
                    self.signal.append(True)
                    self.cond.notify_all()  # put_all may wait for the courier to idle
                    while not q and not self.closed:
                        self.cond.wait()
                    self.courier_waiting = False
                if not q:
                    return
            n = min(len(q), self.limit)
            batch = q[:n]
            self.in_hand = n
            del q[:n]  # the puller only appends at the end: nothing it adds is lost
            if self.producer_waiting:
                with self.cond:
                    self.cond.notify_all()
            self.deliver(batch)
            self.in_hand = 0
            if self.producer_waiting:
                with self.cond:
                    self.cond.notify_all()


class Courier(Handoff):
    """Moves what a producer emits from its thread to the downstream channels."""

    def __init__(self, st: StageRun) -> None:
        self.st = st
        self.em = Emitter(st)
        run = st.run
        super().__init__(f"mg-{run.graph.name}-{st.path}-courier", self.em.max_put,
                         self._emit, run)
        self.deliver_ints = partial(self._emit, ints=True)

    def _emit(self, batch: list[Any], ints: bool = False) -> None:
        em, st = self.em, self.st
        run = st.run
        if em.pick is None and (ints or Routed not in set(map(type, batch))):
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
            q, full, signal, attend = courier.queue, courier.room, courier.signal, courier.attend
            if isinstance(result, (list, tuple, range)):  # all there already: slices
                courier.put_all(result)
                result = ()
            for value in result:  # the hot loop: an append and two cheap checks per item
                q.append(value)
                if signal and attend():  # the courier waits for this item, or a stop
                    break
                if len(q) >= full and courier.wait_for_room():
                    break
            if isinstance(result, GeneratorType):
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
