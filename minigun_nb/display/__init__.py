"""Turning snapshots and graphs into something a person sees; never imported by runtime/."""

from __future__ import annotations

import sys
from typing import Any

from ..errors import DefinitionError

DISPLAYS = ("auto", "widget", "progress", "hud", "text", "none")


class TextSummary:
    """Prints the run's summary table when it ends (the headless display)."""

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream

    def on_snapshot(self, snapshot: Any) -> None:
        if snapshot.status in ("done", "failed", "stopped", "cancelled"):
            from ..observe.summary import summary_text

            print(summary_text(snapshot), file=self.stream or sys.stdout)


def observers_for(display: str) -> list[Any]:
    """The observers that implement ``display=`` for a run."""
    if display not in DISPLAYS:
        raise DefinitionError(
            f"display={display!r} is not valid; use one of {', '.join(map(repr, DISPLAYS))}."
        )
    if display == "none" or display == "auto":
        # "auto" picks the widget in a notebook and progress bars in a terminal once those
        # displays exist; until then a run is silent unless display="text" is asked for.
        return []
    if display == "text":
        return [TextSummary()]
    raise DefinitionError(
        f"display={display!r} is not available in this version yet; use 'text' or 'none'."
    )
