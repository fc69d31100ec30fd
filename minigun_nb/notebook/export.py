"""``minigun-nb export``: a notebook becomes a plain Python script, without running any of it.

The notebook is read with jupytext (cells and their metadata). The script keeps the code cells
in order and turns the rest into what a script can do:

* markdown (and raw) cells become comments;
* a ``%%minigun NAME ...`` cell becomes the same pipeline written with the API:
  ``NAME = mg.Pipeline("NAME")``, each stage function decorated ``@NAME.producer`` /
  ``@NAME.processor(...)`` / ``@NAME.consumer`` by the magic's own rules
  (:mod:`minigun_nb.notebook.magicline`), functions already decorated ``@mg.processor(...)``
  keeping their options and added with ``NAME.add(fn)``, ``--batch N`` as ``NAME.batch(N)``
  before the last stage, then ``NAME_result = NAME.run(items=...)``. ``--display`` is left
  out: the display is chosen where the script runs (``display="auto"``, or ``minigun-nb run``);
* other magics (``%x``, ``%%x``) and ``!shell`` lines are commented out with a note;
* ``display(x)`` prints ``x``'s text form;
* the cell tagged ``parameters`` becomes command-line options (:mod:`.params`): its literal
  defaults are read from ``--name VALUE`` when the script starts, so ``--help`` lists them and
  an unknown option exits with status 2 before any notebook code runs.

The notebook's code runs under ``if __name__ == "__main__":``: worker processes that import
the script (Dask's nanny re-imports the main module) run none of it, while the functions stay
module globals that cloudpickle ships by value.
"""

from __future__ import annotations

import ast
import io
import json
import os
import re
import tokenize
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .magicline import LINE_BACKEND_KINDS, MagicLineError, check_plan, parse_line, plan_cell
from .params import ParameterError, Parameters, find_parameters

__all__ = ["ExportError", "Exported", "convert", "export_notebook", "read_notebook"]

INDENT = "    "
IPYTHON_ONLY = "IPython-only, not run in the script"
#: cell magics whose body is plain Python run once: the magic line goes, the code stays
_TRANSPARENT_CELL_MAGICS = ("time", "capture")
_MAGIC_LINE = re.compile(r"^\s*(?:[%!]|[\w.\[\], ]+=\s*[%!])")

_DISPLAY_FALLBACK = '''\
def display(*objs, **options):
    """display() of a notebook cell, in a script: print each object's text form."""
    try:
        from IPython import get_ipython
        from IPython.lib.pretty import pretty as text
    except ImportError:  # no IPython: repr() is the text form
        get_ipython, text = None, repr
    if get_ipython is not None and get_ipython() is not None:  # run by IPython: its own
        from IPython.display import display as show

        return show(*objs, **options)
    for obj in objs:
        print(obj if isinstance(obj, str) else text(obj))
'''


class ExportError(ValueError):
    """A notebook that cannot be exported; the message names the file or cell and the fix."""


@dataclass
class Exported:
    """A converted notebook.

    Attributes
    ----------
    source : str
        The script's text.
    parameters : Parameters
        What the cell tagged ``parameters`` holds (empty without one).
    warnings : list of str
        Things the user should know (a parameter kept as code, a commented-out cell magic).
    """

    source: str
    parameters: Parameters = field(default_factory=Parameters)
    warnings: list[str] = field(default_factory=list)


def read_notebook(path: str | os.PathLike[str]) -> Any:
    """Read a notebook with jupytext; :class:`ExportError` with one clear sentence if not.

    Examples
    --------
    >>> read_notebook("missing.ipynb")
    Traceback (most recent call last):
    ...
    minigun_nb.notebook.export.ExportError: no such notebook: missing.ipynb
    """
    import jupytext

    p = Path(path)
    if not p.is_file():
        raise ExportError(f"no such notebook: {path}")
    if p.suffix == ".ipynb":
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise ExportError(f"{path} is not a Jupyter notebook: it is not valid JSON ({exc})"
                              ) from None
        if not isinstance(data, dict) or not isinstance(data.get("cells"), list):
            raise ExportError(f"{path} is not a Jupyter notebook: its JSON has no list of cells")
    try:
        return jupytext.read(p)
    except Exception as exc:  # noqa: BLE001 - any reader error is the file's fault here
        raise ExportError(f"{path} cannot be read as a notebook: {type(exc).__name__}: {exc}"
                          ) from None


def export_notebook(path: str | os.PathLike[str], output: str | os.PathLike[str] | None = None
                    ) -> tuple[Path, Exported]:
    """Write the script for the notebook at ``path`` (default: beside it, with ``.py``).

    Returns the script's path and the :class:`Exported` conversion (its warnings included).
    """
    src = Path(path)
    out = Path(output) if output is not None else src.with_suffix(".py")
    if out.resolve() == src.resolve():
        raise ExportError(f"the script would overwrite the notebook {path}; give -o SCRIPT")
    nb = read_notebook(src)
    if not out.parent.is_dir():
        raise ExportError(f"cannot write {out}: the folder {out.parent} does not exist")
    done = convert(nb, name=out.stem, notebook_name=src.name)
    out.write_text(done.source, encoding="utf-8")
    return out, done


def convert(nb: Any, name: str = "job", notebook_name: str = "notebook.ipynb") -> Exported:
    """Turn a notebook (as :func:`read_notebook` gives it) into a script's text.

    Examples
    --------
    >>> import nbformat.v4 as v4
    >>> nb = v4.new_notebook(cells=[v4.new_code_cell("%%minigun sq --items range(3)\\n"
    ...                                             "def square(x):\\n    return x * x")])
    >>> print(convert(nb).source.split("if __name__")[1].rstrip())
     == "__main__":
        # -- cell 1 --
        # %%minigun sq --items range(3)  (the cell magic, written with the API)
        sq = mg.Pipeline("sq")
        @sq.consumer
        def square(x):
            return x * x
        sq_result = sq.run(items=range(3))
    """
    warnings: list[str] = []
    params = Parameters()
    body: list[str] = []
    uses_mg = False
    futures: list[str] = []
    code_cells: list[str] = []
    for number, cell in enumerate(nb.cells, 1):
        text = cell.source if isinstance(cell.source, str) else "".join(cell.source)
        if cell.cell_type != "code":
            what = "" if cell.cell_type == "markdown" else f" ({cell.cell_type} cell)"
            body.append(f"# -- cell {number}{what} --")
            body.extend(f"# {line}".rstrip() for line in text.splitlines())
            body.append("")
            continue
        where = f"cell {number}"
        first = text.lstrip("\n").split("\n", 1)[0].strip()
        if first.startswith("%%minigun"):
            code = _minigun_cell(text.lstrip("\n"), where)
            uses_mg = True
        elif first.startswith("%%"):
            code = _other_cell_magic(text.lstrip("\n"), where, warnings)
        else:
            code = _comment_magics(text)
        tags = cell.metadata.get("tags", []) if hasattr(cell, "metadata") else []
        if "parameters" in tags and not params.params:
            code, params = _parameters_cell(code, where, warnings)
        code, moved = _hoist_futures(code)
        futures.extend(f for f in moved if f not in futures)
        _check_syntax(code, where)
        code_cells.append(code)
        body.append(f"# -- {where} --" + (" (parameters)" if "parameters" in tags else ""))
        body.extend(code.rstrip("\n").split("\n") if code.strip() else ["pass"])
        body.append("")
    head = [
        "#!/usr/bin/env python3",
        f'"""{name}: exported from {notebook_name} by `minigun-nb export`.',
        "",
        f"Run it with `python {name}.py` or, for an exit status a scheduler can use,",
        f"`minigun-nb run {name}.py`.",
    ]
    if params.params:
        head += ["", "Its parameters come from the notebook's cell tagged \"parameters\": each is an",
                 "option --name VALUE, read as a Python literal (`--help` lists them)."]
    head += ['"""', ""]
    head += [f"{f}" for f in futures]
    if uses_mg:
        head.append("import minigun_nb as mg")
    if params.params:
        head.append("from minigun_nb.notebook.params import parse_parameters")
    if uses_mg or params.params:
        head.append("")
    if any(re.search(r"\bdisplay\s*\(", c) for c in code_cells):
        head += ["", _DISPLAY_FALLBACK.rstrip("\n"), ""]
    main = [
        "",
        "# The notebook's code runs only when this file is the main program: worker processes",
        "# that import it (Dask's nanny does) must not run it again.",
        'if __name__ == "__main__":',
    ]
    if params.params:
        defaults = ", ".join(f'"{p.name}": {p.source}' for p in params.params)
        main.append(f"{INDENT}_params = parse_parameters({{{defaults}}}, __doc__)")
        main.append("")
    script = "\n".join(head + main) + "\n" + _indent("\n".join(body) + "\n")
    try:
        compile(script, f"{name}.py", "exec")
    except SyntaxError as exc:  # a bug here, not in the notebook (cells were checked)
        raise ExportError(f"the exported script does not compile at line {exc.lineno}: "
                          f"{exc.msg}; please report it") from None
    return Exported(script, params, warnings)


# -- cells -------------------------------------------------------------------------------------
def _check_syntax(code: str, where: str) -> None:
    try:
        compile(code, where, "exec", dont_inherit=True)  # compiled, never run
    except SyntaxError as exc:
        try:  # IPython runs a cell with a top-level await on its loop; a script cannot
            compile(code, where, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True)
        except SyntaxError:
            pass
        else:
            raise ExportError(
                f"{where} uses await at the top level, which only IPython allows; put that "
                f"code in an `async def main():` and call `asyncio.run(main())` in the cell"
            ) from None
        line = f": {exc.text.strip()}" if exc.text and exc.text.strip() else ""
        raise ExportError(f"{where} has a syntax error at line {exc.lineno} ({exc.msg}{line}); "
                          f"fix the notebook and export again") from None


def _string_lines(code: str) -> set[int]:
    """0-based lines that continue a multi-line string (their text must not change)."""
    inside: set[int] = set()
    starts: list[int] = []
    fstart = getattr(tokenize, "FSTRING_START", None)
    fend = getattr(tokenize, "FSTRING_END", None)
    try:
        for tok in tokenize.generate_tokens(io.StringIO(code).readline):
            if tok.type == tokenize.STRING and tok.end[0] > tok.start[0]:
                inside.update(range(tok.start[0], tok.end[0]))
            elif fstart is not None and tok.type == fstart:
                starts.append(tok.start[0])
            elif fend is not None and tok.type == fend and starts:
                inside.update(range(starts.pop(), tok.end[0]))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        pass  # magic lines may not tokenize; the caller checks the final code with ast
    return inside


def _indent(code: str) -> str:
    keep = _string_lines(code)
    out = []
    for i, line in enumerate(code.split("\n")):
        if i in keep:
            out.append(line)
        else:
            out.append(INDENT + line if line.strip() else "")
    return "\n".join(out)


def _comment_magics(code: str) -> str:
    """``%magic``, ``%%magic`` and ``!shell`` lines become comments with a note."""
    lines = code.split("\n")
    keep = _string_lines("\n".join("pass" if _MAGIC_LINE.match(line) else line
                                   for line in lines))
    out = []
    for i, line in enumerate(lines):
        if i in keep or not _MAGIC_LINE.match(line):
            out.append(line)
            continue
        pad = line[: len(line) - len(line.lstrip())]
        # an indented magic may be the only statement of its block: keep the block valid
        stmt = f"{pad}pass  " if pad else ""
        out.append(f"{stmt}# {line.strip()}  # {IPYTHON_ONLY}")
    return "\n".join(out)


def _other_cell_magic(code: str, where: str, warnings: list[str]) -> str:
    first, _, rest = code.partition("\n")
    magic = first.strip()[2:].split(None, 1)[0] if first.strip()[2:] else ""
    if magic in _TRANSPARENT_CELL_MAGICS:
        return f"# {first.strip()}  # {IPYTHON_ONLY}; the cell's code is kept\n" + \
            _comment_magics(rest)
    warnings.append(f"{where}: the %%{magic} cell is IPython-only and was commented out")
    lines = [f"# {first.strip()}  # {IPYTHON_ONLY} (the whole cell)"]
    lines += [f"# {line}".rstrip() for line in rest.split("\n")]
    return "\n".join(lines)


def _hoist_futures(code: str) -> tuple[str, list[str]]:
    """``from __future__`` imports must open the script: take them out of the cell."""
    if "__future__" not in code:
        return code, []
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return code, []
    lines = code.split("\n")
    moved = []
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module == "__future__":
            moved.append("\n".join(lines[node.lineno - 1:node.end_lineno]).strip())
            for i in range(node.lineno - 1, node.end_lineno or node.lineno):
                lines[i] = ""
    return "\n".join(lines), moved


def _parameters_cell(code: str, where: str, warnings: list[str]) -> tuple[str, Parameters]:
    try:
        found = find_parameters(code)
        tree = ast.parse(code)
    except (ParameterError, SyntaxError) as exc:
        raise ExportError(f"{where} (tagged parameters): {exc}") from None
    names = set(found.names)
    lines = code.split("\n")
    replace: dict[int, list[str]] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets = [node.target]
        else:
            continue
        if not targets or not all(isinstance(t, ast.Name) and t.id in names for t in targets):
            continue
        try:
            ast.literal_eval(node.value)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
        original = " ".join(lines[i].strip() for i in range(node.lineno - 1, node.end_lineno
                                                             or node.lineno))
        new = [f'{t.id} = _params["{t.id}"]' for t in targets if isinstance(t, ast.Name)]
        new[-1] += f"  # in the notebook: {original}"
        replace[node.lineno - 1] = new
        for i in range(node.lineno, node.end_lineno or node.lineno):
            replace[i] = []
    notes: dict[int, str] = {}
    for odd in found.not_literal:
        msg = (f"{where} (tagged parameters), line {odd.lineno}: {odd.source.strip()!r} is not "
               f"a literal, so {odd.name} is no command-line option; kept as code")
        warnings.append(msg)
        notes[odd.lineno - 1] = (f"# note: {odd.name} is not a literal, so it is no "
                                 f"command-line option (kept as code)")
    out: list[str] = []
    for i, line in enumerate(lines):
        if i in notes:
            out.append(notes[i])
        out.extend(replace.get(i, [line]))
    return "\n".join(out), found


def _minigun_cell(code: str, where: str) -> str:
    first, _, body = code.partition("\n")
    line = first.strip()[len("%%minigun"):]
    try:
        ml = parse_line(line)
        plan = plan_cell(body, line_offset=1)  # the %%minigun line is the cell's line 1
        check_plan(ml, plan)
    except MagicLineError as exc:
        raise ExportError(f"{where}: {exc}") from None
    body = _comment_magics(body)
    lines = body.split("\n")
    tree = ast.parse(body)
    nodes = {n.name: n for n in tree.body
             if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    name = ml.name
    before: dict[int, list[str]] = {}  # 0-based line -> lines inserted before it
    last = plan[-1].name
    for st in plan:
        node = nodes[st.name]
        start = (node.decorator_list[0].lineno if node.decorator_list else node.lineno) - 1
        extra = [f"{name}.batch({ml.batch})"] if ml.batch and st.name == last else []
        line_opts = _line_options(ml, st, where)
        if not st.decorated:
            opts = ", ".join(f"{k}={json.dumps(v)}" for k, v in line_opts.items())
            before.setdefault(start, []).extend(
                [*extra, f"@{name}.{st.kind}" + (f"({opts})" if opts else "")])
            continue
        if line_opts:
            _add_line_options(lines, node, line_opts, ml, st, where)
        end = node.end_lineno or node.lineno
        before.setdefault(end, []).extend([*extra, f"{name}.add({st.name})"])
    out: list[str] = [
        f"# {first.strip()}  (the cell magic, written with the API)",
        f'{name} = mg.Pipeline("{name}"'
        + (f", queue_size={ml.queue_size}" if ml.queue_size else "") + ")",
    ]
    for i, text in enumerate(lines):
        out.extend(before.get(i, []))
        out.append(text)
    out.extend(before.get(len(lines), []))
    while out and not out[-1].strip():
        out.pop()
    if not ml.no_run:
        items = f"items={ml.items}" if ml.items else ""
        out.append(f"{ml.result_name} = {name}.run({items})")
    return "\n".join(out)


def _line_options(ml: Any, st: Any, where: str) -> dict[str, Any]:
    """The backend and workers the line gives a stage (the magic's rule): processors and
    consumers only; an ``async def`` runs on the event loop whatever the backend."""
    if ml.backend is None or st.kind not in LINE_BACKEND_KINDS:
        return {}
    backend = "async" if st.is_async else ml.backend
    if backend == "async" and not st.is_async and not st.decorated:
        raise ExportError(
            f"{where}: %%minigun {ml.name}: --tasks runs every stage after the producers on "
            f"the event loop, but {st.name} is a plain def; make it `async def "
            f"{st.name}(item)`, or decorate it with @mg.processor(backend='thread')."
        )
    return {"backend": backend, "workers": ml.workers}


def _add_line_options(lines: list[str], node: ast.AST, line_opts: dict[str, Any], ml: Any,
                      st: Any, where: str) -> None:
    """Give a ``@mg.processor(...)`` decorator the line's backend and workers where it does
    not name them (its own options win; one that chose another backend keeps its workers)."""
    from .magicline import _decorator_kind

    deco = next(d for d in node.decorator_list  # type: ignore[attr-defined]
                if _decorator_kind(d) is not None)
    own = {k.arg: k.value for k in deco.keywords if k.arg} if isinstance(deco, ast.Call) else {}
    if "backend" in own:
        given = own["backend"]
        if not isinstance(given, ast.Constant) or given.value != line_opts["backend"]:
            return  # another backend (or one we cannot read): the decorator's own choice
    add = [f"{k}={json.dumps(v)}" for k, v in line_opts.items() if k not in own and v is not None]
    if not add:
        return
    if line_opts["backend"] == "async" and not st.is_async:
        raise ExportError(
            f"{where}: %%minigun {ml.name}: --tasks runs every stage after the producers on the "
            f"event loop, but {st.name} is a plain def; make it an async def, or give its "
            f"decorator backend='thread'."
        )
    row = (deco.end_lineno or deco.lineno) - 1
    raw = lines[row].encode("utf-8")
    col = len(raw[: deco.end_col_offset].decode("utf-8"))  # ast columns count UTF-8 bytes
    text = lines[row]
    if isinstance(deco, ast.Call):
        sep = ", " if deco.args or deco.keywords else ""
        lines[row] = text[: col - 1] + sep + ", ".join(add) + text[col - 1:]
    else:
        lines[row] = text[:col] + "(" + ", ".join(add) + ")" + text[col:]
