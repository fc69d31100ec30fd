"""What a stage function is: its name, item parameters and kind, async or not, picklable.

Read when a stage is made, so a function that cannot work as the stage it is declared as
fails in the cell that defines it (wrong arity, a plain def on the event loop, a process stage
that does not pickle), not minutes into a run.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from ..errors import DefinitionError

#: Parameter names the runtime fills itself; they never count as the item parameter.
INJECTED = ("output",)


def callable_name(fn: Any) -> str | None:
    name = getattr(fn, "__name__", None)
    if not isinstance(name, str) or not name.isidentifier():
        return None  # lambdas ("<lambda>"), partials and instances have no usable name
    return name


def is_async_callable(fn: Any) -> bool:
    """True for ``async def`` functions and instances whose ``__call__`` is one."""
    for f in (fn, getattr(fn, "__call__", None)):  # noqa: B004 - instances need __call__
        if f is not None and (inspect.iscoroutinefunction(f) or inspect.isasyncgenfunction(f)):
            return True
    return False


def check_async_backend(where: str, name: str, fn: Any, backend: str | None) -> None:
    """An ``async def`` runs on the event loop (``backend='async'``), and nothing else does.

    ``backend`` None (not chosen yet) fits either.
    """
    if is_async_callable(fn):
        if backend is not None and backend != "async":
            raise DefinitionError(
                f"{where}: the function is an async def, but backend={backend!r}; "
                f"use backend='async' (or make it a plain def)."
            )
    elif backend == "async":
        raise DefinitionError(
            f"{where}: backend='async' needs an async def function; "
            f"write `async def {name}(item): ...` or use backend='thread'."
        )


def instance_hooks(fn: Any) -> dict[str, Callable[..., Any]]:
    """``setup``/``teardown`` methods of a callable class instance (its per-worker hooks)."""
    if fn is None or inspect.isroutine(fn) or isinstance(fn, type):
        return {}
    return {k: getattr(fn, k) for k in ("setup", "teardown") if callable(getattr(fn, k, None))}


def _signature(fn: Callable[..., Any]) -> inspect.Signature | None:
    try:
        return inspect.signature(fn)
    except (TypeError, ValueError):  # builtins and some C callables: nothing to check
        return None


def item_parameters(fn: Callable[..., Any]) -> tuple[list[str], bool] | None:
    """The required positional parameters that take items, and whether ``*args`` is accepted.

    ``output`` and parameters with defaults are not item parameters. None when the signature
    cannot be read.
    """
    sig = _signature(fn)
    if sig is None:
        return None
    names: list[str] = []
    varargs = False
    for p in sig.parameters.values():
        if p.name in INJECTED:
            continue
        if p.kind is p.VAR_POSITIONAL:
            varargs = True
        elif p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty:
            names.append(p.name)
    return names, varargs


def infer_kind(fn: Callable[..., Any]) -> str:
    """``producer`` when the function takes no item, else ``processor``."""
    params = item_parameters(fn)
    if params is None:
        return "processor"
    names, varargs = params
    return "producer" if not names and not varargs else "processor"


def _required_keywords(fn: Callable[..., Any]) -> list[str]:
    """Keyword-only parameters without a default (only setup= resources can fill them)."""
    sig = _signature(fn)
    if sig is None:
        return []
    return [
        p.name
        for p in sig.parameters.values()
        if p.kind is p.KEYWORD_ONLY and p.default is p.empty and p.name not in INJECTED
    ]


def check_arity(where: str, kind: str, fn: Callable[..., Any], has_setup: bool) -> None:
    params = item_parameters(fn)
    if params is None:
        return
    names, varargs = params
    keywords = _required_keywords(fn)
    if keywords and not has_setup:
        raise DefinitionError(
            f"{where}: the function requires keyword parameter(s) {', '.join(keywords)} that "
            f"nothing provides. Give them defaults, or provide them as resources with setup= "
            f"returning a dict keyed by their names."
        )
    listed = ", ".join(names)
    if kind == "producer":
        if names and not has_setup:
            raise DefinitionError(
                f"{where}: a producer takes no item, but it requires {len(names)} "
                f"parameter(s) ({listed}). Remove them (or give them defaults), or declare it "
                f"with @pipe.processor if it should receive items."
            )
        return
    what = "a list of items" if kind == "accumulator" else "exactly one item"
    article = "an" if kind[0] in "aeiou" else "a"
    param = "items" if kind == "accumulator" else "item"
    if not names and not varargs:
        raise DefinitionError(
            f"{where}: {article} {kind} receives {what}, but the function takes no parameter. "
            f"Add one (def {callable_name(fn) or 'f'}({param}): ...), or declare it with "
            f"@pipe.producer if it generates items."
        )
    if len(names) > 1 and not has_setup:
        raise DefinitionError(
            f"{where}: {article} {kind} receives {what}, but the function requires {len(names)} "
            f"parameters ({listed}). Keep one item parameter; give the others defaults, or "
            f"provide them as resources with setup= returning a dict keyed by their names."
        )


def check_picklable(where: str, fn: Any, backend: str) -> None:
    """A process or dask stage ships its function to other processes: check it pickles."""
    import cloudpickle

    try:
        cloudpickle.dumps(fn)
    except Exception as exc:  # noqa: BLE001 - any pickling failure means the same to the user
        raise DefinitionError(
            f"{where}: backend={backend!r} sends the function to worker processes, but it "
            f"cannot be pickled ({type(exc).__name__}: {exc}). Move what it captures "
            f"(locks, open files, connections) into setup=, or use backend='thread' or 'fork'."
        ) from exc
