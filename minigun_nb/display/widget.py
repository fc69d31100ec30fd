"""The live dashboard: an anywidget whose front end lives in ``widgets/`` (shipped in the wheel).

:class:`Dashboard` is the widget (synced traits ``graph``, ``stats``, ``run``, ``errors``;
shapes in docs/displays.md). :class:`WidgetDisplay` is the display that follows a run with
it: shown inline when the run starts, refreshed on its own timer (≤ 10 Hz, every trait of a
refresh in one comm message), and at the end replaced in place by the static dashboard
(``result.to_html()`` plus the ``text/plain`` summary) and closed, so a saved notebook keeps
the final state and no widget state of a finished run.

The page's Stop button sends ``{"type": "stop"}`` (drain) or ``{"type": "stop", "drain":
false}`` (cancel); the widget answers by setting ``run["status"]`` to ``"stopping"``. A
second Stop while stopping cancels.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from pathlib import Path
from typing import Any

import anywidget
import traitlets

from ..stagefn.reprs import short_repr
from . import in_kernel
from ._comm import deliver_while_busy
from .layout import graph_trait
from .serialize import ErrorRows, run_trait, stats_trait

__all__ = ["Dashboard", "WidgetDisplay", "asset", "show_handle"]

log = logging.getLogger("minigun_nb")

#: a stage whose items_out moved within this many seconds has its out-edges animated
ACTIVE_SECONDS = 1.0

INTERRUPT_NOTICE = (
    "Stop cannot reach this cell while it runs here: press the kernel's Interrupt button "
    "(■) to stop the run (the first interrupt drains, a second one cancels)."
)


def asset(name: str) -> Path:
    """The path of a front-end file: inside the installed package, else the repo's widgets/."""
    packaged = Path(__file__).with_name("assets") / name
    if packaged.exists():
        return packaged
    return Path(__file__).resolve().parents[2] / "widgets" / name


class Dashboard(anywidget.AnyWidget):
    """The live dashboard widget of one run (see the module docstring).

    Examples
    --------
    >>> dash = Dashboard()
    >>> sorted(k for k in ("graph", "stats", "run", "errors") if dash.has_trait(k))
    ['errors', 'graph', 'run', 'stats']
    """

    _esm = asset("dashboard.js")
    _css = asset("dashboard.css")

    graph = traitlets.Dict().tag(sync=True)
    stats = traitlets.Dict().tag(sync=True)
    run = traitlets.Dict().tag(sync=True)
    errors = traitlets.List().tag(sync=True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._stop_handler: Any = None
        self._final_bundle: dict[str, str] | None = None
        self.on_msg(self._on_page_message)

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        # once its run has ended a dashboard shows as the static one (it is closed: a live
        # view of it would be "model not found" in the saved notebook)
        if self._final_bundle is not None:
            return self._final_bundle
        return super()._repr_mimebundle_(**kwargs)

    def _on_page_message(self, _widget: Any, content: Any, _buffers: Any) -> None:
        # (never name this _handle_msg: that would replace ipywidgets' own dispatcher)
        if not isinstance(content, dict) or content.get("type") != "stop":
            return
        handler = self._stop_handler
        if handler is not None:
            handler(bool(content.get("drain", True)))

    def __repr__(self) -> str:
        run = self.run or {}
        return f"<minigun_nb dashboard {run.get('pipeline', '')!s} ({run.get('status', 'new')})>"


class WidgetDisplay:
    """Follows a run with a :class:`Dashboard` (a display for :meth:`RunHandle.subscribe`)."""

    def __init__(self) -> None:
        self.widget: Dashboard | None = None
        self.handle: Any = None
        self._display_handle: Any = None
        self._lock = threading.Lock()
        self._stopping = False
        self._notice: str | None = None
        self._errors_seen = -1
        self._error_rows = ErrorRows(short_repr)
        self._moved: dict[str, tuple[int, float]] = {}
        self.messages_sent = 0

    # -- the display protocol ---------------------------------------------------------------

    def on_start(self, handle: Any) -> None:
        self.handle = handle
        widget = Dashboard()
        widget.graph = graph_trait(handle.graph)
        widget._stop_handler = self._stop
        self.widget = widget
        snapshot = handle.snapshot
        self._push(snapshot, first=True)
        if in_kernel():
            routed = deliver_while_busy(widget)
            if not routed and getattr(handle, "blocking", False):
                self._notice = INTERRUPT_NOTICE
                self._push(snapshot)
            from IPython.display import display

            self._display_handle = display(widget, display_id=True)
        else:
            print(f"{handle.pipeline_name}: live dashboard widget created (no notebook "
                  f"here to show it; handle.widget holds it)", file=sys.stderr)

    def on_snapshot(self, snapshot: Any) -> None:
        self._push(snapshot)

    def on_end(self, result: Any) -> None:
        widget = self.widget
        if widget is None:
            return
        self._push(result.snapshot)
        final = {"text/html": result.to_html(), "text/plain": result.summary()}
        widget._final_bundle = final  # shown again (a cell's last expression): the static form
        if self._display_handle is not None:
            self._display_handle.update(final, raw=True)
            widget.close()
        else:
            print(result.summary(), flush=True)

    # -- Stop from the page -----------------------------------------------------------------

    def _stop(self, drain: bool) -> None:
        handle = self.handle
        if handle is None or handle.done:
            return
        with self._lock:
            # a second Stop while a drain is going cancels
            cancel = (not drain) or self._stopping
            self._stopping = True
        handle.stop(drain=not cancel)
        self._push(handle.snapshot)

    # -- refreshing ---------------------------------------------------------------------------

    def _active(self, snapshot: Any) -> list[str]:
        now = time.monotonic()
        active = []
        for stage in snapshot.stages:
            before = self._moved.get(stage.path)
            if before is None or stage.items_out != before[0]:
                if stage.items_out:
                    self._moved[stage.path] = (stage.items_out, now)
                before = self._moved.get(stage.path)
            if before is not None and now - before[1] <= ACTIVE_SECONDS and \
                    stage.status in ("running", "pending"):
                active.append(stage.path)
        return active

    def _push(self, snapshot: Any, first: bool = False) -> None:
        """Set every trait that changed, in one comm message (``hold_sync``)."""
        widget, handle = self.widget, self.handle
        if widget is None or handle is None:
            return
        with self._lock:
            records = handle._run.errors
            status = None
            if self._stopping and snapshot.status in ("running", "pending"):
                status = "stopping"
            stats = stats_trait(snapshot, handle.peek, self._active(snapshot))
            run = run_trait(snapshot, status=status, errors_total=len(records),
                            notice=self._notice)
            errors = None
            if len(records) != self._errors_seen:
                self._errors_seen = len(records)
                errors = self._error_rows.trait(records)
            with widget.hold_sync():
                if stats != widget.stats:
                    widget.stats = stats
                if run != widget.run:
                    widget.run = run
                if errors is not None and errors != widget.errors:
                    widget.errors = errors
            self.messages_sent += 1

    def __repr__(self) -> str:
        return f"<WidgetDisplay {self.widget!r}>"


def show_handle(handle: Any) -> Any:
    """``handle.show()``: a live dashboard of a running run, the final one of an ended run."""
    if handle.done:
        result = handle.result()
        if in_kernel():
            from IPython.display import display

            display({"text/html": result.to_html(), "text/plain": result.summary()}, raw=True)
        else:
            print(result.summary())
        return None
    handle.subscribe(WidgetDisplay())  # it displays itself (once) in the current cell
    return None
