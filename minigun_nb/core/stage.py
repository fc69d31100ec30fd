"""Stage: one step of a pipeline, still callable like the function it wraps.

A Stage is pure description: a name, a kind, the user's callable and the options given to it.
Nothing here starts a thread. Signatures are checked when the stage is made, so a wrong arity
fails in the cell that defines the stage, not minutes into a run.
"""

from __future__ import annotations

import contextlib
import inspect
import math
import numbers
import os
import weakref
from collections.abc import Callable
from typing import Any

from ..errors import DefinitionError
from ..stagefn.frames import in_package, outer_frame
from .options import (
    BACKENDS,
    OPERATOR_OPTIONS,
    ROUTING_OPTIONS,
    STAGE_DEFAULTS,
    check_option,
    names_tuple,
    unknown_option,
)

WORKER_KINDS = ("producer", "processor", "consumer", "accumulator")
OPERATOR_KINDS = ("batch", "debatch", "rebatch")
KINDS = WORKER_KINDS + OPERATOR_KINDS
#: Kinds that run in the kernel on one thread whatever their options (workers=1, "inline").
KERNEL_KINDS = (*OPERATOR_KINDS, "accumulator")
#: Kinds that never get a pool of workers, so their backend never applies: the producer (one
#: thread in the kernel) and the kernel kinds.
UNPOOLED_KINDS = ("producer", *KERNEL_KINDS)

#: Parameter names the runtime fills itself; they never count as the item parameter.
INJECTED = ("output",)

_OPERATOR_PARAMS = {
    "batch": ("size", "timeout", "key", "frame"),
    "debatch": ("rows",),
    "rebatch": ("size", "timeout"),
}


def _callable_name(fn: Any) -> str | None:
    name = getattr(fn, "__name__", None)
    if not isinstance(name, str) or not name.isidentifier():
        return None  # lambdas ("<lambda>"), partials and instances have no usable name
    return name


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


def _check_arity(where: str, kind: str, fn: Callable[..., Any], has_setup: bool) -> None:
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
            f"Add one (def {_callable_name(fn) or 'f'}({param}): ...), or declare it with "
            f"@pipe.producer if it generates items."
        )
    if len(names) > 1 and not has_setup:
        raise DefinitionError(
            f"{where}: {article} {kind} receives {what}, but the function requires {len(names)} "
            f"parameters ({listed}). Keep one item parameter; give the others defaults, or "
            f"provide them as resources with setup= returning a dict keyed by their names."
        )


class Stage:
    """One step of a pipeline: a named callable with a kind and options.

    A Stage is what ``@pipe.processor`` and friends return. It is still callable like the
    original function, so one item can be tried in a cell.

    Parameters
    ----------
    fn : callable or None
        The stage function (None for the ``batch``/``debatch``/``rebatch`` operators).
    kind : str
        ``producer``, ``processor``, ``consumer``, ``accumulator``, ``batch``, ``debatch``
        or ``rebatch``; None infers producer/processor from the signature.
    **options
        ``name``, ``workers``, ``backend``, ``queue_size``, ``to``, ``from_``, ... (see the
        README for the full table).

    Examples
    --------
    >>> import minigun_nb as mg
    >>> double = mg.processor(lambda x: 2 * x, name="double", workers=4)
    >>> double(21)
    42
    >>> double.name, double.kind, double.options["workers"]
    ('double', 'processor', 4)
    """

    def __init__(self, fn: Callable[..., Any] | None, kind: str | None = None, **options: Any):
        if kind is None:
            if fn is None or not callable(fn):
                raise DefinitionError(f"stage(): {fn!r} is not callable; pass a function.")
            kind = infer_kind(fn)
        if kind not in KINDS:
            raise DefinitionError(f"unknown stage kind {kind!r}; use one of {', '.join(KINDS)}.")
        name = options.pop("name", None)
        default_name = options.pop("_default_name", False)  # set by batch()/debatch()/rebatch()
        explicit_name = name is not None and not default_name
        if name is None and fn is not None:
            name = _callable_name(fn)
        if name is None:
            if getattr(fn, "__name__", "") == "<lambda>":
                what = "a lambda"
            elif fn is not None and not hasattr(fn, "__name__"):
                what = f"a {type(fn).__name__} instance"  # a callable object
            else:
                what = repr(fn)
            raise DefinitionError(
                f"{kind} stage: {what} has no usable name; pass name=, "
                f'e.g. pipe.{kind}(fn, name="clean").'
            )
        if not isinstance(name, str) or not name or "/" in name:
            raise DefinitionError(
                f"{kind} stage: name={name!r} is not valid; use a non-empty string without '/'."
            )
        where = f"stage {name!r}"
        if fn is not None and not callable(fn):
            raise DefinitionError(f"{where}: {fn!r} is not callable; pass a function.")

        self.fn = fn
        self.kind = kind
        self.name = name
        #: operators named by default ("batch") are renumbered ("batch_2") when the name is taken
        self.auto_named = fn is None and name == kind and not explicit_name
        #: where an auto-named operator was added to a pipeline (tells a re-run cell apart)
        self.site: CallSite | None = None
        if fn is not None:
            self.__doc__ = getattr(fn, "__doc__", None)
        self.to = names_tuple(where, "to", options.pop("to", None))
        self.from_ = names_tuple(where, "from_", options.pop("from_", None))
        self.routes = names_tuple(where, "routes", options.pop("routes", None)) or ()
        dynamic = options.pop("dynamic", False)
        check_option(where, "dynamic", dynamic)
        self.dynamic: bool = dynamic
        if self.dynamic and self.from_:
            raise DefinitionError(
                f"{where}: dynamic=True stages receive only dynamically routed items, so "
                f"from_= has no meaning; drop from_= or dynamic=True."
            )
        if kind == "producer" and self.from_:
            raise DefinitionError(
                f"{where}: a producer has no input, so from_= has no meaning; "
                f"make it a processor or drop from_=."
            )
        #: operator parameters (size, timeout, key, frame, rows) or accumulator size/timeout
        self.params: dict[str, Any] = {}
        if kind in KERNEL_KINDS:
            for key in _OPERATOR_PARAMS.get(kind, ("size", "timeout")):
                if key in options:
                    self.params[key] = options.pop(key)
            _check_operator_params(where, kind, self.params)
        if kind == "accumulator" and (
            options.get("workers", 1) != 1 or options.get("backend", "thread") not in ("thread", "inline")
        ):
            raise DefinitionError(
                f"{where}: an accumulator runs in the kernel on one thread (its batching needs "
                f"one), so workers= and backend= do not apply; put the heavy work in a "
                f"processor after it, e.g. @pipe.processor(backend='process')."
            )
        allowed = OPERATOR_OPTIONS if kind in OPERATOR_KINDS else tuple(STAGE_DEFAULTS)
        for key, value in options.items():
            if key not in allowed:
                known = (*allowed, *ROUTING_OPTIONS, *_OPERATOR_PARAMS.get(kind, ()))
                raise unknown_option(where, key, known)
            check_option(where, key, value)
        #: the options given explicitly (defaults are filled in when the graph is resolved)
        self.options: dict[str, Any] = dict(options)
        if fn is not None:
            # a callable class instance may bring its own setup() method (SPEC section 1)
            has_setup = options.get("setup") is not None or "setup" in instance_hooks(fn)
            _check_arity(where, kind, fn, has_setup=has_setup)
            self._check_backend(where)

    # -- checks ------------------------------------------------------------------------------
    def _check_backend(self, where: str, context: dict[str, Any] | None = None) -> None:
        """Check the backend the stage will get from its options and context block."""
        backend = self.options.get("backend")
        if backend is None and context:
            backend = context.get("backend")
        if self.fn is None:
            return
        if backend is None and is_async_callable(self.fn):
            # an async def can only run on the event loop; choose it for the user
            self.options["backend"] = "async"
            return
        check_async_backend(where, self.name, self.fn, backend)
        if backend == "fork" and os.name != "posix":
            raise DefinitionError(
                f"{where}: backend='fork' needs a POSIX system (Linux, macOS); "
                f"use backend='process' here."
            )
        if backend in ("process", "dask"):
            check_picklable(where, self.fn, backend)

    # -- behaving like the function -----------------------------------------------------------
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.fn is None:
            raise TypeError(
                f"{self.kind} stage {self.name!r} is an operator and has no function to call."
            )
        return self.fn(*args, **kwargs)

    @property
    def __wrapped__(self) -> Any:  # lets inspect/help() see the original function
        return self.fn

    def __or__(self, other: Any) -> Any:
        from .pipeline import Pipeline

        return Pipeline._compose(self, other)

    def __ror__(self, other: Any) -> Any:
        from .pipeline import Pipeline

        return Pipeline._compose(other, self)

    def copy(self) -> Stage:
        """A shallow copy (same function, copied option dicts)."""
        new = object.__new__(Stage)
        new.__dict__.update(self.__dict__)
        new.options = dict(self.options)
        new.params = dict(self.params)
        return new

    def same_definition(self, other: Stage) -> bool:
        """True when ``other`` is a re-definition of this stage (a re-run cell)."""
        if self.kind in OPERATOR_KINDS or other.kind in OPERATOR_KINDS:
            return self.kind == other.kind
        return _function_identity(self.fn) == _function_identity(other.fn)

    def __repr__(self) -> str:
        opts = "".join(f", {k}={v!r}" for k, v in self.options.items() if k != "setup")
        return f"<Stage {self.name!r} {self.kind}{opts}>"


def _function_identity(fn: Any) -> str | None:
    if fn is None:
        return None
    target = fn if hasattr(fn, "__qualname__") else type(fn)
    return getattr(target, "__qualname__", None) or getattr(target, "__name__", None)


def _check_operator_params(where: str, kind: str, params: dict[str, Any]) -> None:
    if kind in ("batch", "rebatch", "accumulator"):
        size = params.setdefault("size", 100 if kind == "accumulator" else None)
        if not (isinstance(size, numbers.Integral) and not isinstance(size, bool)
                and int(size) >= 1):
            raise DefinitionError(f"{where}: size={size!r} is not valid; use an int >= 1.")
        params["size"] = int(size)
        timeout = params.setdefault("timeout", None)
        if timeout == math.inf:
            params["timeout"] = timeout = None  # "never flush on time"
        if timeout is not None and not (
            isinstance(timeout, (int, float)) and not isinstance(timeout, bool) and timeout > 0
            and math.isfinite(timeout)
        ):
            raise DefinitionError(
                f"{where}: timeout={timeout!r} is not valid; use None or seconds > 0."
            )
    if kind == "batch":
        key = params.setdefault("key", None)
        if key is not None and not callable(key):
            raise DefinitionError(
                f"{where}: key={key!r} is not valid; use a function item -> key."
            )
        frame = params.setdefault("frame", False)
        if not isinstance(frame, bool):
            raise DefinitionError(f"{where}: frame={frame!r} is not valid; use True or False.")
    if kind == "debatch":
        rows = params.setdefault("rows", "series")
        ok = rows in ("series", "dict") or (
            isinstance(rows, int) and not isinstance(rows, bool) and rows >= 1
        )
        if not ok:
            raise DefinitionError(
                f"{where}: rows={rows!r} is not valid; use 'series', 'dict' or an int >= 1."
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


def make_stage(kind: str | None, fn: Any, options: dict[str, Any]) -> Any:
    """Support both ``@deco`` and ``@deco(**options)`` forms for a stage constructor."""
    if fn is None:
        return lambda f: Stage(f, kind, **options)
    return Stage(fn, kind, **options)


def producer(fn: Callable[..., Any] | None = None, **options: Any) -> Any:
    """A standalone producer stage (no input; runs once; a generator or an iterable).

    Examples
    --------
    >>> import minigun_nb as mg
    >>> numbers = mg.producer(lambda: range(3), name="numbers")
    >>> list(numbers())
    [0, 1, 2]
    """
    return make_stage("producer", fn, options)


def processor(fn: Callable[..., Any] | None = None, **options: Any) -> Any:
    """A standalone processor stage: item in, 0..n items out.

    Examples
    --------
    >>> import minigun_nb as mg
    >>> @mg.processor(workers=4)
    ... def square(x):
    ...     return x * x
    >>> square(3)
    9
    """
    return make_stage("processor", fn, options)


def consumer(fn: Callable[..., Any] | None = None, **options: Any) -> Any:
    """A standalone consumer stage: item in; outputs, if any, are still routed.

    Examples
    --------
    >>> import minigun_nb as mg
    >>> seen = []
    >>> sink = mg.consumer(seen.append, name="sink")
    >>> sink(1); seen
    [1]
    """
    return make_stage("consumer", fn, options)


def accumulator_args(fn: Any, args: tuple[Any, ...], options: dict[str, Any]) -> Any:
    """``accumulator(size, timeout)`` positionally (as in the SPEC) or ``accumulator(fn, ...)``."""
    if isinstance(fn, numbers.Number) and not isinstance(fn, bool):
        args = (fn, *args)
        fn = None
    if len(args) > 2:
        raise DefinitionError("accumulator takes at most (size, timeout) positionally.")
    for key, value in zip(("size", "timeout")[: len(args)], args, strict=True):
        if key in options:
            raise DefinitionError(f"accumulator: {key} given twice (positionally and by name).")
        options[key] = value
    return fn


def accumulator(fn: Any = None, *args: Any, **options: Any) -> Any:
    """A standalone accumulator: receives lists of up to ``size`` items (``timeout`` flushes).

    ``mg.accumulator(fn, size=10)``, or as a decorator ``@mg.accumulator(100, 2.0)`` (size and
    timeout positionally).

    Examples
    --------
    >>> import minigun_nb as mg
    >>> total = mg.accumulator(sum, name="total", size=10)
    >>> total([1, 2, 3])
    6
    >>> mg.accumulator(100, 2.0)(sum).params
    {'size': 100, 'timeout': 2.0}
    """
    fn = accumulator_args(fn, args, options)
    return make_stage("accumulator", fn, options)


def stage(fn: Callable[..., Any] | None = None, **options: Any) -> Any:
    """A standalone stage whose kind is inferred: no item parameter makes a producer.

    Examples
    --------
    >>> import minigun_nb as mg
    >>> mg.stage(lambda: [1], name="gen").kind, mg.stage(lambda x: x, name="f").kind
    ('producer', 'processor')
    """
    return make_stage(None, fn, options)


def batch(
    size: int, timeout: float | None = None, key: Any = None, frame: bool = False, **options: Any
) -> Stage:
    """A standalone ``batch`` operator (see :meth:`Pipeline.batch`).

    Examples
    --------
    >>> import minigun_nb as mg
    >>> mg.batch(100).kind
    'batch'
    """
    if "name" not in options:
        options.update(name="batch", _default_name=True)
    return Stage(None, "batch", size=size, timeout=timeout, key=key, frame=frame, **options)


def debatch(rows: Any = "series", **options: Any) -> Stage:
    """A standalone ``debatch`` operator (see :meth:`Pipeline.debatch`).

    Examples
    --------
    >>> import minigun_nb as mg
    >>> mg.debatch().params["rows"]
    'series'
    """
    if "name" not in options:
        options.update(name="debatch", _default_name=True)
    return Stage(None, "debatch", rows=rows, **options)


def rebatch(size: int, timeout: float | None = None, **options: Any) -> Stage:
    """A standalone ``rebatch`` operator (see :meth:`Pipeline.rebatch`).

    Examples
    --------
    >>> import minigun_nb as mg
    >>> mg.rebatch(10_000).params["size"]
    10000
    """
    if "name" not in options:
        options.update(name="rebatch", _default_name=True)
    return Stage(None, "rebatch", size=size, timeout=timeout, **options)


__all__ = [
    "BACKENDS",
    "KINDS",
    "Stage",
    "accumulator",
    "batch",
    "consumer",
    "debatch",
    "processor",
    "producer",
    "rebatch",
    "stage",
]
