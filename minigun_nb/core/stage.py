"""Stage: one step of a pipeline, still callable like the function it wraps.

A Stage is pure description: a name, a kind, the user's callable and the options given to it.
Nothing here starts a thread. Signatures are checked when the stage is made, so a wrong arity
fails in the cell that defines the stage, not minutes into a run.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import DefinitionError
from .functions import (
    callable_name,
    check_arity,
    check_async_backend,
    check_picklable,
    infer_kind,
    instance_hooks,
    is_async_callable,
)
from .options import (
    BACKENDS,
    OPERATOR_OPTIONS,
    ROUTING_OPTIONS,
    STAGE_DEFAULTS,
    THREAD_BACKENDS,
    check_option,
    names_tuple,
    unknown_option,
)

if TYPE_CHECKING:
    from .identity import CallSite

WORKER_KINDS = ("producer", "processor", "consumer", "accumulator")
OPERATOR_KINDS = ("batch", "debatch", "rebatch")
KINDS = WORKER_KINDS + OPERATOR_KINDS
#: Kinds that run in the kernel on one thread whatever their options (workers=1, "inline").
KERNEL_KINDS = (*OPERATOR_KINDS, "accumulator")
#: Kinds that never get a pool of workers, so their backend never applies: the producer (one
#: thread in the kernel) and the kernel kinds.
UNPOOLED_KINDS = ("producer", *KERNEL_KINDS)

_OPERATOR_PARAMS = {
    "batch": ("size", "timeout", "key", "frame"),
    "debatch": ("rows",),
    "rebatch": ("size", "timeout"),
}


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
            name = callable_name(fn)
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
            options.get("workers", 1) != 1 or options.get("backend", "thread") not in THREAD_BACKENDS
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
            check_arity(where, kind, fn, has_setup=has_setup)
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
