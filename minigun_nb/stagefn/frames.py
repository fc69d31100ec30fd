"""The caller-frame walk: out of the call stack to the first frame a rule accepts.

Used to find the user code behind a call into the package: the call site of a definition
(``core/stage.py``), the ``stacklevel`` of a warning (``runtime/run.py``), the script line
that started a run (``executors/dask.py``); :func:`inside_package` also tells which frames of
a traceback are the library's (``notebook/tracebacks.py``). Stdlib only.
"""

from __future__ import annotations

import os
import sys
import types
from collections.abc import Callable

#: the directory of the minigun_nb package, with a trailing separator
PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
_REAL_PACKAGE_DIR = os.path.realpath(PACKAGE_DIR.rstrip(os.sep)) + os.sep


def inside_package(filename: str) -> bool:
    """True when ``filename`` is a source file of the minigun_nb package."""
    return filename.startswith(PACKAGE_DIR) or filename.startswith(_REAL_PACKAGE_DIR)


def in_package(frame: types.FrameType) -> bool:
    """Whether ``frame`` runs code of the minigun_nb package."""
    return inside_package(frame.f_code.co_filename)


def outer_frame(skip: Callable[[types.FrameType], bool] = in_package, depth: int = 0
                ) -> tuple[types.FrameType | None, int]:
    """The first frame that ``skip`` does not match, walking out from a start frame, and how
    many frames out from the start it is (None when the stack ends first).

    The start frame is the caller of ``outer_frame`` (``depth=0``), its caller (``depth=1``),
    and so on.

    Examples
    --------
    >>> import sys
    >>> outer_frame(in_package) == (sys._getframe(), 0)  # called from outside the package
    True
    """
    frame: types.FrameType | None = sys._getframe(depth + 1)
    steps = 0
    while frame is not None and skip(frame):
        frame, steps = frame.f_back, steps + 1
    return frame, steps
