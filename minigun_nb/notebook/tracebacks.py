"""How a :class:`~minigun_nb.DefinitionError` looks in a notebook: the message first, then only
the user's own frames.

A definition error is raised deep inside the package (a signature check, the graph's name
resolution), so IPython's traceback would show 8-14 frames of library internals before the
message. ``__tracebackhide__`` cannot hide them all: IPython always shows the innermost frame,
which is the package's ``raise``. So ``DefinitionError._render_traceback_`` (IPython's hook for
exceptions that format themselves) calls :func:`render_traceback`, which formats the exception
with the shell's own formatter (its colours and ``%xmode``) over a copy of the traceback that
leaves out every frame whose code lives in ``minigun_nb``. The exception object is untouched:
``%tb``, ``%debug`` and ``traceback.print_exc`` still see everything.

Nothing here imports IPython at import time; only IPython calls :func:`render_traceback`.
"""

from __future__ import annotations

import contextlib
import traceback
import types

# the package directory: frames whose code lives below it are library internals
from ..stagefn.frames import PACKAGE_DIR, inside_package


def user_frames(tb: types.TracebackType | None) -> types.TracebackType | None:
    """A copy of the traceback chain ``tb`` without the frames inside the package.

    A ``contextlib`` frame that only leads into the package (``with pipe.pipeline(...)``
    enters through it) is left out too; one leading into the user's own context manager stays.
    """
    entries: list[types.TracebackType] = []
    while tb is not None:
        entries.append(tb)
        tb = tb.tb_next
    files = [e.tb_frame.f_code.co_filename for e in entries]
    kept: list[tuple[types.FrameType, int, int]] = []
    for i, entry in enumerate(entries):
        if inside_package(files[i]):
            continue
        if files[i] == contextlib.__file__ and i + 1 < len(files) and inside_package(files[i + 1]):
            continue
        kept.append((entry.tb_frame, entry.tb_lasti, entry.tb_lineno))
    new: types.TracebackType | None = None
    for frame, lasti, lineno in reversed(kept):
        new = types.TracebackType(new, frame, lasti, lineno)
    return new


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception and those it was raised from or while handling, as IPython shows them."""
    seen: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and all(cur is not s for s in seen):
        seen.append(cur)
        cur = cur.__cause__ or (None if cur.__suppress_context__ else cur.__context__)
    return seen


def message_line(exc: BaseException) -> str:
    """``DefinitionError: <message>``, as the last line of IPython's traceback says it."""
    try:
        text = str(exc)
    except Exception:  # noqa: BLE001 - a message that cannot be rendered still gets a line
        text = "<exception str() failed>"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def render_traceback(exc: BaseException) -> list[str]:
    """The structured traceback IPython shows for ``exc``: its message, then its user frames.

    Every exception of the chain is formatted without the frames inside the package; an
    exception the package raised while handling another one inside the package (an implicit
    ``__context__`` with no user frame) is an implementation detail and is left out. Falls back
    to the plain, complete traceback if anything goes wrong: showing an error must never fail.

    Parameters
    ----------
    exc : BaseException
        The exception being shown (normally a ``DefinitionError``).

    Returns
    -------
    list of str
        Lines (or blocks) that IPython joins with newlines.
    """
    chain = _chain(exc)
    saved = [(e, e.__traceback__, e.__suppress_context__) for e in chain]
    formatter = None
    try:
        from IPython import get_ipython

        shell = get_ipython()
        formatter = getattr(shell, "InteractiveTB", None)
        if formatter is None:
            raise LookupError("no IPython shell")
        for e in chain:
            e.__traceback__ = user_frames(e.__traceback__)
        for e in chain:
            ctx = e.__context__
            if e.__cause__ is None and ctx is not None and ctx.__traceback__ is None:
                e.__suppress_context__ = True  # raised inside the package while handling it
        stb = formatter.structured_traceback(type(exc), exc, exc.__traceback__, tb_offset=0)
    except Exception:  # noqa: BLE001 - fall back to the whole traceback rather than fail
        for e, tb, suppress in saved:
            e.__traceback__, e.__suppress_context__ = tb, suppress
        stb = ["".join(traceback.format_exception(exc)).rstrip("\n")]
    finally:
        for e, tb, suppress in saved:
            e.__traceback__, e.__suppress_context__ = tb, suppress
    # the shell joins the blocks with "\n" (Context, Verbose) or "" (Plain, Minimal: their
    # blocks end in a newline); the message line must end its own line either way
    joiner = getattr(formatter, "tb_join_char", "\n")
    return [message_line(exc) + ("\n" if joiner == "" else ""), *stb]


__all__ = ["PACKAGE_DIR", "inside_package", "message_line", "render_traceback", "user_frames"]
