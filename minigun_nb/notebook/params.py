"""Notebook parameters: the cell tagged ``parameters`` becomes command-line options.

Papermill's convention: a notebook's cell tagged ``parameters`` holds its defaults, one
``name = literal`` per line. ``minigun-nb export`` turns each into an option ``--name VALUE``
of the script, and ``minigun-nb run NB -p name=VALUE`` sets one. A VALUE is read as a Python
literal (``3``, ``0.5``, ``True``, ``None``, ``'text'``, ``[1, 2]``, ``{"a": 1}``); a plain word
that is not a literal (``daily``, ``data/in.csv``, ``2024-01-31``) is a string.

Examples
--------
>>> [parse_value(v) for v in ("3", "0.5", "True", "None", "[1, 2]", "daily", "'a b'")]
[3, 0.5, True, None, [1, 2], 'daily', 'a b']
>>> found = find_parameters("limit = 10\\nname = 'x'\\npaths = sorted(glob('*'))")
>>> [(p.name, p.default) for p in found.params], [n.name for n in found.not_literal]
([('limit', 10), ('name', 'x')], ['paths'])
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn

__all__ = [
    "NotLiteral",
    "Parameter",
    "ParameterError",
    "Parameters",
    "find_parameters",
    "parse_parameters",
    "parse_value",
]

#: a value that fails to parse and starts or ends with one of these was meant as a literal
_LITERAL_MARKS = "[]{}()'\""


class ParameterError(ValueError):
    """A parameter value or assignment that cannot be used; the message says what to write."""


@dataclass(frozen=True)
class Parameter:
    """One ``name = literal`` line of the parameters cell.

    Attributes
    ----------
    name : str
        The variable (and option ``--name``).
    default : Any
        The literal's value.
    source : str
        The literal as written in the cell.
    lineno : int
        Its line in the cell (1-based).
    """

    name: str
    default: Any
    source: str
    lineno: int


@dataclass(frozen=True)
class NotLiteral:
    """An assignment in the parameters cell whose value is not a literal (kept as code)."""

    name: str
    source: str
    lineno: int


@dataclass(frozen=True)
class Parameters:
    """What the parameters cell holds: the options, and the assignments that cannot be ones."""

    params: list[Parameter] = field(default_factory=list)
    not_literal: list[NotLiteral] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        """The parameter names, in the cell's order."""
        return [p.name for p in self.params]

    def defaults(self) -> dict[str, Any]:
        """``{name: default}`` in the cell's order."""
        return {p.name: p.default for p in self.params}


def parse_value(text: str) -> Any:
    """Read a parameter value: a Python literal, else a plain word as a string.

    Parameters
    ----------
    text : str
        The value as given on the command line (``-p limit=3`` gives ``"3"``).

    Returns
    -------
    Any
        int, float, bool, None, str, list, dict, tuple or set.

    Raises
    ------
    ParameterError
        ``text`` looks like a literal (starts or ends with a bracket or a quote) but does not
        parse, e.g. ``[1, 2`` or ``'abc``.

    Examples
    --------
    >>> parse_value("{'a': 1}"), parse_value("-2"), parse_value("hello world")
    ({'a': 1}, -2, 'hello world')
    """
    stripped = text.strip()
    try:
        return ast.literal_eval(stripped)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        pass
    if not stripped or stripped[0] in _LITERAL_MARKS or stripped[-1] in _LITERAL_MARKS:
        raise ParameterError(
            f"{text!r} is not a Python literal; write a number, True/False/None, a quoted "
            f"string, a [list] or a {{dict}} (a plain word such as daily is a string)"
        )
    return text


def find_parameters(source: str) -> Parameters:
    """Read the parameters cell: each top-level ``name = literal`` is a parameter.

    Parameters
    ----------
    source : str
        The cell's code.

    Returns
    -------
    Parameters
        ``params`` in the cell's order (a name assigned twice keeps its last value, at its
        first place); ``not_literal`` lists the assignments whose value is not a literal
        (``paths = sorted(...)``), which stay code and are not options.

    Raises
    ------
    ParameterError
        The cell is not valid Python.

    Examples
    --------
    >>> find_parameters("n: int = 3").params[0].default
    3
    """
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise ParameterError(
            f"the parameters cell has a syntax error at line {exc.lineno} ({exc.msg}); fix it"
        ) from None
    found: dict[str, Parameter] = {}
    odd: list[NotLiteral] = []
    for node in tree.body:
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        else:
            continue
        text = ast.get_source_segment(source, value) or ""
        names = [t.id for t in targets if isinstance(t, ast.Name)]
        if len(names) != len(targets):  # a, b = 1, 2 or x.y = 1: not one plain name
            segment = ast.get_source_segment(source, node) or ""
            odd.append(NotLiteral(segment.split("=")[0].strip(), segment, node.lineno))
            continue
        try:
            default = ast.literal_eval(value)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            odd.extend(NotLiteral(n, ast.get_source_segment(source, node) or text, node.lineno)
                       for n in names)
            continue
        for name in names:
            first = found.get(name)
            found[name] = Parameter(name, default, text, first.lineno if first else node.lineno)
    return Parameters(sorted(found.values(), key=lambda p: p.lineno), odd)


class _Parser(argparse.ArgumentParser):
    """argparse, but an unknown option lists the known parameters (and exits 2 as usual)."""

    known: Sequence[str] = ()

    def error(self, message: str) -> NoReturn:
        if "unrecognized arguments" in message and self.known:
            message += "; the parameters are " + ", ".join(f"--{n}" for n in self.known)
        elif "unrecognized arguments" in message:
            message += "; this script takes no parameters"
        super().error(message)


def _value(name: str) -> Any:
    def convert(text: str) -> Any:
        try:
            return parse_value(text)
        except ParameterError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = name  # argparse names the type in its messages
    return convert


def parse_parameters(defaults: Mapping[str, Any], description: str | None = None,
                     argv: Sequence[str] | None = None, prog: str | None = None
                     ) -> dict[str, Any]:
    """Parse the command line of an exported script: ``--name VALUE`` for each parameter.

    Parameters
    ----------
    defaults : mapping
        ``{name: default}`` from the notebook's parameters cell.
    description : str, optional
        Shown by ``--help`` (the script's docstring).
    argv : sequence of str, optional
        The arguments (default ``sys.argv[1:]``).
    prog : str, optional
        The program name ``--help`` shows.

    Returns
    -------
    dict
        ``{name: value}``: the default, or the option's value read by :func:`parse_value`.
        ``--help`` prints the options with their defaults and exits 0; an unknown option or a
        value that does not parse exits with status 2 and says why.

    Examples
    --------
    >>> parse_parameters({"limit": 10, "mode": "fast"}, argv=["--limit", "3"])
    {'limit': 3, 'mode': 'fast'}
    """
    parser = _Parser(prog=prog, description=description, allow_abbrev=False,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.known = list(defaults)
    for name, default in defaults.items():
        flags = [f"--{name}"]
        if "_" in name:
            flags.append(f"--{name.replace('_', '-')}")
        parser.add_argument(*flags, dest=name, metavar="VALUE", type=_value(name),
                            # SUPPRESS: argparse would run a str default through type=
                            default=argparse.SUPPRESS,
                            help=f"a Python literal (default: {default!r})")
    args = parser.parse_args(sys.argv[1:] if argv is None else list(argv))
    return {name: getattr(args, name, default) for name, default in defaults.items()}
