"""The headless display: a status line now and then, the summary table at the end.

``display="text"`` (and ``"auto"`` when stderr is not a terminal: cron, CI, pipes) prints a
one-line status per run on stderr at most every 10 s while it runs::

    etl: 12,345 done, 3 failed, 1,204/s, 00:42

and ``result.summary()`` on stdout once, when it ends.
"""

from __future__ import annotations

import sys
import time
from typing import Any

__all__ = ["TextDisplay", "status_line"]

#: seconds between two status lines of one run
EVERY_SECONDS = 10.0


def _clock(seconds: float) -> str:
    seconds = int(max(0.0, seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def pipeline_counts(snapshot: Any) -> tuple[int, int, float]:
    """(done, failed, items/s) of a run as a whole.

    ``done`` counts what the pipeline finished: the items done by its terminal stages (those
    with no downstream), or by its last stages when every stage has a downstream. ``failed``
    counts error rows over all stages. The rate is the terminal stages' recent throughput.
    """
    sources = {edge[0] for edge in snapshot.edges}
    terminal = [s for s in snapshot.stages if s.path not in sources and not s.is_producer]
    if not terminal:
        terminal = [s for s in snapshot.stages if not s.is_producer] or list(snapshot.stages)
    done = sum(s.items_out if s.is_producer else s.done for s in terminal)
    failed = sum(s.failed for s in snapshot.stages)
    rate = sum(s.throughput for s in terminal)
    return done, failed, rate


def status_line(snapshot: Any) -> str:
    """``etl: 12,345 done, 3 failed, 1,204/s, 00:42`` for a snapshot.

    Examples
    --------
    >>> from minigun_nb.observe import RunSnapshot
    >>> status_line(RunSnapshot.empty())
    'pipeline: 0 done, 0 failed, 0/s, 00:00'
    """
    done, failed, rate = pipeline_counts(snapshot)
    name = snapshot.pipeline or "pipeline"
    line = f"{name}: {done:,} done, {failed:,} failed, {rate:,.0f}/s, {_clock(snapshot.elapsed_s)}"
    if snapshot.status not in ("running", "pending"):
        line += f" ({snapshot.status})"
    return line


class TextDisplay:
    """Status lines on ``status_stream`` (stderr), the summary on ``stream`` (stdout)."""

    def __init__(self, stream: Any = None, status_stream: Any = None,
                 every: float = EVERY_SECONDS) -> None:
        self.stream = stream
        self.status_stream = status_stream
        self.every = every
        self._last = time.monotonic()  # the first line comes `every` seconds in

    def on_snapshot(self, snapshot: Any) -> None:
        if snapshot.status not in ("running", "stopping"):
            return
        now = time.monotonic()
        if now - self._last >= self.every:
            self._last = now
            print(status_line(snapshot), file=self.status_stream or sys.stderr, flush=True)

    def on_end(self, result: Any) -> None:
        print(result.summary(), file=self.stream or sys.stdout, flush=True)

    def __repr__(self) -> str:
        return "<TextDisplay>"
