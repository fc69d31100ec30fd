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
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .stage import CallSite, Stage, defined_in

if TYPE_CHECKING:
    from .tree import Block, PipelineTree


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
