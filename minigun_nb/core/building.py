"""Definition methods: what ``@pipe.producer``, ``pipe.batch(...)``, ``pipe.add(...)`` add.

Every public definition method is marked with :func:`definition`, which routes it into the
nested pipeline while a ``with pipe.pipeline("x")`` block is open. The marker is the only
list of them: a method without it is not routed (``tests/core/test_definition_routing.py``
checks that every public method is either marked or a read-only façade method).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar, cast

from ..errors import DefinitionError, DuplicateStageError
from . import identity
from .options import names_tuple
from .stage import Stage, accumulator_args, batch, debatch, rebatch
from .tree import PipelineTree
from .undo import validate_after

if TYPE_CHECKING:
    from .pipeline import Pipeline

F = TypeVar("F", bound=Callable[..., Any])


def definition(method: F) -> F:
    """Mark ``method`` as a definition method of a pipeline.

    Inside ``with pipe.pipeline("x")`` a call of ``pipe.method(...)`` is a call of
    ``x.method(...)`` (and on into a pipeline nested in ``x`` while its own block is open).
    What counts is where the *call* happens: ``add = pipe.processor`` taken before the block
    and called inside it adds to ``x``; taken inside and called after, to ``pipe``.
    """
    name = method.__name__

    @functools.wraps(method)
    def routed(self: PipelineTree, *args: Any, **kwargs: Any) -> Any:
        target = self._redirect
        if target is not None:
            return getattr(target, name)(*args, **kwargs)
        return method(self, *args, **kwargs)

    routed.is_definition = True  # type: ignore[attr-defined]
    return routed  # type: ignore[return-value]


def is_definition(method: Any) -> bool:
    """Whether ``method`` (a function or a bound method) is marked with :func:`definition`."""
    return getattr(method, "is_definition", False) is True


class Definitions(PipelineTree):
    """The stages, operators and nested pipelines a pipeline's definition methods add."""

    def _add_stage(self, stage: Stage) -> Stage:
        """Add ``stage`` to the open block, or replace in place the stage it re-defines.

        A re-definition (a re-run cell) keeps the replaced stage's position, name and edges;
        what counts as one: :mod:`minigun_nb.core.identity`.
        """
        self._check_unlocked()
        context = self._context()
        own_backend = "backend" in stage.options  # already checked when the Stage was made
        if context:
            stage.options = {**context, **stage.options}
        if not own_backend:
            # the backend a stage inherits (block, else pipeline default) is checked now, so an
            # unpicklable function under Pipeline(backend="process") fails in its own cell
            inherited = {"backend": context.get("backend", self._default("backend"))}
            stage._check_backend(f"stage {stage.name!r}", inherited)
        existing = self._find(stage.name)
        if stage.auto_named:
            stage.site = identity.call_site()
            if existing is not None:
                existing = identity.redefined_operator(self, stage)
                if existing is not None:
                    stage.name = existing.name
                else:
                    stage.name = identity.numbered_name(self, stage.kind)
        if existing is None:
            self._blocks[-1].children.append(stage)
            validate_after(self, partial(self._blocks[-1].children.remove, stage))
            self._last_replaced = None
        elif isinstance(existing, Stage) and (stage.auto_named or existing.same_definition(stage)):
            # a re-run cell: same name, same function name -> replace in place, keep edges
            self._body.replace(existing, stage)
            validate_after(self, partial(self._body.replace, stage, existing))
            self._last_replaced = stage
        else:
            what = (
                f"nested pipeline {existing.name!r}"
                if isinstance(existing, PipelineTree)
                else f"function {identity.fn_name(existing)!r}"
            )
            raise DuplicateStageError(
                f"stage {stage.name!r}: pipeline {self.name!r} already has a stage of that name "
                f"defined by {what}; {identity.fn_name(stage)!r} cannot take it. Give it another name "
                f'(name="{stage.name}_2"); re-running the cell that defined the original '
                f"replaces it in place."
            )
        return stage

    def _define(self, kind: str | None, fn: Any, options: dict[str, Any]) -> Any:
        if fn is None:
            return lambda f: self._add_stage(Stage(f, kind, **options))
        return self._add_stage(Stage(fn, kind, **options))

    @definition
    def producer(self, fn: Callable[..., Any] | None = None, **options: Any) -> Any:
        """Add a producer: no input, runs once, a generator or a function returning an iterable.

        Examples
        --------
        >>> import minigun_nb as mg
        >>> pipe = mg.Pipeline()
        >>> @pipe.producer
        ... def numbers():
        ...     yield from range(10)
        >>> numbers.kind
        'producer'
        """
        return self._define("producer", fn, options)

    @definition
    def processor(self, fn: Callable[..., Any] | None = None, **options: Any) -> Any:
        """Add a processor: one item in, 0..n items out (return, yield or ``output``).

        Examples
        --------
        >>> import minigun_nb as mg
        >>> pipe = mg.Pipeline()
        >>> @pipe.processor(workers=8)
        ... def load(path):
        ...     return path.upper()
        >>> load("a")
        'A'
        """
        return self._define("processor", fn, options)

    @definition
    def consumer(self, fn: Callable[..., Any] | None = None, **options: Any) -> Any:
        """Add a consumer: one item in; whatever it emits is still routed.

        Examples
        --------
        >>> import minigun_nb as mg
        >>> pipe = mg.Pipeline()
        >>> @pipe.consumer
        ... def save(item):
        ...     pass
        >>> save.kind
        'consumer'
        """
        return self._define("consumer", fn, options)

    @definition
    def accumulator(self, fn: Any = None, *args: Any, **options: Any) -> Any:
        """Add an accumulator: receives lists of up to ``size`` items, flushed after ``timeout``.

        ``size`` and ``timeout`` may be given positionally: ``@pipe.accumulator(100, 1.0)``.

        Examples
        --------
        >>> import minigun_nb as mg
        >>> pipe = mg.Pipeline()
        >>> @pipe.accumulator(size=100, timeout=1.0)
        ... def total(items):
        ...     return sum(items)
        >>> total.params["size"]
        100
        """
        fn = accumulator_args(fn, args, options)
        return self._define("accumulator", fn, options)

    @definition
    def stage(self, fn: Callable[..., Any] | None = None, **options: Any) -> Any:
        """Add a stage whose kind is inferred (no item parameter: producer; else processor).

        Examples
        --------
        >>> import minigun_nb as mg
        >>> pipe = mg.Pipeline()
        >>> pipe.stage(lambda x: x, name="same").kind
        'processor'
        """
        return self._define(None, fn, options)

    @definition
    def batch(
        self, size: int, timeout: float | None = None, key: Any = None, frame: bool = False,
        **options: Any,
    ) -> Stage:
        """Add a ``batch`` operator: group items (lists; DataFrames concatenated, ``size`` rows).

        Examples
        --------
        >>> import minigun_nb as mg
        >>> pipe = mg.Pipeline()
        >>> pipe.batch(500, timeout=2.0).name
        'batch'
        """
        return self._add_stage(batch(size, timeout=timeout, key=key, frame=frame, **options))

    @definition
    def debatch(self, rows: Any = "series", **options: Any) -> Stage:
        """Add a ``debatch`` operator: a list gives its elements, a DataFrame its rows.

        Examples
        --------
        >>> import minigun_nb as mg
        >>> pipe = mg.Pipeline()
        >>> pipe.debatch(rows=1000).params
        {'rows': 1000}
        """
        return self._add_stage(debatch(rows, **options))

    @definition
    def rebatch(self, size: int, timeout: float | None = None, **options: Any) -> Stage:
        """Add a ``rebatch`` operator: re-chunk DataFrames (or lists) into exactly ``size`` rows.

        Examples
        --------
        >>> import minigun_nb as mg
        >>> pipe = mg.Pipeline()
        >>> pipe.rebatch(10_000).kind
        'rebatch'
        """
        return self._add_stage(rebatch(size, timeout=timeout, **options))

    @definition
    def add(self, item: Any, *, to: Any = None, from_: Any = None) -> Any:
        """Add a standalone stage or nest another pipeline (optionally routed with to/from_).

        Adding a pipeline whose name a nested pipeline already has replaces that one in place
        when this is a re-run (another cell, or the same call compiled again); two nested
        pipelines given one name in one cell or script raise ``mg.DuplicateStageError``.

        Examples
        --------
        >>> import minigun_nb as mg
        >>> inner = mg.Pipeline("inner", [mg.processor(lambda x: x, name="f")])
        >>> outer = mg.Pipeline("outer")
        >>> _ = outer.add(inner)
        >>> outer.pipelines[0].name
        'inner'
        """
        return self._add(item, to=to, from_=from_, rerun=True)

    def _add(self, item: Any, *, to: Any = None, from_: Any = None, rerun: bool) -> Any:
        """:meth:`add`; ``rerun=False`` when building a new pipeline (no re-run possible)."""
        if isinstance(item, Stage):
            stage = item.copy()
            if to is not None:
                stage.to = names_tuple(f"stage {stage.name!r}", "to", to)
            if from_ is not None:
                stage.from_ = names_tuple(f"stage {stage.name!r}", "from_", from_)
            return self._add_stage(stage)
        if isinstance(item, PipelineTree):
            return self._add_pipeline(cast("Pipeline", item), to=to, from_=from_, rerun=rerun)
        if callable(item):
            return self._add_stage(Stage(item, None))
        raise DefinitionError(
            f"pipeline {self.name!r}: cannot add {item!r}; add a Stage, a function or a Pipeline."
        )

    def _add_pipeline(self, sub: Pipeline, *, to: Any = None, from_: Any = None,
                      rerun: bool = False) -> Pipeline:
        """Nest ``sub``; with ``rerun``, one of the same name from a re-run is replaced."""
        self._check_unlocked()
        if sub is self or sub in self._ancestors():
            raise DefinitionError(
                f"pipeline {self.name!r}: cannot nest pipeline {sub.name!r} inside itself."
            )
        if sub.parent is not None and sub.parent is not self:
            raise DefinitionError(
                f"pipeline {sub.name!r} is already nested in {sub.parent.name!r}; "
                f"a pipeline has one parent. Build a second pipeline for the other place."
            )
        where = f"pipeline {sub.name!r}"
        old_routing, old_site = (sub.to, sub.from_), sub.site
        new_to = sub.to if to is None else names_tuple(where, "to", to)
        new_from = sub.from_ if from_ is None else names_tuple(where, "from_", from_)
        site = identity.call_site() if rerun else None
        existing = self._find(sub.name)
        if existing is not None and existing is not sub and not (
            isinstance(existing, PipelineTree) and identity.rerun(site, existing.site)
        ):
            raise DuplicateStageError(
                f"pipeline {sub.name!r}: pipeline {self.name!r} already has a "
                f"{'pipeline' if isinstance(existing, PipelineTree) else 'stage'} of that name; "
                f"give the nested pipeline another name."
            )
        sub.to, sub.from_ = new_to, new_from
        self._last_replaced = None
        if existing is sub:  # re-added (a re-run cell): only its routing may have changed

            def restore() -> None:
                sub.to, sub.from_ = old_routing

            validate_after(self, restore)
            return sub
        me = cast("Pipeline", self)
        sub.parent, sub.site = me, site
        if existing is not None:  # a re-run cell nesting a new pipeline of that name
            assert isinstance(existing, PipelineTree)
            self._body.replace(existing, sub)
            existing.parent = None

            def put_back() -> None:
                self._body.replace(sub, existing)
                existing.parent = me
                sub.parent, sub.site = None, old_site
                sub.to, sub.from_ = old_routing

            validate_after(self, put_back)
            return sub
        self._blocks[-1].children.append(sub)

        def undo() -> None:
            self._blocks[-1].children.remove(sub)
            sub.parent, sub.site = None, old_site
            sub.to, sub.from_ = old_routing

        validate_after(self, undo)
        return sub

