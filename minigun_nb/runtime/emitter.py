"""Where a worker's emissions go: fan-out policies, terminal outputs, dynamic routes.

Each worker owns one Emitter, so buffering needs no lock. Static emissions are buffered per
target and delivered as chunks (at the end of each input chunk, or once a buffer is full and
the item that filled it has ended); dynamic emissions are kept per item and delivered when the
item succeeds. A failed or retried item therefore leaves nothing behind: what it emitted is
withdrawn from the buffers (only an item emitting more than ``item_hold`` items itself can have
had a full buffer leave before it failed).
"""

from __future__ import annotations

import copy as copy_module
import itertools
from collections.abc import Callable
from types import GeneratorType
from typing import TYPE_CHECKING, Any

from ..errors import AmbiguousStageError, UnknownStageError
from ..stagefn.calling import ItemCancelled
from ..stagefn.output import Routed

if TYPE_CHECKING:
    from .stagerun import StageRun


class RoutingError(Exception):
    """An emission could not be delivered; it fails the emitting item."""


#: every way an emission can fail to land: a finished target, an unknown or ambiguous name
ROUTING_ERRORS = (RoutingError, UnknownStageError, AmbiguousStageError)


def _weighted_cycle(weights: dict[str, float]) -> list[str]:
    """A smooth weighted round-robin sequence (nginx's algorithm) over integer weights."""
    scale = 1.0 / min(weights.values())
    ints = {k: max(1, round(w * scale)) for k, w in weights.items()}
    total = sum(ints.values())
    current = dict.fromkeys(ints, 0)
    seq = []
    for _ in range(total):
        for k in current:
            current[k] += ints[k]
        best = max(current, key=lambda k: current[k])
        current[best] -= total
        seq.append(best)
    return seq


class Emitter:
    """Buffers and routes one worker's emissions."""

    __slots__ = (
        "st", "run", "targets", "max_put", "hold", "item_hold", "due", "nudged", "put_size",
        "items_started", "seen_started", "count", "flushes", "reported", "attempts",
        "_mark_out", "_mark_count", "_mark_flushes", "copy", "out", "per", "dyn", "pick",
        "limit",
    )

    def __init__(self, st: StageRun) -> None:
        self.st = st
        self.run = st.run
        self.targets = st.targets  # downstream StageRuns
        self.max_put = st.max_put
        # a full buffer is delivered at once, unless an item is still emitting into it: the
        # worker loop raises ``hold`` so one item's emissions leave together after it ends
        # (``due`` says a buffer is full) and a failed item can take them back
        self.hold = st.max_put
        #: what one item may emit before a full buffer leaves while it is still emitting
        self.item_hold = st.max_put
        self.due = False
        #: set from another thread (:meth:`nudge`): the next emission delivers the buffer (a
        #: long item streams) or, once the run is cancelled, raises ItemCancelled
        self.nudged = False
        self.put_size = self.max_put  # max_put while not nudged
        self.items_started = 0  # item_start calls: the ticker sees an item that runs long
        self.seen_started = -1
        self.count = 0  # emissions so far (items_out): static ones, dynamic ones once delivered
        self.flushes = 0  # static deliveries so far (did a buffer leave during this item?)
        self.reported = 0  # emissions already published (producers report as they go)
        # the per-item step's marks (:meth:`mark`): where the current attempt began
        self.attempts = 0  # attempts marked so far (a cancelled item's retries are counted)
        self._mark_out = self._mark_count = self._mark_flushes = 0
        policy = st.spec.options["route"]
        self.copy = bool(st.spec.options["copy"])
        # the broadcast / terminal buffer; under a load-balancing policy the items wait in
        # ``per`` and ``out`` records the target of each, in order, so a failed item's
        # emissions are withdrawn the same way in both modes
        self.out: list[Any] = []
        self.per: dict[str, list[Any]] = {}
        self.dyn: list[tuple[tuple[StageRun, ...], Any]] = []
        self.pick: Callable[[Any], StageRun] | None = None
        self.limit: dict[str, int] = {}  # per target: buffered items that trigger a flush
        if len(self.targets) > 1 and policy != "broadcast":
            self.per = {t.path: [] for t in self.targets}
            # least_loaded decides on loads it can see, so it delivers as soon as a target
            # has enough for its workers; a whole chunk would otherwise be split evenly
            # before any load moved (a stuck target taking half of it)
            self.limit = {
                t.path: min(self.max_put, t.workers) if policy == "least_loaded" else self.max_put
                for t in self.targets
            }
            self.pick = self._make_policy(policy)

    # -- policies --------------------------------------------------------------------------
    def _make_policy(self, policy: Any) -> Callable[[Any], StageRun]:
        targets = self.targets
        by_name = {t.spec.name: t for t in targets}
        by_path = {t.path: t for t in targets}
        if policy == "round_robin":
            cycle = itertools.cycle(targets)
            return lambda item: next(cycle)
        if policy == "least_loaded":
            per = self.per  # what this worker holds back counts too, or a whole chunk
            return lambda item: min(targets, key=lambda t: t.load() + len(per[t.path]))
        if isinstance(policy, dict):
            seq = itertools.cycle(
                [by_name.get(k) or by_path[self.run.resolve(self.st, k)[0]]
                 for k in _weighted_cycle(dict(policy))]
            )
            return lambda item: next(seq)

        def by_key(item: Any) -> StageRun:
            name = policy(item)
            target = by_name.get(name) or by_path.get(name)
            if target is None:
                known = ", ".join(repr(t.spec.name) for t in targets)
                raise RoutingError(
                    f"route function returned {name!r}, which is not a downstream stage of "
                    f"{self.st.path!r} ({known})"
                )
            return target

        return by_key

    # -- emitting --------------------------------------------------------------------------
    def emit(self, item: Any) -> None:
        """One static emission (return value, yield, ``output.emit``)."""
        self.count += 1
        if self.pick is None:
            out = self.out
            out.append(item)
            if len(out) >= self.max_put:
                self.due = True
                if len(out) >= self.hold:
                    if self.nudged and self.run.cancelled:
                        raise ItemCancelled
                    self.flush()
        else:
            path = self.pick(item).path
            buf = self.per[path]
            buf.append(item)
            self.out.append(path)
            if len(buf) >= self.limit[path] or self.nudged:
                self.due = True
                if len(self.out) >= self.hold:
                    if self.nudged and self.run.cancelled:
                        raise ItemCancelled
                    self.flush()

    def send(self, name: str, item: Any) -> None:
        """One dynamic emission (``output.to(name)``, ``yield mg.to(name, item)``)."""
        # an unknown or ambiguous name raises mg.UnknownStageError / mg.AmbiguousStageError
        # here: an error of the emitting item, under the public class the SPEC names
        targets = self.run.resolve(self.st, name)
        self.dyn.append((tuple(self.run.stages[p] for p in targets), item))

    def emit_value(self, value: Any) -> None:
        if type(value) is Routed:
            self.send(value.target, value.item)
        else:
            self.emit(value)

    def hungry(self) -> bool:
        return any(t.channel is not None and t.channel.hungry for t in self.targets)

    def item_start(self) -> int:
        """An item starts emitting: a full buffer waits for it to end, unless the item itself
        emits ``item_hold`` items (a generator may stream millions). Returns the mark for
        :meth:`discard_item_emissions`."""
        mark = len(self.out)
        self.hold = mark + self.item_hold
        self.items_started += 1
        return mark

    def nudge(self, cancel: bool = False) -> None:
        """Called from another thread: the next emission delivers what is buffered, even in
        the middle of an item (what a long generator yields moves on, SPEC §14); after a
        cancel it raises :class:`ItemCancelled` instead. Costs the hot path nothing: it
        lowers the thresholds that ``emit`` already tests."""
        if self.put_size >= 1 << 62 and not cancel:
            return  # ordered=True: a chunk's outputs wait for its turn
        self.nudged = True
        self.hold = 0
        self.max_put = 0

    def discard_item_emissions(self, mark: int, mark_flushes: int) -> None:
        """Withdraw what the current item emitted since ``mark`` (``len(out)`` when it
        started) and is still buffered: a failed item, or an attempt about to be retried,
        leaves nothing behind unless a full buffer already left mid-item."""
        self.dyn.clear()
        if self.flushes != mark_flushes:
            mark = 0  # the buffer was delivered during this item: all that is left is its own
        gone = self.out[mark:]
        if not gone:
            return
        if self.pick is not None:
            for path in reversed(gone):
                self.per[path].pop()
        del self.out[mark:]
        self.count -= len(gone)

    # -- the sink of the per-item step (stagefn.runner.ItemSink) ---------------------------
    def mark(self) -> None:
        """An attempt of an item starts (:meth:`item_start`, kept here): :meth:`take_back`
        withdraws what it emits, :meth:`since` tells whether it emitted anything."""
        self.attempts += 1
        mark = self._mark_out = len(self.out)
        self.hold = mark + self.item_hold
        self.items_started += 1
        self._mark_count = self.count
        self._mark_flushes = self.flushes

    def take_back(self, mark: Any = None) -> None:
        self.discard_item_emissions(self._mark_out, self._mark_flushes)

    def since(self, mark: Any = None) -> bool:
        return self.count != self._mark_count

    def collect(self, i: int, r: Any) -> None:
        """Emit what an item's call returned (a value, a generator, ``mg.to``). A generator is
        drained here, and closed when that stops early (a cancel between two yields: its
        ``finally`` blocks run now); then the item's ``mg.to`` routes are delivered (a
        failure there fails the item, never retried: it would route the same way again)."""
        if r is None:
            pass
        elif type(r) is GeneratorType:
            try:
                for v in r:
                    if type(v) is Routed:
                        self.send(v.target, v.item)
                    else:
                        self.emit(v)
            except BaseException:
                r.close()
                raise
        elif type(r) is Routed:
            self.send(r.target, r.item)
        else:
            self.emit(r)
        if self.dyn:
            self.flush_dynamic()

    # -- delivering ------------------------------------------------------------------------
    def flush_dynamic(self) -> None:
        """Deliver the current item's dynamic emissions; RoutingError if one cannot land."""
        dyn, self.dyn = self.dyn, []
        for targets, item in dyn:
            self.count += 1  # counted once delivered, whatever the number of targets
            for t in targets:
                if not self.run.deliver(self.st, t, [item], dynamic=True):
                    self.count -= 1
                    if t.channel is None:
                        raise RoutingError(
                            f"cannot route to {t.path!r}: it is a producer, which takes no "
                            f"input; route to a processor instead")
                    raise RoutingError(
                        f"cannot route to {t.path!r}: stage already finished (declare it in "
                        f"routes=[...] of {self.st.path!r}, or make it dynamic=True, so it "
                        f"waits for this sender)"
                    )

    def flush(self) -> None:
        """Deliver every buffered static emission."""
        self.due = False
        if self.nudged:
            self.nudged = False
            self.max_put = self.put_size
            self.hold = self.item_hold
        if self.pick is None:
            if not self.out:
                return
            items, self.out = self.out, []
            self.flushes += 1
            if not self.targets:
                self.run.collect(self.st, items)
                return
            last = len(self.targets) - 1
            for i, t in enumerate(self.targets):
                batch = copy_module.deepcopy(items) if self.copy and i < last else items
                self.run.deliver(self.st, t, batch)
            return
        if not self.out:
            return
        self.out = []
        self.flushes += 1
        for path, buf in self.per.items():
            if buf:
                self.per[path] = []
                self.run.deliver(self.st, self.run.stages[path], buf)
