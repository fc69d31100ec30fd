"""Pipeline: the user-facing builder of stages, blocks and nested pipelines.

A Pipeline records *what* was defined and in which block; :func:`minigun_nb.core.graph.resolve`
turns it into a frozen graph. Running and displaying are delegated to ``runtime/`` and
``display/`` through imports inside the methods, so this module stays pure description.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from functools import partial
from typing import TYPE_CHECKING, Any

from ..errors import DefinitionError, DuplicateStageError, PipelineRunningError
from .options import PIPELINE_ONLY, STAGE_DEFAULTS, check_option, names_tuple, unknown_option
from .stage import CallSite, Stage, call_site, defined_in

if TYPE_CHECKING:
    from .graph import Edge, Graph

HOOKS = ("before_run", "after_run", "before_fork", "after_fork", "on_error")


class Block:
    """A sequential or parallel group of stages, nested pipelines and blocks."""

    __slots__ = ("kind", "children")

    def __init__(self, kind: str) -> None:
        self.kind = kind  # "seq" or "par"
        self.children: list[Stage | Pipeline | Block] = []

    def walk(self) -> Iterator[Stage | Pipeline]:
        for child in self.children:
            if isinstance(child, Block):
                yield from child.walk()
            else:
                yield child

    def replace(self, old: Any, new: Any) -> bool:
        for i, child in enumerate(self.children):
            if child is old:
                self.children[i] = new
                return True
            if isinstance(child, Block) and child.replace(old, new):
                return True
        return False

    def remove(self, old: Any) -> bool:
        for i, child in enumerate(self.children):
            if child is old:
                del self.children[i]
                return True
            if isinstance(child, Block) and child.remove(old):
                return True
        return False

    def next_after(self, old: Any) -> Any:
        """The element right after ``old`` in the block that holds it (None if last)."""
        for i, child in enumerate(self.children):
            if child is old:
                return self.children[i + 1] if i + 1 < len(self.children) else None
            if isinstance(child, Block):
                found = child.next_after(old)
                if found is not None:
                    return found
        return None


class Pipeline:
    """A pipeline of stages, defined with decorators and run with :meth:`run`.

    Parameters
    ----------
    name : str or list of stages, optional
        The pipeline's name (``"pipeline"`` by default), or a list of stages to chain.
    stages : list, optional
        Stages (or pipelines) to add in order.
    **options
        Defaults for every stage (``workers``, ``queue_size``, ``retries``, ``backend``, ...)
        and pipeline options ``max_threads``, ``max_processes``, ``dask_client``,
        ``max_outputs``.

    Notes
    -----
    Re-running a notebook cell re-defines what it defined, in place (same position, same
    edges): a stage of the same name and function name; an operator named by default
    (``batch``, ``debatch``, ``rebatch``), see :meth:`_add_stage`; a nested pipeline
    (``pipe.add(mg.Pipeline("inner", ...))`` again, or ``with pipe.pipeline("inner", ...)``,
    which then gets exactly the routing and options of the new call). A definition that
    raises leaves the pipeline as it was: a ``with pipe.pipeline(...)`` (or ``parallel()``,
    ``sequential()``, ``threads()``, ...) block whose body raises is undone as a whole (a
    nested pipeline it created is removed again).

    Examples
    --------
    >>> import minigun_nb as mg
    >>> pipe = mg.Pipeline("etl")
    >>> @pipe.producer
    ... def numbers():
    ...     yield from range(3)
    >>> @pipe.processor(workers=2)
    ... def double(x):
    ...     return 2 * x
    >>> [tuple(e) for e in pipe.edges]
    [('numbers', 'double', 'default')]
    """

    def __init__(self, name: Any = None, stages: Any = None, **options: Any) -> None:
        if isinstance(name, (list, tuple)):
            name, stages = None, name
        # an unnamed pipeline made from a list is a plain chain, like `a | b | c`: composing it
        # further flattens it instead of nesting it
        composed = name is None and stages is not None
        if name is None:
            name = "pipeline"
        if not isinstance(name, str) or not name or "/" in name:
            raise DefinitionError(
                f"Pipeline name {name!r} is not valid; use a non-empty string without '/'."
            )
        self.name: str = name
        where = f"pipeline {name!r}"
        allowed = (*STAGE_DEFAULTS, *PIPELINE_ONLY, "to", "from_")
        for key, value in options.items():
            if key not in allowed:
                raise unknown_option(where, key, allowed)
            if key not in ("to", "from_"):
                check_option(where, key, value)
        #: as a nested pipeline: where its terminal stages send, where its entries receive from
        self.to = names_tuple(where, "to", options.pop("to", None))
        self.from_ = names_tuple(where, "from_", options.pop("from_", None))
        self.options: dict[str, Any] = options
        self.parent: Pipeline | None = None
        self.hooks: dict[str, list[Callable[..., Any]]] = {h: [] for h in HOOKS}
        self._body = Block("seq")
        self._blocks: list[Block] = [self._body]
        self._contexts: list[dict[str, Any]] = []
        self._composed = composed
        self._running = 0
        #: the stage the latest definition in this pipeline replaced in place (a re-run), if any
        self._last_replaced: Stage | None = None
        #: where this pipeline was nested into its parent by user code (tells a re-run apart)
        self.site: CallSite | None = None
        for item in stages or ():
            self._add(item, rerun=False)

    # -- composition -----------------------------------------------------------------------
    @classmethod
    def _compose(cls, left: Any, right: Any) -> Pipeline:
        """``a | b``: a new anonymous pipeline chaining both sides (flattening compositions)."""
        new = cls()
        new._composed = True
        for side in (left, right):
            if isinstance(side, Pipeline):
                side = side._copy()  # never re-parent the user's pipeline
                if side._composed:  # (a | b) | c chains three stages, not a nested pipeline
                    for child in side._body.children:
                        if isinstance(child, Pipeline):
                            child.parent = None
                        new._add(child, rerun=False)
                    continue
            new._add(side, rerun=False)
        return new

    def _copy(self) -> Pipeline:
        """A structural copy: same blocks, copied stages and nested pipelines, no parent."""
        new = Pipeline(self.name, **self.options)
        new.to, new.from_, new._composed = self.to, self.from_, self._composed
        new.hooks = {k: list(v) for k, v in self.hooks.items()}

        def fill(src: Block, dst: Block) -> None:
            for child in src.children:
                if isinstance(child, Block):
                    block = Block(child.kind)
                    fill(child, block)
                    dst.children.append(block)
                elif isinstance(child, Pipeline):
                    sub = child._copy()
                    sub.parent = new
                    dst.children.append(sub)
                else:
                    dst.children.append(child.copy())

        fill(self._body, new._body)
        return new

    def __or__(self, other: Any) -> Pipeline:
        return Pipeline._compose(self, other)

    def __ror__(self, other: Any) -> Pipeline:
        return Pipeline._compose(other, self)

    # -- locking ---------------------------------------------------------------------------
    def _root(self) -> Pipeline:
        p = self
        while p.parent is not None:
            p = p.parent
        return p

    def _check_unlocked(self) -> None:
        p: Pipeline | None = self
        while p is not None:
            if p._running:
                raise PipelineRunningError(
                    f"pipeline {p.name!r} is running; its definition is locked until the run "
                    f"ends. Wait for it (handle.wait()) or stop it (handle.stop()) first."
                )
            p = p.parent

    # -- adding stages ---------------------------------------------------------------------
    def _context(self) -> dict[str, Any]:
        # blocks opened around a nested pipeline's `with` apply inside it too
        merged: dict[str, Any] = self.parent._context() if self.parent is not None else {}
        for ctx in self._contexts:
            merged.update(ctx)
        return merged

    def _default(self, key: str) -> Any:
        """The stage default ``key`` given to this pipeline or its nearest ancestor, or None."""
        p: Pipeline | None = self
        while p is not None:
            if key in p.options:
                return p.options[key]
            p = p.parent
        return None

    def _find(self, name: str) -> Stage | Pipeline | None:
        for child in self._body.walk():
            if child.name == name:
                return child
        return None

    def _add_stage(self, stage: Stage) -> Stage:
        """Add ``stage`` to the open block, or replace in place the stage it re-defines.

        A re-definition (a re-run cell) keeps the replaced stage's position, name and edges:

        - a stage of the same name and the same function name (SPEC section 1);
        - an operator named by default (``batch``, ``debatch``, ``rebatch``) whose name is
          taken replaces an operator of the same kind named by default in this pipeline when
          (a) that one was added from the same place (file, line and column of the call) by
          code compiled again, i.e. the cell was re-run, or (b) the previous definition in
          this pipeline re-defined a stage of the same file (cell) and that operator comes
          right after it in its block, i.e. the cell was edited and its lines moved.
          Otherwise it is numbered (``batch_2``, ``batch_3``, ...): two operators in one cell,
          a loop or a helper function called twice add two operators.
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
            stage.site = call_site()
            if existing is not None:
                existing = self._redefined_operator(stage)
                if existing is not None:
                    stage.name = existing.name
                else:
                    n = 2
                    while self._find(f"{stage.kind}_{n}") is not None:
                        n += 1
                    stage.name = f"{stage.kind}_{n}"
        if existing is None:
            self._blocks[-1].children.append(stage)
            self._validate_after(partial(self._blocks[-1].children.remove, stage))
            self._last_replaced = None
        elif isinstance(existing, Stage) and (stage.auto_named or existing.same_definition(stage)):
            # a re-run cell: same name, same function name -> replace in place, keep edges
            self._body.replace(existing, stage)
            self._validate_after(partial(self._body.replace, stage, existing))
            self._last_replaced = stage
        else:
            what = (
                f"nested pipeline {existing.name!r}"
                if isinstance(existing, Pipeline)
                else f"function {_fn_name(existing)!r}"
            )
            raise DuplicateStageError(
                f"stage {stage.name!r}: pipeline {self.name!r} already has a stage of that name "
                f"defined by {what}; {_fn_name(stage)!r} cannot take it. Give it another name "
                f'(name="{stage.name}_2"); re-running the cell that defined the original '
                f"replaces it in place."
            )
        return stage

    def _redefined_operator(self, stage: Stage) -> Stage | None:
        """The operator that auto-named ``stage`` re-defines (rules in :meth:`_add_stage`)."""
        site = stage.site
        if site is None:
            return None
        for op in self._body.walk():
            if (isinstance(op, Stage) and op.auto_named and op.kind == stage.kind
                    and site.rerun_of(op.site)):
                return op  # (a) the same place, compiled again
        last = self._last_replaced
        if last is not None and defined_in(last) == site.filename:
            op = self._body.next_after(last)
            if (isinstance(op, Stage) and op.auto_named and op.kind == stage.kind
                    and (op.site is None or op.site.code() is not site.code())):
                return op  # (b) right after the stage this (edited) cell just re-defined
        return None

    def _validate_after(self, undo: Callable[[], object]) -> None:
        """Resolve leniently after a change (cycles fail at definition time); undo on error."""
        from .graph import resolve

        try:
            resolve(self._root(), lenient=True)
        except DefinitionError:
            undo()
            raise

    def _define(self, kind: str | None, fn: Any, options: dict[str, Any]) -> Any:
        if fn is None:
            return lambda f: self._add_stage(Stage(f, kind, **options))
        return self._add_stage(Stage(fn, kind, **options))

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
        from .stage import accumulator_args

        fn = accumulator_args(fn, args, options)
        return self._define("accumulator", fn, options)

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
        from .stage import batch

        return self._add_stage(batch(size, timeout=timeout, key=key, frame=frame, **options))

    def debatch(self, rows: Any = "series", **options: Any) -> Stage:
        """Add a ``debatch`` operator: a list gives its elements, a DataFrame its rows.

        Examples
        --------
        >>> import minigun_nb as mg
        >>> pipe = mg.Pipeline()
        >>> pipe.debatch(rows=1000).params
        {'rows': 1000}
        """
        from .stage import debatch

        return self._add_stage(debatch(rows, **options))

    def rebatch(self, size: int, timeout: float | None = None, **options: Any) -> Stage:
        """Add a ``rebatch`` operator: re-chunk DataFrames (or lists) into exactly ``size`` rows.

        Examples
        --------
        >>> import minigun_nb as mg
        >>> pipe = mg.Pipeline()
        >>> pipe.rebatch(10_000).kind
        'rebatch'
        """
        from .stage import rebatch

        return self._add_stage(rebatch(size, timeout=timeout, **options))

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
        if isinstance(item, Pipeline):
            return self._add_pipeline(item, to=to, from_=from_, rerun=rerun)
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
        site = call_site() if rerun else None
        existing = self._find(sub.name)
        if existing is not None and existing is not sub and not (
            isinstance(existing, Pipeline) and _rerun(site, existing.site)
        ):
            raise DuplicateStageError(
                f"pipeline {sub.name!r}: pipeline {self.name!r} already has a "
                f"{'pipeline' if isinstance(existing, Pipeline) else 'stage'} of that name; "
                f"give the nested pipeline another name."
            )
        sub.to, sub.from_ = new_to, new_from
        self._last_replaced = None
        if existing is sub:  # re-added (a re-run cell): only its routing may have changed

            def restore() -> None:
                sub.to, sub.from_ = old_routing

            self._validate_after(restore)
            return sub
        sub.parent, sub.site = self, site
        if existing is not None:  # a re-run cell nesting a new pipeline of that name
            assert isinstance(existing, Pipeline)
            self._body.replace(existing, sub)
            existing.parent = None

            def put_back() -> None:
                self._body.replace(sub, existing)
                existing.parent = self
                sub.parent, sub.site = None, old_site
                sub.to, sub.from_ = old_routing

            self._validate_after(put_back)
            return sub
        self._blocks[-1].children.append(sub)

        def undo() -> None:
            self._blocks[-1].children.remove(sub)
            sub.parent, sub.site = None, old_site
            sub.to, sub.from_ = old_routing

        self._validate_after(undo)
        return sub

    def _snapshot(self) -> Callable[[], None]:
        """A function that puts this pipeline back as it is now: its blocks and stages, its
        nested pipelines (recursively), routing, options and hooks."""
        blocks: list[tuple[Block, list[Any]]] = []
        nested: list[tuple[Pipeline, Callable[[], None]]] = []

        def save(block: Block) -> None:
            blocks.append((block, list(block.children)))
            for child in block.children:
                if isinstance(child, Block):
                    save(child)
                elif isinstance(child, Pipeline):
                    nested.append((child, child._snapshot()))

        save(self._body)
        routing, site, last = (self.to, self.from_), self.site, self._last_replaced
        options = dict(self.options)
        hooks = {k: list(v) for k, v in self.hooks.items()}

        def restore() -> None:
            kept = {id(p) for p, _ in nested}
            for child in self._body.walk():
                if isinstance(child, Pipeline) and id(child) not in kept:
                    child.parent = None  # nested by the undone definition
            for block, children in blocks:
                block.children[:] = children
            for sub, restore_sub in nested:
                sub.parent = self
                restore_sub()
            (self.to, self.from_), self.site, self._last_replaced = routing, site, last
            self.options.clear()
            self.options.update(options)
            for k, fns in hooks.items():
                self.hooks[k][:] = fns

        return restore

    def _drop(self, sub: Pipeline) -> None:
        """Remove nested pipeline ``sub`` again (its definition failed)."""
        self._body.remove(sub)
        sub.parent = None
        self._last_replaced = None

    def _ancestors(self) -> list[Pipeline]:
        out, p = [], self.parent
        while p is not None:
            out.append(p)
            p = p.parent
        return out

    # -- blocks ----------------------------------------------------------------------------
    @contextlib.contextmanager
    def _block(self, kind: str) -> Iterator[Pipeline]:
        self._check_unlocked()
        undo = self._snapshot()
        block = Block(kind)
        self._blocks[-1].children.append(block)
        self._blocks.append(block)
        failed = False
        try:
            yield self
        except Exception:
            failed = True
            raise
        finally:
            self._blocks.pop()
            if failed:
                undo()  # the block's statement failed: as if it had never run
            elif not block.children:
                self._blocks[-1].children.remove(block)

    def parallel(self) -> contextlib.AbstractContextManager[Pipeline]:
        """Stages defined inside all consume from the stage before the block.

        Examples
        --------
        >>> import minigun_nb as mg
        >>> pipe = mg.Pipeline()
        >>> _ = pipe.producer(lambda: [1], name="gen")
        >>> with pipe.parallel():
        ...     _ = pipe.processor(lambda x: x, name="a")
        ...     _ = pipe.processor(lambda x: x, name="b")
        >>> sorted((e.source, e.target) for e in pipe.edges)
        [('gen', 'a'), ('gen', 'b')]
        """
        return self._block("par")

    def sequential(self) -> contextlib.AbstractContextManager[Pipeline]:
        """Inside a ``parallel()`` block: the stages defined inside chain as one branch.

        Examples
        --------
        >>> import minigun_nb as mg
        >>> pipe = mg.Pipeline()
        >>> with pipe.parallel():
        ...     with pipe.sequential():
        ...         _ = pipe.processor(lambda x: x, name="a")
        ...         _ = pipe.processor(lambda x: x, name="b")
        >>> [(e.source, e.target) for e in pipe.edges]
        [('a', 'b')]
        """
        return self._block("seq")

    @contextlib.contextmanager
    def _options_block(self, backend: str, workers: int | None) -> Iterator[Pipeline]:
        ctx: dict[str, Any] = {"backend": backend}
        if workers is not None:
            check_option(f"pipeline {self.name!r}", "workers", workers)
            ctx["workers"] = workers
        undo = self._snapshot()
        self._contexts.append(ctx)
        try:
            yield self
        except Exception:
            undo()  # the block's statement failed: as if it had never run
            raise
        finally:
            self._contexts.remove(ctx)

    def threads(self, workers: int | None = None) -> contextlib.AbstractContextManager[Pipeline]:
        """Stages defined inside run on ``workers`` threads (their own options win).

        Examples
        --------
        >>> import minigun_nb as mg
        >>> pipe = mg.Pipeline()
        >>> with pipe.threads(8):
        ...     f = pipe.processor(lambda x: x, name="f")
        >>> f.options["backend"], f.options["workers"]
        ('thread', 8)
        """
        return self._options_block("thread", workers)

    def processes(self, workers: int | None = None) -> contextlib.AbstractContextManager[Pipeline]:
        """Stages defined inside run in a loky process pool of ``workers`` processes.

        Examples
        --------
        >>> import minigun_nb as mg
        >>> pipe = mg.Pipeline()
        >>> with pipe.processes(2):
        ...     f = pipe.processor(abs)
        >>> f.options["backend"]
        'process'
        """
        return self._options_block("process", workers)

    def forks(self, workers: int | None = None) -> contextlib.AbstractContextManager[Pipeline]:
        """Stages defined inside run in copy-on-write forks, at most ``workers`` alive.

        Examples
        --------
        >>> import minigun_nb as mg
        >>> pipe = mg.Pipeline()
        >>> with pipe.forks(4):
        ...     f = pipe.processor(abs)
        >>> f.options["workers"]
        4
        """
        return self._options_block("fork", workers)

    def tasks(self, workers: int | None = None) -> contextlib.AbstractContextManager[Pipeline]:
        """``async def`` stages defined inside run with ``workers`` coroutines in flight.

        Examples
        --------
        >>> import minigun_nb as mg
        >>> pipe = mg.Pipeline()
        >>> with pipe.tasks(100):
        ...     async def fetch(url):
        ...         return url
        ...     f = pipe.processor(fetch)
        >>> f.options["backend"], f.options["workers"]
        ('async', 100)
        """
        return self._options_block("async", workers)

    @contextlib.contextmanager
    def pipeline(self, name: str, *, to: Any = None, from_: Any = None, **options: Any
                 ) -> Iterator[Pipeline]:
        """A nested pipeline: inside the block, ``@pipe.*`` and ``@sub.*`` both add to it.

        Examples
        --------
        >>> import minigun_nb as mg
        >>> pipe = mg.Pipeline("outer")
        >>> with pipe.pipeline("inner") as inner:
        ...     _ = pipe.processor(lambda x: x, name="f")
        >>> pipe["inner/f"].name
        'f'
        """
        self._check_unlocked()
        existing = self._find(name)
        if isinstance(existing, Pipeline):
            # a re-run cell reuses the nested pipeline (its stages get replaced); its routing
            # and options become exactly this call's, as a re-run stage's options do
            sub = existing
            undo = sub._snapshot()
            given = Pipeline(name, to=to, from_=from_, **options)  # checks them
            sub.to, sub.from_ = given.to, given.from_
            sub.options.clear()
            sub.options.update(given.options)
            self._validate_after(undo)
            self._last_replaced = None
        else:
            sub = self._add_pipeline(Pipeline(name, **options), to=to, from_=from_)
            sub.site = call_site()
            undo = partial(self._drop, sub)
        # Redirect this pipeline's decorators into the nested one for the block's duration.
        saved = self._redirect
        self._redirect = sub
        try:
            yield sub
        except Exception:
            # the block failed: leave the pipeline as it was before it (a pipeline it created
            # is removed again, an existing one gets its stages, routing and options back)
            undo()
            raise
        finally:
            self._redirect = saved

    _redirect: Pipeline | None = None

    def __getattribute__(self, attr: str) -> Any:
        # Inside `with pipe.pipeline("x")`, definition methods of `pipe` act on `x`.
        if attr in _REDIRECTED:
            target = object.__getattribute__(self, "_redirect")
            if target is not None:
                return getattr(target, attr)
        return object.__getattribute__(self, attr)

    # -- hooks -----------------------------------------------------------------------------
    def _hook(self, kind: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        if not callable(fn):
            raise DefinitionError(f"pipeline {self.name!r}: @{kind} needs a function.")
        self._check_unlocked()
        hooks = self.hooks[kind]
        for i, old in enumerate(hooks):
            if old is fn:
                return fn  # registered already: it still fires once
            if _same_hook(old, fn):
                hooks[i] = fn  # a re-run cell: the new definition replaces the old one
                return fn
        hooks.append(fn)
        return fn

    def before_run(self, fn: Callable[[], Any]) -> Callable[[], Any]:
        """Register ``fn()`` to run once before each run starts.

        Examples
        --------
        >>> import minigun_nb as mg
        >>> pipe = mg.Pipeline()
        >>> @pipe.before_run
        ... def hello():
        ...     pass
        """
        return self._hook("before_run", fn)

    def after_run(self, fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
        """Register ``fn(result)`` to run once after each run (also a failed or stopped one).

        Examples
        --------
        >>> import minigun_nb as mg
        >>> pipe = mg.Pipeline()
        >>> @pipe.after_run
        ... def bye(result):
        ...     pass
        """
        return self._hook("after_run", fn)

    def before_fork(self, fn: Callable[[], Any]) -> Callable[[], Any]:
        """Register ``fn()`` to run in the kernel before a run's first process or fork stage.

        Examples
        --------
        >>> import minigun_nb as mg
        >>> pipe = mg.Pipeline()
        >>> _ = pipe.before_fork(lambda: None)
        """
        return self._hook("before_fork", fn)

    def after_fork(self, fn: Callable[[], Any]) -> Callable[[], Any]:
        """Register ``fn()`` to run in every worker process and fork child before its first item.

        Examples
        --------
        >>> import minigun_nb as mg
        >>> pipe = mg.Pipeline()
        >>> _ = pipe.after_fork(lambda: None)
        """
        return self._hook("after_fork", fn)

    def on_error(self, fn: Callable[[BaseException, Any, str], Any]) -> Callable[..., Any]:
        """Register ``fn(exc, item, stage)`` called for every item error (stage is a path).

        Examples
        --------
        >>> import minigun_nb as mg
        >>> pipe = mg.Pipeline()
        >>> _ = pipe.on_error(lambda exc, item, stage: None)
        """
        return self._hook("on_error", fn)

    # -- introspection ---------------------------------------------------------------------
    @property
    def stages(self) -> list[Stage]:
        """This pipeline's own stages in definition order (nested pipelines: see ``pipelines``)."""
        return [c for c in self._body.walk() if isinstance(c, Stage)]

    @property
    def pipelines(self) -> list[Pipeline]:
        """The pipelines nested directly in this one, in definition order."""
        return [c for c in self._body.walk() if isinstance(c, Pipeline)]

    def __getitem__(self, name: str) -> Stage | Pipeline:
        node: Pipeline = self
        parts = name.split("/")
        if parts[0] == self.name and len(parts) > 1 and self._find(parts[0]) is None:
            parts = parts[1:]
        for i, part in enumerate(parts):
            found = node._find(part)
            if found is None or (i < len(parts) - 1 and not isinstance(found, Pipeline)):
                known = ", ".join(repr(c.name) for c in node._body.walk()) or "none"
                raise KeyError(f"no stage {name!r} in pipeline {self.name!r}; known: {known}")
            if i == len(parts) - 1:
                return found
            assert isinstance(found, Pipeline)
            node = found
        raise KeyError(name)

    def __contains__(self, name: object) -> bool:
        try:
            self[name]  # type: ignore[index]
        except (KeyError, TypeError, AttributeError):
            return False
        return True

    def __len__(self) -> int:
        return len(self.stages)

    def graph(self) -> Graph:
        """Resolve the definition into a frozen :class:`~minigun_nb.core.graph.Graph`.

        Raises the DefinitionError a run would raise (unknown names, ambiguity, cycles).
        """
        from .graph import resolve

        return resolve(self._root()).relative_to(self._path())

    def _path(self) -> str:
        names = [p.name for p in reversed([self, *self._ancestors()])][1:]
        return "/".join(names)

    @property
    def edges(self) -> list[Edge]:
        """The resolved edges as ``mg.Edge(source, target, kind)``, paths relative to this one."""
        return list(self.graph().edges)

    def to_mermaid(self) -> str:
        """The DAG as a mermaid ``flowchart`` definition."""
        from ..display.diagram import to_mermaid

        return to_mermaid(self.graph())

    def to_dot(self) -> str:
        """The DAG as a Graphviz ``dot`` digraph."""
        from ..display.diagram import to_dot

        return to_dot(self.graph())

    def to_svg(self) -> str:
        """The DAG as a standalone SVG string (presentation attributes only, text escaped).

        The same layout the live dashboard and ``result.to_html()`` draw.

        Examples
        --------
        >>> import minigun_nb as mg
        >>> pipe = mg.Pipeline([mg.producer(lambda: [1], name="gen"),
        ...                     mg.processor(lambda x: x, name="f")])
        >>> pipe.to_svg().startswith('<svg xmlns="http://www.w3.org/2000/svg"')
        True
        """
        from ..display.layout import graph_trait
        from ..display.svg import render_svg

        graph = self.graph()
        return render_svg(graph_trait(graph), title=f"Pipeline {graph.name!r}")

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        from ..display.diagram import mimebundle

        return mimebundle(self)

    def __repr__(self) -> str:
        n = sum(1 for _ in self._body.walk())
        return f"<Pipeline {self.name!r}: {n} stage{'s' if n != 1 else ''}>"

    # -- running ---------------------------------------------------------------------------
    def run(self, items: Any = None, display: str = "auto", *, peek: bool = True) -> Any:
        """Run the pipeline to the end and return a ``RunResult``.

        ``items`` feeds the entry stages (an iterable, or a DataFrame in row chunks).
        ``display`` is ``"auto"`` (the live widget in a notebook, progress bars in a
        terminal, text otherwise), ``"widget"``, ``"progress"``, ``"hud"``, ``"text"`` or
        ``"none"``; ``peek=False`` keeps displays from showing a repr of the outputs. The
        first Ctrl-C drains the run and returns the partial result (``stopped=True``); a
        second one cancels.

        Examples
        --------
        >>> import minigun_nb as mg
        >>> pipe = mg.Pipeline([mg.processor(lambda x: -x, name="neg")])
        >>> pipe.run(items=[1, 2], display="none").outputs_by_stage["neg"] in ([-1, -2], [-2, -1])
        True
        """
        from ..display import displays_for
        from ..runtime.handle import run

        return run(self, items=items, displays=displays_for(display), peek=peek)

    def start(self, items: Any = None, display: str = "auto", *, peek: bool = True) -> Any:
        """Start a run in the background and return a ``RunHandle`` at once.

        ``display`` and ``peek`` as for :meth:`run`; ``handle.show()`` shows a live dashboard
        of the run later, whatever ``display`` was.

        Examples
        --------
        >>> import minigun_nb as mg
        >>> pipe = mg.Pipeline([mg.processor(lambda x: x, name="same")])
        >>> handle = pipe.start(items=[1], display="none")
        >>> handle.wait().outputs
        [1]
        """
        from ..display import displays_for
        from ..runtime.handle import start

        return start(self, items=items, displays=displays_for(display), peek=peek)


_REDIRECTED = frozenset(
    {
        "producer", "processor", "consumer", "accumulator", "stage", "batch", "debatch",
        "rebatch", "add", "parallel", "sequential", "threads", "processes", "forks", "tasks",
        "pipeline", "before_run", "after_run", "before_fork", "after_fork", "on_error",
    }
)


def _rerun(site: CallSite | None, old: CallSite | None) -> bool:
    """Whether a definition made at ``site`` may replace one made at ``old``: it comes from
    another file or cell, or from the same place compiled again (the cell was re-run)."""
    if site is None or old is None:
        return False
    return site.filename != old.filename or site.rerun_of(old)


def _fn_name(obj: Stage | Pipeline | Block) -> str:
    if isinstance(obj, Stage):
        fn = obj.fn
        if fn is None:
            return obj.kind
        name = getattr(fn, "__qualname__", None) or type(fn).__name__
        return name.rsplit("<locals>.", 1)[-1]  # "make.<locals>.clean" reads as "clean"
    return getattr(obj, "name", "?")


def _same_hook(old: Any, new: Any) -> bool:
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
