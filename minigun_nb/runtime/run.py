"""Wiring a graph into a run: start, termination, drain and cancel, RunHandle.

Termination: a stage's channel closes when every stage that can send to it has finished. The
"can send to" relation (static upstreams, ``routes=`` declarers, and for a dynamic stage every
non-descendant, itself included) may have cycles, e.g. two dynamic sinks; the stages of one
strongly connected component end together once every sender outside it has finished and none
of them holds an item (one pending counter per component, so the check is atomic).
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
import uuid
import warnings
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ..core.graph import Graph
from ..core.options import THREAD_BACKENDS
from ..core.stage import UNPOOLED_KINDS
from ..errors import CapacityWarning, StageError
from ..observe.events import (
    ItemsCancelled,
    ItemsReceived,
    RunFinished,
    RunStarted,
    StageFinished,
    StageInfo,
)
from ..observe.stats import StatsCollector
from ..ops.items import loaded_pandas
from ..stagefn.frames import in_package, outer_frame
from .channel import CANCELLED, OK
from .chunking import MAX_CHUNK
from .emitter import RoutingError
from .error_records import ErrorRecord, error_record
from .producer import Handoff
from .stagerun import StageRun, nudge_emitters, stream_ticker

if TYPE_CHECKING:
    from ..core.pipeline import Pipeline
    from .result import RunResult

log = logging.getLogger("minigun_nb")
FEEDER = "<items>"
TICK_SECONDS = 0.1  # displays refresh at most 10 times a second, whatever the item rate


class Group:
    """Stages that end together (a strongly connected component of "can send to")."""

    def __init__(self, members: list[StageRun], cyclic: bool) -> None:
        self.members = members
        self.cyclic = cyclic
        self.pending = 0
        self.external_left = 0
        self.closed = False
        self.lock = threading.Lock()

    def add_pending(self, n: int) -> None:
        with self.lock:
            self.pending += n
            ready = self.pending == 0 and self.external_left == 0 and not self.closed
        if ready:
            self.maybe_close()

    def sender_done(self) -> None:
        with self.lock:
            self.external_left -= 1
        self.maybe_close()

    def maybe_close(self) -> None:
        with self.lock:
            if self.closed or self.external_left > 0 or (self.cyclic and self.pending > 0):
                return
            self.closed = True
        for m in self.members:
            if m.channel is not None:
                m.channel.close()


def _components(nodes: list[str], senders: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components of the sender -> stage relation."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = itertools.count()

    def visit(v: str) -> None:
        index[v] = low[v] = next(counter)
        stack.append(v)
        on.add(v)
        for w in senders.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            out.append(comp)

    for v in nodes:
        if v not in index:
            visit(v)
    return out


class Run:
    """One execution of a graph. Created and driven by :func:`start`."""

    def __init__(self, pipe: Pipeline, graph: Graph, items: Any, observers: Iterable[Any]):
        self.pipe = pipe
        self.graph = graph
        self.items = items
        self.run_id = uuid.uuid4().hex[:8]
        self.collector = StatsCollector()
        for obs in observers:
            self.collector.subscribe(obs)
        self.errors: list[ErrorRecord] = []
        self.cancelled_items: list[Any] = []
        self.outputs: list[Any] = []
        self.outputs_by_stage: dict[str, list[Any]] = {}
        self.max_outputs = graph.options["max_outputs"]
        self.outputs_dropped = 0
        #: stage path -> its most recent output (kept per delivery; a display reprs it)
        self.last_output: dict[str, Any] = {}
        self.peek = True  # run(peek=False): keep nothing for displays to peek at
        self.stopping = False
        #: the hand-offs of producers and of ``items=`` (their pullers watch a signal)
        self.handoffs: list[Handoff] = []
        self.cancelled = False
        self.failure: StageError | None = None
        #: stages that could not start (their setup failed): the run is "failed" even when
        #: nothing raises, because their items were cancelled without anybody stopping the run
        self.broken: list[str] = []
        self.internal: BaseException | None = None
        self.done = threading.Event()
        self.lock = threading.Lock()
        self.started = 0.0
        self.finished = 0.0
        self._resolve_cache: dict[tuple[str, str], tuple[str, ...]] = {}
        self.result: RunResult | None = None
        self.pooled_prepared = False  # before_fork hooks and extras checked (pooled_prepare.py)
        workers = self._capacity()
        self.stages = {p: StageRun(self, spec, workers[p]) for p, spec in graph.stages.items()}
        for p, st in self.stages.items():
            st.targets = tuple(self.stages[t] for t in graph.downstreams[p])
            if st.targets:
                st.max_put = min(MAX_CHUNK, *(t.spec.options["queue_size"] for t in st.targets))
        self.unfinished = len(self.stages)
        self._build_groups()

    # -- setup -----------------------------------------------------------------------------
    def _capacity(self) -> dict[str, int]:
        """Workers per stage after the max_threads / max_processes caps."""
        out = {}
        caps = {"thread": self.graph.options["max_threads"],
                "process": self.graph.options["max_processes"]}
        left = dict(caps)
        counted = [
            (p, s) for p, s in self.graph.stages.items()
            if s.kind not in UNPOOLED_KINDS
        ]
        pools = {"thread": "thread", "inline": "thread", "process": "process", "fork": "process"}
        remaining = {k: sum(1 for _, s in counted if pools.get(s.options["backend"]) == k)
                     for k in caps}
        for p, s in self.graph.stages.items():
            want = s.options["workers"]
            pool = pools.get(s.options["backend"])
            if (p, s) not in counted or pool is None or caps[pool] is None:
                out[p] = want
                continue
            remaining[pool] -= 1
            allowed = max(1, left[pool] - remaining[pool])  # keep one for every later stage
            got = min(want, allowed)
            left[pool] = max(0, left[pool] - got)
            if got < want:
                option = {"thread": "max_threads", "process": "max_processes"}[pool]
                warnings.warn(
                    f"stage {p!r} asked for workers={want} but {option}="
                    f"{caps[pool]} leaves it {got}; raise {option} or lower workers.",
                    CapacityWarning, stacklevel=_user_stacklevel(),
                )
            out[p] = got
        return out

    def _build_groups(self) -> None:
        senders: dict[str, set[str]] = {p: set(v) for p, v in self.graph.senders.items()}
        for p, spec in self.graph.stages.items():
            if spec.dynamic:
                senders[p].add(p)  # a dynamic stage may route to itself (a crawler's frontier)
        for p in self.graph.entries:
            senders[p].add(FEEDER)
        comps = _components(list(self.stages), senders)
        self.external: dict[str, list[Group]] = {}  # sender -> groups waiting on it
        for comp in comps:
            if comp == [FEEDER]:
                continue
            members = [self.stages[p] for p in comp]
            cyclic = len(comp) > 1 or comp[0] in senders[comp[0]]
            g = Group(members, cyclic)
            outside = {s for p in comp for s in senders[p]} - set(comp)
            g.external_left = len(outside)
            for s in outside:
                self.external.setdefault(s, []).append(g)
            for m in members:
                m.group = g

    # -- facts -----------------------------------------------------------------------------
    def publish(self, event: Any) -> None:
        self.collector.publish(event)

    def log_extra(self, stage: str | None = None) -> dict[str, Any]:
        return {"run_id": self.run_id, "stage": stage}

    def resolve(self, st: StageRun, name: str) -> tuple[str, ...]:
        key = (st.spec.pipeline, name)
        hit = self._resolve_cache.get(key)
        if hit is None:
            hit = self.graph.targets(name, st.spec.pipeline)  # Unknown/AmbiguousStageError
            self._resolve_cache[key] = hit
        if not hit:  # a nested pipeline with no entry stage: nothing would receive the item
            raise RoutingError(
                f"{name!r} is a nested pipeline with no entry stage to receive the item (its "
                f"stages are all dynamic=True, or it has none); route to one of its stages by "
                f"path, e.g. {name + '/<stage>'!r}"
            )
        return hit

    # -- moving items ----------------------------------------------------------------------
    def deliver(self, src: StageRun, dst: StageRun, items: list[Any], dynamic: bool = False
                ) -> bool:
        """Put ``items`` into ``dst``'s channel. False if ``dst`` already finished."""
        if items and self.peek:
            self.last_output[src.path] = items[-1]  # what a display peeks at
        ch = dst.channel
        if ch is None:
            return False  # a producer takes no input
        group = dst.group
        same_cycle = group.cyclic and src.group is group
        if same_cycle and self.stopping:
            # a draining stop: what a routing cycle feeds back into itself (a crawler's new
            # links) is new work, not work in flight, so it is cancelled and the cycle ends
            self.publish(ItemsReceived(dst.path, len(items)))
            self.cancel_items(dst, items, queued=True)  # received, never taken
            return True
        if group.cyclic:
            group.add_pending(len(items))
        step = dst.spec.options["queue_size"]
        for i in range(0, len(items), step):
            piece = items[i:i + step] if len(items) > step else items
            status = ch.put(piece, block=not same_cycle)
            if status == OK:
                self.publish(ItemsReceived(dst.path, len(piece)))
            elif status == CANCELLED:
                self.publish(ItemsReceived(dst.path, len(piece)))
                self.cancel_items(dst, piece, queued=True)  # received, never taken
                if group.cyclic:
                    group.add_pending(-len(piece))
            else:  # closed: only an undeclared dynamic route can meet a finished stage
                if group.cyclic:
                    group.add_pending(-len(items) + i)
                if not dynamic:
                    raise RuntimeError(f"internal: {dst.path!r} closed before {src.path!r}")
                return False
        return True

    def collect(self, st: StageRun, items: list[Any]) -> None:
        if items and self.peek:
            self.last_output[st.path] = items[-1]
        with self.lock:
            cap = self.max_outputs
            if cap is not None and len(self.outputs) + len(items) > cap:
                keep = max(0, cap - len(self.outputs))
                self.outputs_dropped += len(items) - keep
                items = items[:keep]
            self.outputs.extend(items)
            self.outputs_by_stage.setdefault(st.path, []).extend(items)

    def cancel_items(self, st: StageRun, items: list[Any], queued: bool = False) -> None:
        with self.lock:
            self.cancelled_items.extend(items)
        self.publish(ItemsCancelled(st.path, len(items), len(items) if queued else 0))

    def record_error(self, st: StageRun, item: Any, exc: BaseException, attempts: int,
                     count: int = 1, *, has_item: bool = True, fatal: str | None = None) -> None:
        """An error row. ``fatal`` names the phase (``"setup"``) of a failure that leaves
        the stage unable to run at all: the run ends ``failed`` then, whatever ``on_error``."""
        rec = error_record(st.path, item, exc, attempts, has_item)
        with self.lock:
            self.errors.append(rec)
            if fatal:
                self.broken.append(st.path)
        if fatal:
            log.error("%s of %s failed, the stage cannot run: %s: %s", fatal, st.path,
                      rec.exc_type, rec.message, extra=self.log_extra(st.path))
        else:
            log.warning("item failed in %s: %s: %s", st.path, rec.exc_type, rec.message,
                        extra=self.log_extra(st.path))
        self.on_error_hooks(exc, item, st.path)
        if st.spec.options["on_error"] == "raise" and self.failure is None:
            if fatal:
                what = f"{fatal} of stage {st.path!r} failed"
            elif has_item:
                what = f"stage {st.path!r} failed on item {rec.row()['item_repr']}"
            else:
                what = f"stage {st.path!r} failed"
            err = StageError(
                f"{what}: {rec.exc_type}: {rec.message}",
                stage=st.path, item=item, remote_traceback=rec.traceback,
            )
            err.__cause__ = exc
            self.failure = err
            st.status = "failed"  # the stage that failed the run; the others are cancelled
            log.error("run %s failed in %s", self.run_id, st.path, extra=self.log_extra(st.path))
            self.cancel()

    def on_error_hooks(self, exc: BaseException, item: Any, path: str) -> None:
        for pp, hook in self.graph.hooks.get("on_error", ()):
            try:
                hook(exc, item, path)
            except Exception:  # noqa: BLE001 - a broken hook must not break the run
                log.exception("on_error hook of %r raised", pp or self.graph.name,
                              extra=self.log_extra(path))

    def fail_internal(self, st: StageRun, exc: BaseException) -> None:
        if self.internal is None:
            self.internal = exc
        self.cancel()

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        self.started = time.monotonic()
        infos = tuple(
            StageInfo(p, s.kind, s.spec.options["backend"], s.workers,
                      s.spec.options["queue_size"], bool(s.spec.options["track_latency"]))
            for p, s in self.stages.items()
        )
        edges = tuple((e.source, e.target, e.kind) for e in self.graph.edges)
        self.publish(RunStarted(self.run_id, self.started, infos, self.graph.name, edges,
                                _total(self.items)))
        log.debug("run %s started", self.run_id, extra=self.log_extra())
        if self.graph.entries:
            with self.lock:  # the feeder ends the run too: its last deliveries count (§14)
                self.unfinished += 1
        for st in self.stages.values():
            st.start()
        if any(st.kind not in UNPOOLED_KINDS and st.spec.options["backend"] in
               THREAD_BACKENDS for st in self.stages.values()):
            threading.Thread(target=stream_ticker, args=(self,), daemon=True,
                             name=f"mg-{self.graph.name}-ticker").start()
        if self.graph.entries:
            threading.Thread(target=self._feed, name=f"mg-{self.graph.name}-items",
                             daemon=True).start()
        for g in {id(st.group): st.group for st in self.stages.values()}.values():
            g.maybe_close()
        if not self.stages:
            self._finish()

    def _feed(self) -> None:
        """Send every item of ``items=`` to every entry stage."""
        entries = [self.stages[p] for p in self.graph.entries]
        src = _Feeder()
        # never read further ahead than the smallest entry queue holds: what is pulled from
        # the iterable is in flight, and a draining stop delivers it
        limit = min([MAX_CHUNK, *(e.spec.options["queue_size"] for e in entries)])
        try:
            items = self.items
            if isinstance(items, (list, tuple, range)):  # all there already: slices
                for i in range(0, len(items), limit):
                    if self.stopping:
                        break
                    piece = list(items[i:i + limit])
                    for e in entries:
                        self.deliver(src, e, piece)  # type: ignore[arg-type]
                return
            # the iterable is pulled and shipped on this thread (producer.Handoff)
            hand = Handoff(f"mg-{self.graph.name}-items-courier", limit,
                           lambda batch: [self.deliver(src, e, batch) for e in entries],  # type: ignore[arg-type]
                           self, entries)
            try:
                if not self.stopping:
                    hand.pull(_iter_items(items))
            finally:
                hand.close()  # what was pulled is delivered, also after a failing iterable
        except Exception as exc:  # noqa: BLE001 - a failing iterable is like a failing producer
            log.warning("items= failed: %s: %s", type(exc).__name__, exc,
                        extra=self.log_extra(FEEDER))
            rec = error_record("<items>", None, exc, 1, has_item=False)
            with self.lock:
                self.errors.append(rec)
            self.on_error_hooks(exc, None, "<items>")
        finally:
            for g in self.external.get(FEEDER, ()):
                g.sender_done()
            self._participant_done()

    def stage_finished(self, st: StageRun) -> None:
        if st.status in ("pending", "running"):
            st.status = ("cancelled" if self.cancelled else "stopped" if self.stopping
                         else "done")
        self.publish(StageFinished(st.path, time.monotonic(), st.status))
        log.debug("stage finished: %s", st.status, extra=self.log_extra(st.path))
        for g in self.external.get(st.path, ()):
            g.sender_done()
        self._participant_done()

    def _participant_done(self) -> None:
        """A stage or the ``items=`` feeder has ended; the last one ends the run, so the
        RunResult is final when ``wait()`` returns (no thread of the run still counting)."""
        with self.lock:
            self.unfinished -= 1
            last = self.unfinished == 0
        if last:
            self._finish()

    def _finish(self) -> None:
        self.finished = time.monotonic()
        status = ("failed" if self.failure or self.internal or self.broken else "cancelled" if self.cancelled
                  else "stopped" if self.stopping else "done")
        self.publish(RunFinished(self.finished, status))
        log.debug("run %s finished: %s", self.run_id, status, extra=self.log_extra())
        self.done.set()

    def stop(self, drain: bool = True) -> None:
        """Draining stop: producers and the item feeder stop, everything in flight finishes."""
        self.stopping = True
        for hand in self.handoffs:
            hand.halt()  # their pullers stop before the next item
        if not drain:
            self.cancel()

    def cancel(self) -> None:
        """Stop now: queued items and items not yet started are cancelled."""
        self.cancelled = True
        self.stop()
        nudge_emitters(self, cancel=True)  # a running generator ends at its next yield
        for st in self.stages.values():
            if st.channel is not None:
                items = st.channel.cancel()
                if items:
                    self.cancel_items(st, items, queued=True)


class _Feeder:
    """Stands in for a sending stage when ``items=`` feeds the entry stages."""

    path = FEEDER

    def __init__(self) -> None:
        self.group = Group([], False)


def _total(items: Any) -> int | None:
    """How many items ``items=`` feeds each entry stage, when that is known in advance."""
    if items is None or isinstance(items, (str, bytes)):
        return None
    pd = loaded_pandas()
    try:
        n = len(items)
    except Exception:  # noqa: BLE001 - an iterator, or a len() that raises: unknown
        return None
    if pd is not None and isinstance(items, pd.DataFrame):
        return -(-n // MAX_CHUNK)  # fed as row chunks
    return n if isinstance(n, int) else None


def _iter_items(items: Any) -> Iterable[Any]:
    pd = loaded_pandas()
    if pd is not None and isinstance(items, pd.DataFrame):
        return (items.iloc[i:i + MAX_CHUNK] for i in range(0, len(items), MAX_CHUNK))
    return items


def _user_stacklevel() -> int:
    """The ``stacklevel`` that points a warning at the first frame outside minigun_nb (the
    user's ``run()`` call), counted from the caller of ``warnings.warn``."""
    _, steps = outer_frame(in_package, depth=1)
    return 1 + steps
