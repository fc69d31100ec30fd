"""Operator stages: batch, debatch, rebatch and accumulators, one thread each in the kernel.

They share one batching mechanism (:class:`minigun_nb.ops.batching.Batcher`); a partial batch
is flushed when its oldest item has waited ``timeout`` (the channel wait is bounded by the next
deadline, so this happens even when no new item arrives), at end of stream and on a draining
stop. At a cancel, held items are counted as cancelled.
"""

from __future__ import annotations

import time
from types import GeneratorType
from typing import TYPE_CHECKING, Any

from ..observe.events import ChunkProcessed, ItemsTaken
from ..ops.batching import Batcher, BatchItemError, debatch_item
from .calls import bind
from .emit import Output
from .emitter import Emitter

if TYPE_CHECKING:
    from .stagerun import StageRun

perf = time.perf_counter


def operator_loop(self: StageRun, index: int) -> None:
    """The loop of batch/debatch/rebatch and accumulator stages (one thread, in the kernel)."""
    run = self.run
    spec = self.spec
    ch = self.channel
    assert ch is not None
    em = Emitter(self)
    params = spec.params
    kind = self.kind
    batcher = None
    if kind != "debatch":
        mode = {"rebatch": "rebatch", "accumulator": "list"}.get(kind, "batch")
        batcher = Batcher(params["size"], mode=mode, timeout=params.get("timeout"),
                          key=params.get("key"), frame=params.get("frame", False))
    resources: dict[str, Any] = {}
    call = None
    if kind == "accumulator":
        resources = self.setup()
        call = bind(spec.stage.fn, resources, Output(em.emit, em.send), item_param=True)

    def emit_batches(outs: list[Any], completed: int) -> tuple[int, int]:
        """Emit flushed batches (through the user function for an accumulator)."""
        if call is None:
            for out in outs:
                em.emit(out)
            return completed, 0
        ok = bad = 0
        for out in outs:
            try:
                r = call(out)
                if r is not None:
                    if type(r) is GeneratorType:
                        for v in r:
                            em.emit_value(v)
                    else:
                        em.emit_value(r)
                if em.dyn:
                    em.flush_dynamic()
                ok += len(out)
            except Exception as exc:  # noqa: BLE001 - the whole batch failed
                em.dyn.clear()
                run.record_error(self, out, exc, 1, count=len(out))
                bad += len(out)
        return ok, bad

    try:
        while True:
            deadline = batcher.next_deadline() if batcher is not None else None
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            chunk = ch.get(self.max_take, timeout=wait)
            if run.cancelled:
                if chunk:
                    run.cancel_items(self, chunk)
                break
            before = em.count
            start = perf()
            done = failed = 0
            if chunk is None:
                if batcher is not None:
                    done, failed = emit_batches(*batcher.flush_all())
                em.flush()
                run.publish(ChunkProcessed(self.path, done, failed, 0, em.count - before,
                                           0, perf() - start))
                break
            n = len(chunk)
            if n:
                run.publish(ItemsTaken(self.path, n))
                with self.lock:
                    self.in_hand += n
            now = time.monotonic()
            for item in chunk:
                try:
                    if batcher is None:
                        for x in debatch_item(item, params["rows"]):
                            em.emit(x)
                        done += 1
                    else:
                        d, f = emit_batches(*batcher.add(item, now))
                        done += d
                        failed += f
                except BatchItemError as exc:
                    failed += 1
                    run.record_error(self, item, exc, 1)
            if batcher is not None and batcher.next_deadline() is not None:
                d, f = emit_batches(*batcher.flush_due(time.monotonic()))
                done += d
                failed += f
            em.flush()
            run.publish(ChunkProcessed(self.path, done, failed, 0, em.count - before, 0,
                                       perf() - start))
            with self.lock:
                self.in_hand -= n
            if self.group.cyclic:
                self.group.add_pending(-(done + failed))
    finally:
        if run.cancelled:
            if batcher is not None and batcher.held:
                run.cancel_items(self, batcher.held_items())
            self.cancel_remaining(ch)
        if kind == "accumulator":
            self.teardown(resources)
