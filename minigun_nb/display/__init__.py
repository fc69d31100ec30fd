"""Turning snapshots and graphs into something a person sees; never imported by runtime/.

``display=`` on ``run()``/``start()`` picks the displays of a run (SPEC §13):

- ``"auto"``: ``"widget"`` inside a Jupyter kernel, else ``"progress"`` when stderr is a
  terminal, else ``"text"`` (cron, CI, pipes);
- ``"widget"``: the live anywidget dashboard (outside a kernel it is created and its text
  form printed); ``"progress"``: a tqdm bar per stage; ``"hud"``: the full-screen terminal
  dashboard (needs a terminal on stdout, else ``"text"`` with a note on stderr);
  ``"text"``: a status line on stderr at most every 10 s and the summary on stdout at the end;
  ``"none"``: nothing.

Each display is followed on its own timer (:meth:`RunHandle.subscribe`), so its cost does not
grow with the item rate.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ..errors import DefinitionError

DISPLAYS = ("auto", "widget", "progress", "hud", "text", "none")

__all__ = ["DISPLAYS", "choose", "displays_for", "forced", "in_kernel", "isatty"]

#: while a headless job runs (``minigun-nb run``), the display every run gets
_FORCED: list[str] = []


@contextmanager
def forced(display: str) -> Iterator[None]:
    """Give every run started inside the block ``display`` (``display=`` is still checked).

    ``minigun-nb run`` uses it so a job is seen as text (or the HUD) whatever its code asks.

    Examples
    --------
    >>> with forced("none"):
    ...     displays_for("text")
    []
    """
    choose(display)  # a bad value fails here, not in the first run
    _FORCED.append(display)
    try:
        yield
    finally:
        _FORCED.remove(display)


def in_kernel() -> bool:
    """True inside a Jupyter kernel (an IPython shell that has a kernel).

    IPython is not imported here: a process that never imported it is not a kernel.
    """
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    try:
        shell = ipython.get_ipython()
    except Exception:  # noqa: BLE001 - a broken IPython is not a kernel
        return False
    return shell is not None and getattr(shell, "kernel", None) is not None


def isatty(stream: Any) -> bool:
    """``stream.isatty()``, False for a closed stream or one that is not a real file."""
    try:
        return bool(stream is not None and stream.isatty())
    except (AttributeError, ValueError):  # closed, or not a real file
        return False


def choose(display: str) -> str:
    """The concrete display that ``display=`` means here (``"auto"`` resolved).

    Examples
    --------
    >>> choose("none")
    'none'
    >>> choose("sparkles")
    Traceback (most recent call last):
    ...
    minigun_nb.errors.DefinitionError: display='sparkles' is not valid; use one of 'auto', 'widget', 'progress', 'hud', 'text', 'none'.
    """
    if not isinstance(display, str) or display not in DISPLAYS:
        raise DefinitionError(
            f"display={display!r} is not valid; use one of {', '.join(map(repr, DISPLAYS))}."
        )
    if display == "auto":
        if in_kernel():
            return "widget"
        return "progress" if isatty(sys.stderr) else "text"
    if display == "hud" and not isatty(sys.stdout):
        print("minigun_nb: display='hud' needs a terminal on stdout; showing text progress "
              "instead.", file=sys.stderr)
        return "text"
    return display


def displays_for(display: str) -> list[Any]:
    """The display objects that implement ``display=`` for one run (checked before it starts)."""
    mode = choose(display)
    if _FORCED:
        mode = choose(_FORCED[-1])
    if mode == "none":
        return []
    if mode == "text":
        from .text import TextDisplay

        return [TextDisplay()]
    if mode == "progress":
        from .progress import ProgressDisplay

        return [ProgressDisplay()]
    if mode == "widget":
        from .widget import WidgetDisplay

        return [WidgetDisplay()]
    from .hud import HudDisplay

    return [HudDisplay()]
