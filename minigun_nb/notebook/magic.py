"""The ``%%minigun`` cell magic: a cell of plain functions becomes a pipeline, and runs.

::

    %load_ext minigun_nb

    %%minigun wordcount --threads 4 --batch 500 --display text
    def lines():                 # no parameter: a producer
        yield from open("big.txt")
    def words(line):             # stages in definition order
        yield from line.split()
    def count(batch):            # the last one: the consumer
        ...

The rules (the option line, which function becomes which stage) live in
:mod:`.magicline`, shared with ``minigun-nb export``; this module applies them in a live
IPython shell. Loaded only by ``%load_ext minigun_nb`` (``import minigun_nb`` never imports
IPython).
"""

from __future__ import annotations

from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring

from ..core.pipeline import Pipeline
from ..core.stage import Stage, is_async_callable
from ..errors import DefinitionError
from .magicline import (
    LINE_BACKEND_KINDS,
    MagicLine,
    MagicLineError,
    PlannedStage,
    add_arguments,
    check_plan,
    from_namespace,
    plan_cell,
    usage_sentence,
)
from .tracebacks import user_frames


def _with_options(func: Any) -> Any:
    """Declare the magic's options on ``func`` from the table in :mod:`.magicline`."""
    decorators: list[Any] = []
    add_arguments(lambda *flags, **kwargs: decorators.append(argument(*flags, **kwargs)))
    # magic_arguments adds the options bottom-up; apply them last-first to keep the table order
    for deco in reversed(decorators):
        func = deco(func)
    return magic_arguments()(func)


@magics_class
class MinigunMagics(Magics):
    """The ``%%minigun`` cell magic (registered by ``%load_ext minigun_nb``)."""

    @cell_magic
    @_with_options
    def minigun(self, line: str, cell: str) -> None:
        """Make the cell's top-level functions the stages of a new pipeline NAME, and run it.

        A function with no parameter is a producer; the others are processors, the last one a
        consumer; names starting with _ are helpers, not stages. A function decorated with
        @mg.processor(...) and the like keeps its own options. The pipeline is bound to NAME,
        its RunResult to NAME_result; running the cell again rebuilds both.
        """
        __tracebackhide__ = True  # a user error in the cell shows the cell's lines, not ours
        try:
            return self._minigun(line, cell)
        except DefinitionError as exc:
            # The exception itself, its traceback cut to the user's frames: what any tool
            # formats from it (not only IPython's display, see notebook.tracebacks) shows the
            # cell's line and no library internals. This frame is hidden by the line above.
            raise exc.with_traceback(user_frames(exc.__traceback__))  # noqa: B904 - same one

    def _minigun(self, line: str, cell: str) -> None:
        __tracebackhide__ = True
        spec = _parse(self.minigun, line)
        try:
            plan = plan_cell(cell, line_offset=1)  # the %%minigun line is line 1 of the cell
            check_plan(spec, plan)
        except MagicLineError as exc:
            raise UsageError(str(exc)) from None
        ns = self.shell.user_ns
        if "mg" not in ns:  # the cell's decorators (@mg.processor(...)) work without an import
            import minigun_nb

            ns["mg"] = minigun_nb
        _run_cell_body(self.shell, line, cell, ns)
        pipe = _build(spec, plan, ns)
        run_kwargs: dict[str, Any] = {}
        if spec.items is not None:
            run_kwargs["items"] = _eval_items(spec, ns)
        if spec.display is not None:
            run_kwargs["display"] = spec.display
        # Everything that can be wrong with the definition is found before NAME is rebound:
        # a failed cell leaves the previous pipeline (or none) bound, never a half-built one.
        pipe.graph()  # resolves names and edges: raises the DefinitionError now
        if spec.no_run:
            _bind(ns, spec, pipe)
            return None
        try:
            result = pipe.run(**run_kwargs)
        except DefinitionError:
            raise  # found when the run starts (e.g. entry stages without items): nothing ran
        except BaseException:
            _bind(ns, spec, pipe)  # it ran: the pipeline is bound, the run's error shown
            raise
        _bind(ns, spec, pipe, result)
        return None  # the run's display shows it; an Out[] would repeat the summary


def _bind(ns: dict[str, Any], spec: MagicLine, pipe: Pipeline, result: Any = None) -> None:
    ns[spec.name] = pipe
    if result is None:
        ns.pop(spec.result_name, None)  # the previous run's result belongs to the old pipeline
    else:
        ns[spec.result_name] = result


def _parse(magic: Any, line: str) -> MagicLine:
    try:
        args = parse_argstring(magic, line)
    except UsageError as exc:
        # IPython's message alone ("unrecognized arguments: --x") does not say what is allowed
        raise UsageError(usage_sentence(str(exc))) from None
    try:
        return from_namespace(args, line)
    except MagicLineError as exc:
        raise UsageError(str(exc)) from None


def _run_cell_body(shell: Any, line: str, cell: str, ns: dict[str, Any]) -> None:
    """Run the cell's code in the user's namespace, as the shell would run a cell.

    The code is cached with the shell's compiler under this cell's number, so a traceback
    shows "Cell In[n], line k" with the cell's own lines (the %%minigun line is line 1).
    """
    __tracebackhide__ = True
    shown = f"%%minigun {line}\n{cell}"  # what the notebook shows, line for line
    filename = shell.compile.cache(shown, shell.execution_count, raw_code=shown)
    code = shell.compile("\n" + cell, filename, "exec")
    exec(code, ns)  # noqa: S102 - running the user's cell is the point


def _line_options(spec: MagicLine, fn: Any) -> dict[str, Any]:
    """The backend and workers the line gives a stage running ``fn`` (empty without one).

    An ``async def`` can only run on the event loop, so it gets ``async`` whatever the line's
    backend, with the line's N as its concurrency.
    """
    if spec.backend is None:
        return {}
    return {"backend": "async" if is_async_callable(fn) else spec.backend,
            "workers": spec.workers}


def _stage_for(spec: MagicLine, planned: PlannedStage, obj: Any) -> Stage:
    where = f"%%minigun {spec.name}: {planned.name} (line {planned.lineno})"
    if isinstance(obj, Stage):
        return _decorated(spec, obj)
    if not callable(obj):
        raise UsageError(
            f"{where} is no longer a function once the cell has run ({type(obj).__name__}); "
            f"do not rebind it in the cell, or prefix a helper's name with _."
        )
    options = _line_options(spec, obj) if planned.kind in LINE_BACKEND_KINDS else {}
    if options.get("backend") == "async" and not is_async_callable(obj):
        raise DefinitionError(
            f"{where}: --tasks runs every stage after the producers on the event loop, but "
            f"{planned.name} is a plain def; make it `async def {planned.name}(item)`, or "
            f"decorate it with @mg.processor(backend='thread')."
        )
    try:
        return Stage(obj, planned.kind, name=planned.name, **options)
    except DefinitionError as exc:
        exc.add_note(f"(while making a stage of {planned.name}, line {planned.lineno} of the "
                     f"%%minigun cell)")
        raise


def _decorated(spec: MagicLine, stage: Stage) -> Stage:
    """A stage decorated in the cell keeps its own options; the line fills in the rest.

    The line's backend and workers go together ("--threads 8" is eight threads): a decorator
    that chose another backend keeps its own worker count too.
    """
    if stage.kind not in LINE_BACKEND_KINDS or spec.backend is None:
        return stage
    line = _line_options(spec, stage.fn)
    own = stage.options
    if own.get("backend", line["backend"]) != line["backend"]:
        return stage
    options = {**line, **own}
    if options == own:
        return stage
    if options["backend"] == "async" and not is_async_callable(stage.fn):
        raise DefinitionError(
            f"%%minigun {spec.name}: --tasks runs every stage after the producers on the "
            f"event loop, but {stage.name} is a plain def; make it an async def, or give its "
            f"decorator backend='thread'."
        )
    return Stage(stage.fn, stage.kind, name=stage.name, to=stage.to, from_=stage.from_,
                 routes=stage.routes or None, dynamic=stage.dynamic, **stage.params, **options)


def _build(spec: MagicLine, plan: list[PlannedStage], ns: dict[str, Any]) -> Pipeline:
    """A new pipeline NAME of the cell's stages (not bound to anything yet)."""
    options = {"queue_size": spec.queue_size} if spec.queue_size is not None else {}
    pipe = Pipeline(spec.name, **options)
    stages = [_stage_for(spec, p, ns.get(p.name)) for p in plan]
    for i, stage in enumerate(stages):
        if spec.batch is not None and i == len(stages) - 1:
            pipe.batch(spec.batch)
        pipe.add(stage)
    return pipe


def _eval_items(spec: MagicLine, ns: dict[str, Any]) -> Any:
    expr = spec.items or ""
    try:
        code = compile(expr, "<%%minigun --items>", "eval")
    except SyntaxError as exc:
        raise UsageError(
            f"%%minigun {spec.name}: --items {expr} is not a Python expression ({exc.msg}); "
            f"write an expression such as --items range(10), or a variable's name."
        ) from None
    try:
        return eval(code, ns)  # noqa: S307 - the user's own expression, in the user's namespace
    except NameError as exc:
        raise UsageError(
            f"%%minigun {spec.name}: --items {expr}: {exc}; define it in an earlier cell (or "
            f"in this one) before running this cell, or fix the expression."
        ) from None


def load_ipython_extension(ipython: Any) -> None:
    """Register the ``%%minigun`` cell magic on ``ipython`` (``%load_ext minigun_nb``).

    Examples
    --------
    >>> from IPython.core.interactiveshell import InteractiveShell
    >>> shell = InteractiveShell.instance()
    >>> load_ipython_extension(shell)
    >>> "minigun" in shell.magics_manager.magics["cell"]
    True
    """
    ipython.register_magics(MinigunMagics)


__all__ = ["MinigunMagics", "load_ipython_extension"]
