"""Where a worker's emissions go: fan-out policies, terminal outputs, dynamic routes.

Each worker owns one Emitter, so buffering needs no lock. Static emissions are buffered per
target and delivered as chunks (at the end of each input chunk, when a buffer is full, or at
once when the target has idle workers); dynamic emissions are kept per item and delivered when
the item succeeds, so a failed or retried item never leaves half its outputs behind.
"""

from __future__ import annotations

import copy as copy_module
import itertools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import UnknownStageError
from .emit import Routed

if TYPE_CHECKING:
    from .stagerun import StageRun


class RoutingError(Exception):
    """An emission could not be delivered; it fails the emitting item."""


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

    def __init__(self, st: StageRun) -> None:
        self.st = st
        self.run = st.run
        self.targets = st.targets  # downstream StageRuns
        self.max_put = st.max_put
        self.count = 0  # emissions so far (items_out)
        policy = st.spec.options["route"]
        self.copy = bool(st.spec.options["copy"])
        self.out: list[Any] = []  # broadcast / terminal buffer
        self.per: dict[str, list[Any]] = {}
        self.dyn: list[tuple[tuple[StageRun, ...], Any]] = []
        self._pick: Callable[[Any], StageRun] | None = None
        if len(self.targets) > 1 and policy != "broadcast":
            self._pick = self._make_policy(policy)
            self.per = {t.path: [] for t in self.targets}

    # -- policies --------------------------------------------------------------------------
    def _make_policy(self, policy: Any) -> Callable[[Any], StageRun]:
        targets = self.targets
        by_name = {t.spec.name: t for t in targets}
        by_path = {t.path: t for t in targets}
        if policy == "round_robin":
            cycle = itertools.cycle(targets)
            return lambda item: next(cycle)
        if policy == "least_loaded":
            return lambda item: min(targets, key=lambda t: t.load())
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
        if self._pick is None:
            out = self.out
            out.append(item)
            if len(out) >= self.max_put:
                self.flush()
        else:
            buf = self.per[self._pick(item).path]
            buf.append(item)
            if len(buf) >= self.max_put:
                self.flush()

    def send(self, name: str, item: Any) -> None:
        """One dynamic emission (``output.to(name)``, ``yield mg.to(name, item)``)."""
        try:
            targets = self.run.resolve(self.st, name)
        except UnknownStageError as exc:
            raise RoutingError(str(exc)) from None
        self.count += 1
        self.dyn.append((tuple(self.run.stages[p] for p in targets), item))

    def emit_value(self, value: Any) -> None:
        if type(value) is Routed:
            self.send(value.target, value.item)
        else:
            self.emit(value)

    def hungry(self) -> bool:
        return any(t.channel is not None and t.channel.hungry for t in self.targets)

    def discard_item_emissions(self, mark: int, mark_count: int) -> None:
        """Forget what a failed attempt emitted (only possible while it is still buffered)."""
        del self.out[mark:]
        self.dyn.clear()
        self.count = mark_count

    # -- delivering ------------------------------------------------------------------------
    def flush_dynamic(self) -> None:
        """Deliver the current item's dynamic emissions; RoutingError if one cannot land."""
        dyn, self.dyn = self.dyn, []
        for targets, item in dyn:
            for t in targets:
                if not self.run.deliver(self.st, t, [item], dynamic=True):
                    raise RoutingError(
                        f"cannot route to {t.path!r}: stage already finished (declare it in "
                        f"routes=[...] of {self.st.path!r}, or make it dynamic=True, so it "
                        f"waits for this sender)"
                    )

    def flush(self) -> None:
        """Deliver every buffered static emission."""
        if self._pick is None:
            if not self.out:
                return
            items, self.out = self.out, []
            if not self.targets:
                self.run.collect(self.st, items)
                return
            last = len(self.targets) - 1
            for i, t in enumerate(self.targets):
                batch = copy_module.deepcopy(items) if self.copy and i < last else items
                self.run.deliver(self.st, t, batch)
            return
        for path, buf in self.per.items():
            if buf:
                self.per[path] = []
                self.run.deliver(self.st, self.run.stages[path], buf)
