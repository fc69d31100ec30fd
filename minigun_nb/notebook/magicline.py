"""The rules of the ``%%minigun`` cell magic, without IPython: its option line and its cell plan.

Two places apply these rules and must agree exactly: the magic itself
(:mod:`minigun_nb.notebook.magic`, which runs in a kernel) and ``minigun-nb export`` (which turns
a ``%%minigun`` cell into plain API code and never runs notebook code). So the option table, the
line parser and the reading of the cell live here, importing nothing from IPython.

* :func:`parse_line` reads ``NAME [--threads N | --processes N | --forks N | --tasks N]
  [--batch N] [--queue-size N] [--items EXPR] [--display MODE] [--no-run]`` into a
  :class:`MagicLine`. The line is split as IPython's ``magic_arguments`` splits it (shell-like,
  quotes kept), so the magic and the export read a line the same way.
* :func:`plan_cell` lists the cell's top-level functions in definition order with the kind each
  becomes (no parameter: producer; the others processors, the last a consumer), skipping
  ``_helpers``, and tells which are already decorated with a minigun stage decorator.

Both raise :class:`MagicLineError` (a ``ValueError``) with one sentence naming the fix.
"""

from __future__ import annotations

import argparse
import ast
import keyword
import shlex
from dataclasses import dataclass
from typing import Any

#: the backend options, in the order the usage line lists them: option -> backend name
BACKEND_OPTIONS: dict[str, str] = {
    "--threads": "thread",
    "--processes": "process",
    "--forks": "fork",
    "--tasks": "async",
}

#: the display modes ``run(display=...)`` accepts (checked before the cell runs, so a typo in
#: the line fails the cell before anything is defined)
DISPLAY_MODES = ("auto", "widget", "progress", "hud", "text", "none")

#: the stage decorators whose options win over the line's (``@mg.processor(...)`` and the like)
STAGE_DECORATORS = ("producer", "processor", "consumer", "accumulator", "stage")
#: kinds that take the line's backend and workers (a producer runs once in the kernel; an
#: accumulator runs on one kernel thread, its batching needs it): the magic and export agree
LINE_BACKEND_KINDS = ("processor", "consumer")

USAGE = (
    "%%minigun NAME [--threads N | --processes N | --forks N | --tasks N] [--batch N] "
    "[--queue-size N] [--items EXPR] [--display MODE] [--no-run]"
)


class MagicLineError(ValueError):
    """A ``%%minigun`` line or cell that cannot be turned into a pipeline; the message says why
    and what to change."""


@dataclass(frozen=True)
class MagicLine:
    """A parsed ``%%minigun`` option line.

    Attributes
    ----------
    name : str
        The pipeline's name; also the variable it is bound to (and ``NAME_result``).
    backend : str or None
        ``thread``, ``process``, ``fork`` or ``async`` for every non-producer stage, or None.
    workers : int or None
        The workers that backend gets (given with it), or None.
    batch : int or None
        ``--batch N``: a ``batch(N)`` operator goes before the last stage.
    queue_size : int or None
        ``--queue-size N``: ``mg.Pipeline(NAME, queue_size=N)``.
    items : str or None
        The source text of the ``--items`` expression (evaluated in the user's namespace).
    display : str or None
        ``--display MODE`` passed to ``run``; None leaves ``run``'s default (``"auto"``).
    no_run : bool
        ``--no-run``: define and bind the pipeline, do not run it.
    """

    name: str
    backend: str | None = None
    workers: int | None = None
    batch: int | None = None
    queue_size: int | None = None
    items: str | None = None
    display: str | None = None
    no_run: bool = False

    @property
    def result_name(self) -> str:
        """The variable the RunResult is bound to."""
        return f"{self.name}_result"


@dataclass(frozen=True)
class PlannedStage:
    """One top-level function of a ``%%minigun`` cell and the stage it becomes.

    Attributes
    ----------
    name : str
        The function's name (the stage's name unless its decorator gives another).
    kind : str
        ``producer``, ``processor`` or ``consumer`` (or, for a decorated function, the kind its
        decorator names, e.g. ``accumulator``).
    decorated : bool
        True when decorated with a minigun stage decorator (``@mg.processor(...)`` and the
        like): its own options win over the line's.
    is_async : bool
        True for an ``async def``.
    lineno : int
        The line of the ``def`` in the cell (1-based).
    """

    name: str
    kind: str
    decorated: bool
    is_async: bool
    lineno: int


# -- the option line ---------------------------------------------------------------------------
def add_arguments(add: Any) -> None:
    """Declare the options through ``add(*flags, **kwargs)`` (``argparse`` style).

    The magic passes IPython's ``magic_arguments.argument``-like adder, :func:`parse_line` a
    plain parser's ``add_argument``: one table, so the usage message and the parsing agree.
    """
    add("name", metavar="NAME", help="the pipeline's name and the variable it is bound to")
    for flag, backend in BACKEND_OPTIONS.items():
        add(flag, type=int, metavar="N", default=None,
            help=f"every non-producer stage gets backend={backend!r} with N workers")
    add("--batch", type=int, metavar="N", default=None,
        help="put a batch(N) operator before the last stage")
    add("--queue-size", type=int, metavar="N", default=None, dest="queue_size",
        help="mg.Pipeline(NAME, queue_size=N)")
    # The expression may hold spaces (`--items [1, 2, 3]`): it takes every word up to the next
    # option, rejoined with one space (quotes are kept, as IPython's own splitting keeps them).
    add("--items", nargs="+", metavar="EXPR", default=None,
        help="an expression evaluated in the notebook's namespace, passed as run(items=...)")
    add("--display", metavar="MODE", default=None,
        help=f"run(display=MODE): one of {', '.join(DISPLAY_MODES)}")
    add("--no-run", action="store_true", dest="no_run",
        help="define and bind the pipeline without running it")


class _LineParser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # argparse would exit the process
        raise MagicLineError(usage_sentence(message))


def usage_sentence(message: str) -> str:
    """One sentence: what is wrong with the line, then the usage line listing the options."""
    message = message.rstrip(".")
    return f"%%minigun: {message}; write the line as: {USAGE}"


def split_line(line: str) -> list[str]:
    """Split an option line into words exactly as IPython's ``arg_split`` does (quotes kept)."""
    lex = shlex.shlex(line, posix=False)
    lex.whitespace_split = True
    lex.commenters = ""
    try:
        return list(lex)
    except ValueError as exc:  # an unclosed quote
        raise MagicLineError(usage_sentence(f"cannot split the line ({exc})")) from None


def parse_line(line: str) -> MagicLine:
    """Parse a ``%%minigun`` option line.

    Parameters
    ----------
    line : str
        What follows ``%%minigun`` on the cell's first line.

    Returns
    -------
    MagicLine

    Raises
    ------
    MagicLineError
        An unknown option, a count that is not an integer >= 1, two backend options, a name
        that is not a Python identifier, an unknown display mode.

    Examples
    --------
    >>> parse_line("etl --threads 4 --batch 100 --items range(10)")
    MagicLine(name='etl', backend='thread', workers=4, batch=100, queue_size=None, \
items='range(10)', display=None, no_run=False)
    """
    parser = _LineParser(prog="%%minigun", add_help=False)
    add_arguments(parser.add_argument)
    return from_namespace(parser.parse_args(split_line(line)), line)


def _items_source(line: str, values: list[str]) -> str:
    """The ``--items`` expression as written in ``line`` (its spacing kept), from the words
    argparse gave it; the words rejoined with one space when the line is not at hand."""
    words = split_line(line) if line else []
    spans: list[tuple[int, int]] = []
    pos = 0
    for word in words:  # split_line keeps every word verbatim, so each is found in order
        start = line.find(word, pos)
        spans.append((start, start + len(word)))
        pos = start + len(word)
    n = len(values)
    for i in range(len(words) - n, 0, -1):  # argparse keeps the last --items given
        if words[i - 1] == "--items" and words[i:i + n] == values:
            return line[spans[i][0]:spans[i + n - 1][1]]
    return " ".join(values)


def from_namespace(args: argparse.Namespace, line: str = "") -> MagicLine:
    """Check parsed options and make the :class:`MagicLine` (shared by the magic's parser).

    ``line`` is the option line the namespace was parsed from (it gives back the ``--items``
    expression exactly as written).
    """
    name = args.name
    if not name.isidentifier() or keyword.iskeyword(name):
        raise MagicLineError(usage_sentence(
            f"NAME {name!r} is not a valid Python name (the pipeline is bound to it); "
            f"use letters, digits and _, e.g. %%minigun etl"))
    given = [(flag, getattr(args, flag[2:])) for flag in BACKEND_OPTIONS
             if getattr(args, flag[2:]) is not None]
    if len(given) > 1:
        flags = " and ".join(flag for flag, _ in given)
        raise MagicLineError(usage_sentence(
            f"{flags} given together; choose one backend option for the cell (decorate a "
            f"function with @mg.processor(backend=...) to give one stage another)"))
    counts = [*given, ("--batch", args.batch), ("--queue-size", args.queue_size)]
    for flag, value in counts:
        if value is not None and value < 1:
            raise MagicLineError(usage_sentence(f"argument {flag}: {value} is not an int >= 1"))
    if args.display is not None and args.display not in DISPLAY_MODES:
        raise MagicLineError(usage_sentence(
            f"argument --display: {args.display!r} is not a display mode; use one of "
            f"{', '.join(DISPLAY_MODES)}"))
    backend = BACKEND_OPTIONS[given[0][0]] if given else None
    return MagicLine(
        name=name,
        backend=backend,
        workers=given[0][1] if given else None,
        batch=args.batch,
        queue_size=args.queue_size,
        items=_items_source(line, args.items) if args.items else None,
        display=args.display,
        no_run=bool(args.no_run),
    )


# -- the cell ----------------------------------------------------------------------------------
def _decorator_kind(node: ast.expr) -> str | None:
    """``producer``/``processor``/... when ``node`` is a minigun stage decorator, else None.

    ``@mg.processor``, ``@mg.processor(workers=4)``, ``@minigun_nb.consumer`` and a bare
    ``@processor`` (``from minigun_nb import processor``) all count; ``@pipe.processor`` of
    some other pipeline does not (it would add the stage there).
    """
    if isinstance(node, ast.Call):
        node = node.func
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        if node.value.id in ("mg", "minigun_nb") and node.attr in STAGE_DECORATORS:
            return node.attr
        return None
    if isinstance(node, ast.Name) and node.id in STAGE_DECORATORS:
        return node.id
    return None


def _takes_no_item(args: ast.arguments) -> bool:
    """Mirror of ``core.stage.infer_kind``: no required positional parameter but ``output``
    and no ``*args`` makes a producer."""
    if args.vararg is not None:
        return False
    positional = [*args.posonlyargs, *args.args]
    required = positional[: len(positional) - len(args.defaults)]
    return all(a.arg == "output" for a in required)


def plan_cell(source: str, *, line_offset: int = 0) -> list[PlannedStage]:
    """The stages a ``%%minigun`` cell defines, in definition order.

    Parameters
    ----------
    source : str
        The cell's body (without the ``%%minigun`` line).
    line_offset : int
        Added to every line number reported (1 makes them count the ``%%minigun`` line, as
        the notebook shows the cell).

    Returns
    -------
    list of PlannedStage

    Raises
    ------
    MagicLineError
        A syntax error, no top-level function, only ``_helpers``, or one name defined twice.

    Examples
    --------
    >>> [(s.name, s.kind) for s in plan_cell("def gen():\\n    yield 1\\ndef show(x):\\n    pass")]
    [('gen', 'producer'), ('show', 'consumer')]
    """
    try:
        tree = ast.parse(source, filename="<%%minigun cell>")
    except SyntaxError as exc:
        where = f"line {exc.lineno + line_offset}" if exc.lineno else "the cell"
        stripped = (exc.text or "").strip()
        if stripped[:1] in ("%", "!"):  # IPython syntax: the body is plain Python
            raise MagicLineError(
                f"%%minigun: {where} of the cell is IPython syntax ({stripped}), and a "
                f"%%minigun cell is plain Python; move that line to a cell of its own."
            ) from None
        text = f": {stripped}" if stripped else ""
        raise MagicLineError(
            f"%%minigun: the cell has a syntax error at {where} ({exc.msg}{text}); fix that "
            f"line and run the cell again."
        ) from None
    defs = [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    public = [n for n in defs if not n.name.startswith("_")]
    if not defs:
        raise MagicLineError(
            "%%minigun: the cell defines no function, so there is no stage; define the stages "
            "as top-level functions (def gen(): ... yields items; def work(item): ...)."
        )
    if not public:
        names = ", ".join(n.name for n in defs)
        raise MagicLineError(
            f"%%minigun: the cell defines only helpers ({names}); names starting with _ are "
            f"not stages, so rename the functions that should be stages without the leading _."
        )
    seen: dict[str, int] = {}
    for node in public:
        if node.name in seen:
            raise MagicLineError(
                f"%%minigun: {node.name} is defined twice in the cell (lines {seen[node.name]} "
                f"and {node.lineno + line_offset}); each stage needs its own name, so rename or remove one."
            )
        seen[node.name] = node.lineno + line_offset
    plan: list[PlannedStage] = []
    for i, node in enumerate(public):
        kinds = [k for k in map(_decorator_kind, node.decorator_list) if k is not None]
        decorated = bool(kinds)
        if decorated and kinds[0] != "stage":
            kind = kinds[0]  # the decorator says what the function is
        elif _takes_no_item(node.args):
            kind = "producer"
        elif decorated:
            kind = "processor"  # mg.stage infers, and never makes a consumer
        else:
            kind = "consumer" if i == len(public) - 1 else "processor"
        plan.append(PlannedStage(
            name=node.name, kind=kind, decorated=decorated,
            is_async=isinstance(node, ast.AsyncFunctionDef), lineno=node.lineno + line_offset,
        ))
    return plan


def check_plan(line: MagicLine, plan: list[PlannedStage]) -> None:
    """Check that the line and the cell's stages fit together.

    Raises
    ------
    MagicLineError
        A function named like ``NAME`` or ``NAME_result`` (the bindings would overwrite it), or
        ``--batch`` when the last function is a producer (nothing would receive the batches).
    """
    for stage in plan:
        if stage.name in (line.name, line.result_name):
            what = "the pipeline" if stage.name == line.name else "its result"
            raise MagicLineError(
                f"%%minigun {line.name}: the function {stage.name} (line {stage.lineno}) has "
                f"the name the cell binds {what} to; rename the function or the pipeline."
            )
    last = plan[-1]
    if line.batch is not None and last.kind == "producer":
        raise MagicLineError(
            f"%%minigun {line.name}: --batch {line.batch} puts a batch before the last stage, "
            f"but the last function, {last.name} (line {last.lineno}), is a producer (it takes "
            f"no item); add a function after it that receives the batches, or drop --batch."
        )


__all__ = [
    "BACKEND_OPTIONS",
    "DISPLAY_MODES",
    "USAGE",
    "MagicLine",
    "MagicLineError",
    "PlannedStage",
    "add_arguments",
    "check_plan",
    "from_namespace",
    "parse_line",
    "plan_cell",
    "split_line",
]
