"""Starting runs: ``start()`` returns a RunHandle at once; ``run()`` waits for the result."""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from ..core.graph import resolve
from ..errors import DefinitionError
from ..observe.follow import FAST_SECONDS, SLOW_SECONDS, Follower
from ..stagefn.reprs import short_repr
from .result import RunResult
from .run import TICK_SECONDS, Run

if TYPE_CHECKING:
    import pandas as pd

    from ..core.pipeline import Pipeline

log = logging.getLogger("minigun_nb")


class RunHandle:
    """A run in progress: ``wait()``, ``stop(drain=True)``, live ``stats``, ``result()``.

    Examples
    --------
    >>> import minigun_nb as mg
    >>> pipe = mg.Pipeline([mg.processor(lambda x: x + 1, name="inc")])
    >>> handle = pipe.start(items=range(5), display="none")
    >>> sorted(handle.wait().outputs)
    [1, 2, 3, 4, 5]
    """

    def __init__(self, run: Run) -> None:
        self._run = run
        self._finished = threading.Event()
        self._result: RunResult | None = None
        self._followers: list[Follower] = []
        self._peeks: dict[str, tuple[float, int, str]] = {}
        #: ``peek=False`` on run()/start(): displays show no repr of the outputs
        self.peek_enabled = True
        #: True for ``run()``: the caller's thread (a notebook cell) blocks until the end
        self.blocking = False

    # -- following the run (displays) -----------------------------------------------------

    def subscribe(self, display: object, *, fast: float = FAST_SECONDS,
                  slow: float = SLOW_SECONDS) -> object:
        """Attach ``display`` to this run; it is followed on a timer of its own.

        ``display`` may have ``on_start(handle)`` (called now, in this thread),
        ``on_snapshot(snapshot)`` (on its own thread, at most 10 times a second: every
        ``fast`` seconds while the run moves, backing off to ``slow`` while nothing changes,
        and once with the final snapshot) and ``on_end(result)`` (once, after the result
        exists). A display that raises is detached and logged; the run goes on. A display
        subscribed after the run ended gets the final snapshot and ``on_end`` at once.

        Returns ``display``.

        Examples
        --------
        >>> import minigun_nb as mg
        >>> class Count:
        ...     def __init__(self): self.final = None
        ...     def on_end(self, result): self.final = len(result.outputs)
        >>> pipe = mg.Pipeline([mg.processor(lambda x: x, name="same")])
        >>> handle = pipe.start(items=range(3), display="none")
        >>> count = handle.subscribe(Count()); _ = handle.wait()
        >>> handle.join_displays()
        True
        >>> count.final
        3
        """
        extra = self._run.log_extra()
        on_start = getattr(display, "on_start", None)
        if callable(on_start):
            try:
                on_start(self)
            except Exception as exc:  # noqa: BLE001 - a display never fails a data job
                log.warning("minigun_nb: display %r raised in on_start and was detached: "
                            "%s: %s", display, type(exc).__name__, exc, exc_info=exc,
                            extra=extra)
                return display
        follower = Follower(display, self._run.collector.snapshot, self._finished,
                            self._final, fast=fast, slow=slow, log_extra=extra)
        self._followers.append(follower)
        follower.start()
        return display

    def join_displays(self, timeout: float = 10.0) -> bool:
        """Wait (at most ``timeout`` s in all) until every display has shown the end."""
        deadline = _now() + timeout
        for follower in list(self._followers):
            if not follower.finished.wait(max(0.0, deadline - _now())):
                return False
        return True

    @property
    def displays(self) -> tuple[object, ...]:
        """The displays attached with :meth:`subscribe`, in order."""
        return tuple(f.display for f in self._followers)

    @property
    def widget(self) -> Any:
        """The run's live widget, or None when the run was started without one."""
        for display in self.displays:
            widget = getattr(display, "widget", None)
            if widget is not None:
                return widget
        return None

    def show(self) -> Any:
        """Show a live dashboard of this run in the current cell (the final one once ended).

        Works whatever ``display=`` the run was started with.
        """
        from ..display.widget import show_handle  # the façade: runtime stays display-free

        return show_handle(self)

    @property
    def graph(self) -> Any:
        """The resolved, frozen graph this run executes."""
        return self._run.graph

    @property
    def pipeline_name(self) -> str:
        return self._run.graph.name

    def peek(self, path: str, *, every: float = 1.0, limit: int = 200) -> str | None:
        """A short repr of stage ``path``'s most recent output (None when it has none).

        Taken at most once every ``every`` seconds per stage, one line of at most ``limit``
        characters; ``"<repr failed>"`` when the repr raises. None with ``peek=False``.
        """
        if not self.peek_enabled:
            return None
        last = self._run.last_output
        if path not in last:
            return None
        value = last[path]
        now = _now()
        cached = self._peeks.get(path)
        if cached is not None and now - cached[0] < every and not self.done:
            return cached[2]
        text = short_repr(value, limit)
        self._peeks[path] = (now, id(value), text)
        return text

    @property
    def run_id(self) -> str:
        return self._run.run_id

    @property
    def done(self) -> bool:
        return self._finished.is_set()

    @property
    def stats(self) -> pd.DataFrame:
        """Live per-stage stats (the same columns as ``result.stats``)."""
        return self._run.collector.snapshot().to_frame()

    @property
    def snapshot(self) -> Any:
        return self._run.collector.snapshot()

    def stop(self, drain: bool = True) -> None:
        """Stop the run: ``drain=True`` lets in-flight items finish; False cancels them."""
        self._run.stop(drain=drain)

    def wait(self, timeout: float | None = None) -> RunResult:
        """Block until the run ends and return its RunResult.

        A failed run (``on_error="raise"``) returns too: ``result.ok`` is False and
        ``result.error`` is the :class:`~minigun_nb.StageError` that ``run()`` would raise.
        """
        deadline = None if timeout is None else _now() + timeout
        while not self._finished.wait(0.05):
            if deadline is not None and _now() > deadline:
                raise TimeoutError(f"run {self.run_id} still running after {timeout} s")
        return self._final()

    def result(self, timeout: float | None = None) -> RunResult:
        """The RunResult, waiting for the run to end like ``Future.result()`` (same as wait)."""
        return self.wait(timeout)

    def _final(self) -> RunResult:
        assert self._result is not None
        failure = self._run.failure
        if failure is not None:
            failure.result = self._result  # type: ignore[attr-defined]
            self._result.error = failure
        if self._run.internal is not None:
            raise RuntimeError(f"minigun_nb internal error: {self._run.internal!r}"
                               ) from self._run.internal
        return self._result

    def __repr__(self) -> str:
        return f"<RunHandle {self.run_id} {'done' if self.done else 'running'}>"


def _now() -> float:
    import time

    return time.monotonic()


#: called with every finished run's RunResult, in this process (the headless runner counts
#: failures with it); a listener that raises is logged
RESULT_LISTENERS: list[Callable[[RunResult], None]] = []
#: every run started in this process and not yet garbage (a running one is held by its
#: supervisor thread): the headless runner waits for runs a script started but left running
LIVE_HANDLES: weakref.WeakSet[RunHandle] = weakref.WeakSet()


def _supervise(handle: RunHandle, run: Run, pipe: Pipeline) -> None:
    collector = run.collector
    try:
        while not run.done.wait(TICK_SECONDS):
            if collector.observers:
                collector.notify_snapshot()
        snapshot = collector.snapshot()
        result = RunResult(
            run_id=run.run_id, snapshot=snapshot, outputs=run.outputs,
            outputs_by_stage=run.outputs_by_stage, errors=run.errors,
            cancelled_items=run.cancelled_items, status=snapshot.status,
            outputs_dropped=run.outputs_dropped,
        )
        result.graph = run.graph  # the static dashboard draws the same layout as the live one
        if run.failure is not None:  # after_run sees the failure too
            run.failure.result = result  # type: ignore[attr-defined]
            result.error = run.failure
        handle._result = result
        for pp, hook in run.graph.hooks.get("after_run", ()):
            try:
                hook(result)
            except Exception:  # noqa: BLE001 - logged; the result stands
                log.exception("after_run hook of %r raised", pp or run.graph.name,
                              extra=run.log_extra())
        collector.notify_snapshot(snapshot)
        for listener in list(RESULT_LISTENERS):
            try:
                listener(result)
            except Exception:  # noqa: BLE001 - logged; the result stands
                log.exception("result listener %r raised", listener, extra=run.log_extra())
    finally:
        pipe._running -= 1
        handle._finished.set()


class _DeferredInterrupt:
    """Hold back Ctrl-C while a run's threads start, so it never lands half-way.

    A KeyboardInterrupt between the first stage thread and the supervisor would leave
    stages running with nobody to drain them. Only the main thread can swap the SIGINT
    handler; elsewhere (a run started from a thread) nothing is deferred.
    """

    def __init__(self) -> None:
        self.hit = False
        self._installed = False
        self._saved: Any = None

    def __enter__(self) -> _DeferredInterrupt:
        import signal

        if threading.current_thread() is threading.main_thread():
            try:
                self._saved = signal.signal(signal.SIGINT, self._note)
                self._installed = True
            except (ValueError, OSError):  # not the main interpreter, or no signals here
                pass
        return self

    def _note(self, signum: int, frame: Any) -> None:
        self.hit = True

    def __exit__(self, *exc: Any) -> None:
        import signal

        if self._installed:
            # None: the previous handler was not set from Python; Python's own is the best bet
            saved = self._saved if self._saved is not None else signal.default_int_handler
            signal.signal(signal.SIGINT, saved)


def start(pipe: Pipeline, items: Any = None, observers: Iterable[Any] = (),
          displays: Iterable[Any] = (), peek: bool = True) -> RunHandle:
    """Resolve, check and start a run of ``pipe``; return its RunHandle at once.

    ``observers`` see every event (collector level); ``displays`` are followed on their own
    timers (:meth:`RunHandle.subscribe`). A Ctrl-C while the run starts drains it and is
    raised once it is fully started.
    """
    handle, interrupted = _start(pipe, items, observers, displays, peek)
    if interrupted:
        handle.stop(drain=True)
        raise KeyboardInterrupt
    return handle


def _start(pipe: Pipeline, items: Any, observers: Iterable[Any], displays: Iterable[Any] = (),
           peek: bool = True, blocking: bool = False) -> tuple[RunHandle, bool]:
    graph = resolve(pipe)
    if graph.entries and items is None:
        names = ", ".join(repr(p) for p in graph.entries)
        raise DefinitionError(
            f"pipeline {pipe.name!r}: stage(s) {names} have no upstream, so they are entry "
            f"stages fed by run(items=...), but no items were given. Pass items=, give them a "
            f"producer upstream, or mark them dynamic=True."
        )
    if items is not None and not graph.entries:
        raise DefinitionError(
            f"pipeline {pipe.name!r}: items= was given but no stage receives it (every stage "
            f"has an upstream or is a producer). Drop items=, or add a stage with no upstream."
        )
    if items is not None and not hasattr(items, "__iter__"):
        raise DefinitionError(
            f"pipeline {pipe.name!r}: items={items!r} is not iterable; pass a list, an "
            f"iterable or a DataFrame."
        )
    if not graph.stages:
        raise DefinitionError(f"pipeline {pipe.name!r} has no stages; define some first.")
    run = Run(pipe, graph, items, observers)
    handle = RunHandle(run)
    handle.peek_enabled = run.peek = bool(peek)
    handle.blocking = blocking
    LIVE_HANDLES.add(handle)
    for _pp, hook in graph.hooks.get("before_run", ()):
        hook()
    from .pooled_prepare import prepare_run

    prepare_run(run)  # a missing dask or a failing before_fork raises before any stage starts
    with _DeferredInterrupt() as deferred:
        pipe._running += 1
        try:
            run.start()
        except BaseException:
            pipe._running -= 1
            raise
        threading.Thread(target=_supervise, args=(handle, run, pipe), daemon=True,
                         name=f"mg-{graph.name}-supervisor").start()
        for display in displays:
            handle.subscribe(display)
    return handle, deferred.hit


def _raise_failure(result: RunResult) -> RunResult:
    """``run()`` raises the StageError of a failed run (``handle.wait()`` returns it)."""
    if result.error is not None:
        raise result.error
    return result


def run(pipe: Pipeline, items: Any = None, observers: Iterable[Any] = (),
        displays: Iterable[Any] = (), peek: bool = True) -> RunResult:
    """Run ``pipe`` to the end. The first Ctrl-C drains, a second one cancels.

    Returns once the displays have shown the end too (at most 10 s more), so the cell's
    output is final when the cell ends.
    """
    handle, interrupted = _start(pipe, items, observers, displays, peek, blocking=True)
    try:
        return _run_to_end(handle, interrupted)
    finally:
        handle.join_displays()


def _run_to_end(handle: RunHandle, interrupted: bool) -> RunResult:
    try:
        if interrupted:
            raise KeyboardInterrupt  # pressed while the run started: the first Ctrl-C
        return _raise_failure(handle.wait())
    except KeyboardInterrupt:
        handle.stop(drain=True)
        try:
            return _raise_failure(handle.wait())
        except KeyboardInterrupt:
            handle.stop(drain=False)
            handle._finished.wait()
            raise
