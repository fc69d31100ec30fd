"""Operator stages: batch, debatch, rebatch and accumulators, one thread each in the kernel.

They share one batching mechanism (:class:`minigun_nb.ops.batching.Batcher`); a partial batch
is flushed when its oldest item has waited ``timeout`` (the channel wait is bounded by the next
deadline, so this happens even when no new item arrives), at end of stream and on a draining
stop. At a cancel, held items are counted as cancelled.

Accounting (``items_in == done + failed + cancelled`` for every operator stage): an input item
is ``done`` once everything it contributed has been emitted, ``failed`` with one error row when
it is refused (a frame whose columns differ from the open batch's, a non-frame into a frame
batch, a ``key=`` function that raises, something ``debatch`` cannot split), ``cancelled`` when
the run is cancelled while the operator holds it. An output batch that cannot be routed (a
``route=`` function that raises) fails the input items it completed, one error row each.

Accumulators: the user function receives the batch (a list of input items). When it raises
(after ``retries``), each input item of that batch becomes a failed item with its own error row
whose ``item`` is that input item (not the list), so ``result.failed_items("acc")`` re-drives
exactly those items; every row of one batch carries the same exception. What the function
emitted is delivered only once the call has succeeded, so a failed batch leaves no outputs.

A ``dynamic=True`` operator (or one inside a routing cycle) cannot wait for "end of stream" to
flush what it holds, because the stages of a cycle end together only when none of them holds an
item: once every sender outside its group has finished and the only items pending in the group
are the ones it holds, it flushes them (the same flush as at end of stream).
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any

from ..observe.events import ChunkProcessed, ItemsTaken
from ..ops.batching import Batcher
from ..ops.debatching import iter_debatch
from ..stagefn.calling import bind
from ..stagefn.output import Output
from ..stagefn.runner import run_item
from .emitter import Emitter
from .items import AccumulatorSink, stage_policy

if TYPE_CHECKING:
    from .stagerun import StageRun

perf = time.perf_counter

#: how often an operator holding items inside a routing cycle checks whether the cycle is idle
CYCLE_POLL_SECONDS = 0.05


def operator_loop(self: StageRun, index: int) -> None:
    """The loop of batch/debatch/rebatch and accumulator stages (one thread, in the kernel)."""
    run = self.run
    spec = self.spec
    ch = self.channel
    assert ch is not None
    em = Emitter(self)
    params = spec.params
    kind = self.kind
    path = self.path
    batcher: Batcher | None = None
    if kind != "debatch":
        mode = {"rebatch": "rebatch", "accumulator": "list"}.get(kind, "batch")
        timeout = params.get("timeout")
        if timeout is not None and math.isinf(timeout):
            timeout = None  # waiting forever for a partial batch is having no timeout
        batcher = Batcher(
            params["size"],
            mode=mode,
            timeout=timeout,
            key=params.get("key"),
            frame=params.get("frame", False),
            origins=kind != "accumulator",
        )
    rows = params.get("rows", "series")
    resources: dict[str, Any] = {}
    accumulate = None
    if kind == "accumulator":
        try:
            resources = self.setup()
        except Exception as exc:  # noqa: BLE001 - no accumulator without its resources
            run.record_error(self, None, exc, 1, has_item=False, fatal="setup")
            self.status = "failed"
            self.cancel_remaining(ch)
            return
        accumulate = _accumulator_call(self, em, resources)
    cyclic = self.group.cyclic

    filtered = 0  # done items that emitted nothing (accumulator calls, empty debatch items)

    def emit_batches(outs: list[Any], completed: int) -> tuple[int, int]:
        """Emit flushed batches; return (done, failed) input items."""
        nonlocal filtered
        if not outs:
            return completed, 0
        if accumulate is not None:
            ok = bad = 0
            for out in outs:
                emitted = accumulate(out)
                if emitted is None:
                    bad += len(out)
                else:
                    ok += len(out)
                    if not emitted:
                        filtered += len(out)
            return ok, bad
        bad = 0
        for i, out in enumerate(outs):
            try:
                em.emit(out)
            except Exception as exc:  # noqa: BLE001 - a route= function failed on this batch
                origins = batcher.last_origins[i] if batcher is not None else []
                for item in origins:
                    run.record_error(self, item, exc, 1)
                bad += len(origins)
        return completed - bad, bad

    def idle_cycle() -> bool:
        """Inside a cycle: nobody can send any more and the only pending items are ours."""
        g = self.group
        held = batcher.held if batcher is not None else 0
        with g.lock:
            return not g.closed and g.external_left == 0 and len(ch) == 0 and g.pending == held

    try:
        while True:
            wait = None
            if batcher is not None and batcher.held:
                deadline = batcher.next_deadline()
                if deadline is not None:
                    wait = max(0.0, deadline - time.monotonic())
                if cyclic:
                    wait = CYCLE_POLL_SECONDS if wait is None else min(wait, CYCLE_POLL_SECONDS)
            chunk = ch.get(self.max_take, timeout=wait)
            if run.cancelled:
                if chunk:
                    run.cancel_items(self, chunk)
                break
            before = em.count
            start = perf()
            done = failed = filtered = 0
            if chunk is None:  # end of stream (also after a draining stop): flush everything
                if batcher is not None and batcher.held:
                    done, failed = emit_batches(*batcher.flush_all())
                em.flush()
                _report(run, path, done, failed, filtered, em.count - before, perf() - start)
                break
            n = len(chunk)
            if n:
                run.publish(ItemsTaken(path, n))
                with self.lock:
                    self.in_hand += n
                now = time.monotonic()
                if batcher is None:
                    for item in chunk:
                        pieces = _debatch(self, em, item, rows)
                        if pieces is None:
                            failed += 1
                        else:
                            done += 1
                            if not pieces:
                                filtered += 1
                else:
                    add = batcher.add
                    for item in chunk:
                        try:
                            result = add(item, now)
                        except Exception as exc:  # noqa: BLE001 - refused item or key= raised
                            failed += 1
                            run.record_error(self, item, exc, 1)
                            continue
                        d, f = emit_batches(*result)
                        done += d
                        failed += f
            if batcher is not None and batcher.held:
                if batcher.timeout is not None:
                    d, f = emit_batches(*batcher.flush_due(time.monotonic()))
                    done += d
                    failed += f
                if cyclic and not n and batcher.held and idle_cycle():
                    d, f = emit_batches(*batcher.flush_all())
                    done += d
                    failed += f
            em.flush()
            if n or done or failed or em.count != before:
                _report(run, path, done, failed, filtered, em.count - before, perf() - start)
            if n:
                with self.lock:
                    self.in_hand -= n
            if cyclic and (done or failed):
                self.group.add_pending(-(done + failed))
    finally:
        if run.cancelled:
            if batcher is not None and batcher.held:
                run.cancel_items(self, batcher.held_items())
            self.cancel_remaining(ch)
        if kind == "accumulator":
            self.teardown(resources)


def _report(
    run: Any, path: str, done: int, failed: int, filtered: int, emitted: int, busy: float
) -> None:
    run.publish(ChunkProcessed(path, done, failed, filtered, emitted, 0, busy))


def _debatch(st: StageRun, em: Emitter, item: Any, rows: Any) -> int | None:
    """Split one item and emit its pieces as they are built (backpressure bounds how many
    exist at once); return how many, or None (with an error row) when it fails."""
    try:
        pieces = iter_debatch(item, rows)
    except Exception as exc:  # noqa: BLE001 - not a list/tuple/DataFrame, or rows="dict" dups
        st.run.record_error(st, item, exc, 1)
        return None
    count = 0
    try:
        emit = em.emit
        for x in pieces:
            emit(x)
            count += 1
    except Exception as exc:  # noqa: BLE001 - a route= function failed; pieces sent stay sent
        st.run.record_error(st, item, exc, 1)
        return None
    return count


def _accumulator_call(st: StageRun, em: Emitter, resources: dict[str, Any]) -> Any:
    """Return ``accumulate(batch) -> int | None``: call the user function on one batch through
    :func:`~minigun_nb.stagefn.runner.run_item` (retries as the stage says, but not once the
    run is cancelled) and deliver what it emitted (returns how many), or record one error row
    per input item (returns None)."""
    run = st.run
    sink = AccumulatorSink(em)
    call = bind(st.spec.function, resources, Output(sink.emit, sink.send), item_param=True)
    policy = stage_policy(run, st.spec.options, cancel_ends=False)

    def accumulate(batch: list[Any]) -> int | None:
        attempts, exc, _emitted = run_item(call, batch, 0, sink, policy)
        if exc is None:
            return sink.emitted
        for item in batch:
            run.record_error(st, item, exc, attempts)
        return None

    return accumulate
