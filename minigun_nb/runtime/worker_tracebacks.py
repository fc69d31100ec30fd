r"""A worker's traceback made readable in the kernel.

A function shipped by value (cloudpickle) runs in the worker as ``<dynamic-code>``, and a
notebook cell's source lives only in the kernel's line cache, so the traceback a worker sends
lacks file names and source lines. :func:`fix_traceback` puts them back.

Examples
--------
>>> def work(x):
...     return 1 / x
>>> code_files(work)["work"] == work.__code__.co_filename
True
>>> tb = "\n".join([
...     "Traceback (most recent call last):",
...     '  File "<dynamic-code>", line 2, in work',
...     "ZeroDivisionError: division by zero",
... ])
>>> print(fix_traceback(tb, {"work": "cell.py"}, lambda file, line: "return 1 / x"))
Traceback (most recent call last):
  File "cell.py", line 2, in work
    return 1 / x
ZeroDivisionError: division by zero
"""

from __future__ import annotations

import linecache
import re
from collections.abc import Callable, Mapping
from typing import Any

#: a frame line of a formatted traceback: file, line number, function name
TB_LINE = re.compile(r'  File "([^"]+)", line (\d+), in (\S+)$')
#: the file name a function shipped by value runs under in a worker
DYNAMIC_CODE = "<dynamic-code>"
_MAX_FUNCTIONS = 200


def code_files(fn: Any) -> dict[str, str]:
    """Function name -> source file, for a stage function and the functions it can see
    (its closure and the module globals it names), at most a couple of hundred."""
    out: dict[str, str] = {}
    seen: set[int] = set()
    todo = [fn, getattr(fn, "__call__", None)]  # noqa: B004 - a stateful stage object
    while todo:
        f = todo.pop()
        f = getattr(f, "__func__", f)
        code = getattr(f, "__code__", None)
        if code is None or id(f) in seen:
            continue
        seen.add(id(f))
        out.setdefault(code.co_name, code.co_filename)
        if len(seen) > _MAX_FUNCTIONS:
            break
        for cell in getattr(f, "__closure__", None) or ():
            try:
                todo.append(cell.cell_contents)
            except ValueError:  # an empty cell
                pass
        module = getattr(f, "__globals__", {})
        todo.extend(v for k in code.co_names if callable(v := module.get(k)))
    return out


def fix_traceback(
    tb: str,
    files: Mapping[str, str],
    getline: Callable[[str, int], str] = linecache.getline,
) -> str:
    """``tb`` with ``<dynamic-code>`` frames named after the file in ``files`` (function
    name -> file) and a source line (read with ``getline``) under every frame that has none."""
    lines = tb.split("\n")
    out: list[str] = []
    for i, text in enumerate(lines):
        m = TB_LINE.match(text)
        if m is None:
            out.append(text)
            continue
        filename, line, name = m.group(1), int(m.group(2)), m.group(3)
        if filename == DYNAMIC_CODE:
            filename = files.get(name, filename)
            text = f'  File "{filename}", line {line}, in {name}'
        out.append(text)
        shown = i + 1 < len(lines) and lines[i + 1].startswith("    ")
        if not shown:
            source = getline(filename, line).strip()
            if source:
                out.append(f"    {source}")
    return "\n".join(out)
