"""Re-run identity: when a definition replaces an earlier one instead of adding another.

Re-running a notebook cell defines its stages, operators, nested pipelines and hooks again;
each replaces, in place, what the previous run of the cell defined (same position, same
edges). Telling a re-run from a second definition:

- a stage of the same name and the same function name (SPEC section 1,
  :meth:`~minigun_nb.core.stage.Stage.same_definition`);
- an operator named by default (``batch``, ``debatch``, ``rebatch``) whose name is taken
  replaces an operator of the same kind named by default in the pipeline when (a) that one was
  added from the same place (file, line and column of the call) by code compiled again, i.e.
  the cell was re-run, or (b) the previous definition in the pipeline re-defined a stage of the
  same file (cell) and that operator comes right after it in its block, i.e. the cell was
  edited and its lines moved. Otherwise it is numbered (``batch_2``, ``batch_3``, ...): two
  operators in one cell, a loop or a helper function called twice add two operators;
- a nested pipeline of the same name added from another file or cell, or from the same place
  compiled again (:func:`rerun`);
- a hook of the same qualified name compiled again (:func:`same_hook`).

Operators and nested pipelines record where user code defined them (:class:`CallSite`).
"""

from __future__ import annotations

import contextlib
import weakref
from typing import TYPE_CHECKING, Any

from ..stagefn.frames import in_package, outer_frame
from .stage import Stage

if TYPE_CHECKING:
    from .tree import Block, PipelineTree


class CallSite:
    """Where user code made a definition: file, line and column of the call, and its code.

    A notebook cell is compiled again each time it runs, so the same place reached by a new
    code object is a re-run of the cell (:meth:`rerun_of`), while a loop or a helper called
    twice reaches it with the same code object. The code object is held weakly: once it is
    gone, any code reaching that place is a new compilation.
    """

    __slots__ = ("filename", "lineno", "col", "_code")

    def __init__(self, filename: str, lineno: int | None, col: int | None,
                 code: Any = None) -> None:
        self.filename = filename
        self.lineno = lineno
        self.col = col
        self._code = weakref.ref(code) if code is not None else None

    @property
    def place(self) -> tuple[str, int | None, int | None]:
        return self.filename, self.lineno, self.col

    def code(self) -> Any:
        return self._code() if self._code is not None else None

    def rerun_of(self, other: CallSite | None) -> bool:
        """True when this call is ``other``'s place reached again by new code (a re-run)."""
        return (other is not None and other.place == self.place
                and (self.code() is None or other.code() is not self.code()))

    def __reduce__(self) -> Any:  # picklable and copyable (the weak code reference is not)
        return CallSite, (self.filename, self.lineno, self.col)

    def __repr__(self) -> str:
        return f"<CallSite {self.filename}:{self.lineno}:{self.col}>"


def call_site() -> CallSite | None:
    """The call site of the running definition: the first frame outside minigun_nb."""
    # (`with pipe.pipeline(...)` enters through contextlib)
    frame, _ = outer_frame(
        lambda f: in_package(f) or f.f_code.co_filename == contextlib.__file__, depth=1)
    if frame is None:
        return None
    code = frame.f_code
    lineno, col = frame.f_lineno, None
    positions = getattr(code, "co_positions", None)  # Python 3.11+: the call's own column
    if positions is not None:
        for i, pos in enumerate(positions()):
            if i == frame.f_lasti // 2:
                lineno, col = pos[0] or lineno, pos[2]
                break
    return CallSite(code.co_filename, lineno, col, code)


def defined_in(stage: Stage) -> str | None:
    """The source file (or notebook cell) that defined ``stage``, when it can be told."""
    if stage.fn is None:
        return stage.site.filename if stage.site is not None else None
    for f in (stage.fn, getattr(stage.fn, "__call__", None)):  # noqa: B004 - instances
        code = getattr(f, "__code__", None)
        if code is not None:
            return code.co_filename
    return None


def redefined_operator(pipe: PipelineTree, stage: Stage) -> Stage | None:
    """The operator of ``pipe`` that auto-named ``stage`` re-defines (rules (a) and (b))."""
    site = stage.site
    if site is None:
        return None
    for op in pipe._body.walk():
        if (isinstance(op, Stage) and op.auto_named and op.kind == stage.kind
                and site.rerun_of(op.site)):
            return op  # (a) the same place, compiled again
    last = pipe._last_replaced
    if last is not None and defined_in(last) == site.filename:
        op = pipe._body.next_after(last)
        if (isinstance(op, Stage) and op.auto_named and op.kind == stage.kind
                and (op.site is None or op.site.code() is not site.code())):
            return op  # (b) right after the stage this (edited) cell just re-defined
    return None


def numbered_name(pipe: PipelineTree, kind: str) -> str:
    """The first free ``kind_2``, ``kind_3``, ... in ``pipe`` (an operator that is no re-run)."""
    n = 2
    while pipe._find(f"{kind}_{n}") is not None:
        n += 1
    return f"{kind}_{n}"


def rerun(site: CallSite | None, old: CallSite | None) -> bool:
    """Whether a definition made at ``site`` may replace one made at ``old``: it comes from
    another file or cell, or from the same place compiled again (the cell was re-run)."""
    if site is None or old is None:
        return False
    return site.filename != old.filename or site.rerun_of(old)


def same_hook(old: Any, new: Any) -> bool:
    """Whether ``new`` is ``old`` defined again (its cell re-run), so it replaces it.

    A function defined again is compiled again: another code object with the same qualified
    name (a lambda: from the same file and line). The same code object twice is a loop or a
    helper registering several closures, which all stay.
    """
    old_code, new_code = getattr(old, "__code__", None), getattr(new, "__code__", None)
    if old_code is None or new_code is None or old_code is new_code:
        return False
    name = getattr(new, "__qualname__", "")
    if getattr(old, "__qualname__", "") != name or old.__module__ != new.__module__:
        return False
    if name.endswith("<lambda>"):
        return (old_code.co_filename, old_code.co_firstlineno) == (
            new_code.co_filename, new_code.co_firstlineno)
    return True


def fn_name(obj: Stage | PipelineTree | Block) -> str:
    """What defined ``obj``, as an error message names it: its function's name."""
    if isinstance(obj, Stage):
        fn = obj.fn
        if fn is None:
            return obj.kind
        name = getattr(fn, "__qualname__", None) or type(fn).__name__
        return name.rsplit("<locals>.", 1)[-1]  # "make.<locals>.clean" reads as "clean"
    return getattr(obj, "name", "?")
