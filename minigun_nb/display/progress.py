"""``display="progress"``: one tqdm bar per stage, then the summary.

Each stage (operators included) gets a bar labelled with its path, counting items done (a
producer counts items emitted), with the rate and the failed count in the postfix. The bars
come from ``tqdm.auto``, so a notebook gets tqdm's own widgets and a terminal text bars. A
bar's total is the run's item total when ``items=`` is sized (entry stages). The bars are
moved on the display's own timer (≤ 10 Hz), never per item, and closed when the run ends;
``result.summary()`` follows on stdout.
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["ProgressDisplay"]

_BAR_TOTAL = "{desc} {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}{postfix}]"
_BAR_OPEN = "{desc} {n_fmt} done [{elapsed}{postfix}]"


class ProgressDisplay:
    """tqdm bars per stage; see the module docstring."""

    def __init__(self, file: Any = None, stream: Any = None) -> None:
        self.file = file  # where the bars go (tqdm's default: stderr)
        self.stream = stream  # where the summary goes (stdout)
        self.bars: dict[str, Any] = {}
        self._entries: frozenset[str] = frozenset()
        self._handle: Any = None

    def on_start(self, handle: Any) -> None:
        self._handle = handle
        graph = handle.graph
        self._entries = frozenset(getattr(graph, "entries", ()) or ())

    def _bars_for(self, snapshot: Any) -> None:
        from tqdm.auto import tqdm  # imported where used: tqdm is a display library

        width = max((len(stage.path) for stage in snapshot.stages), default=8)
        for position, stage in enumerate(snapshot.stages):
            if stage.path in self.bars:
                continue
            total = snapshot.total if stage.path in self._entries else None
            # the rate goes in the postfix (the stage's recent items/s), not tqdm's own
            fmt = (_BAR_TOTAL if total else _BAR_OPEN)
            self.bars[stage.path] = tqdm(
                total=total, desc=stage.path.ljust(width), unit="it", position=position,
                bar_format=fmt,
                leave=True, file=self.file, dynamic_ncols=True, mininterval=0,
                miniters=1, smoothing=0.3,
            )

    def on_snapshot(self, snapshot: Any) -> None:
        if not snapshot.stages:
            return
        self._bars_for(snapshot)
        for stage in snapshot.stages:
            bar = self.bars[stage.path]
            count = stage.items_out if stage.is_producer else stage.done
            if count > bar.n:
                bar.update(count - bar.n)
            postfix = f"{stage.throughput:,.0f}/s"
            if stage.failed:
                postfix += f", failed={stage.failed:,}"
            if stage.stalled:
                postfix += ", stalled"
            if postfix != getattr(bar, "_mg_postfix", None):
                bar._mg_postfix = postfix  # type: ignore[attr-defined]
                bar.set_postfix_str(postfix, refresh=False)
            bar.refresh()

    def on_end(self, result: Any) -> None:
        for bar in self.bars.values():
            bar.close()
        print(result.summary(), file=self.stream or sys.stdout, flush=True)

    def __repr__(self) -> str:
        return f"<ProgressDisplay {len(self.bars)} bars>"
