"""A worker's traceback made readable in the kernel: ``<dynamic-code>`` frames get their file
back, and frames without a source line get it from the kernel's line cache."""

from __future__ import annotations

import linecache

import pytest

from minigun_nb.runtime.worker_tracebacks import code_files, fix_traceback

pytestmark = pytest.mark.timeout(10)

CELL = "<ipython-input-7-abc>"
CELL_SOURCE = "def helper(x):\n    return 1 / x\n\ndef work(x):\n    return helper(x) + 1\n"


@pytest.fixture
def cell():
    """Two functions defined in a 'notebook cell' whose source only the line cache holds."""
    linecache.cache[CELL] = (len(CELL_SOURCE), None, CELL_SOURCE.splitlines(True), CELL)
    namespace = {}
    exec(compile(CELL_SOURCE, CELL, "exec"), namespace)
    yield namespace
    linecache.cache.pop(CELL, None)


def frames(*lines):
    return "\n".join(["Traceback (most recent call last):", *lines, "ZeroDivisionError: boom"])


def test_a_dynamic_code_frame_gets_its_file_and_the_cells_source_line(cell):
    tb = frames(
        '  File "<dynamic-code>", line 5, in work',
        '  File "<dynamic-code>", line 2, in helper',
    )
    assert fix_traceback(tb, code_files(cell["work"])) == frames(
        f'  File "{CELL}", line 5, in work',
        "    return helper(x) + 1",
        f'  File "{CELL}", line 2, in helper',
        "    return 1 / x",
    )


def test_a_frame_that_shows_its_source_keeps_it_once():
    tb = frames('  File "/lib/mod.py", line 3, in f', "    x = 1 / 0")
    assert fix_traceback(tb, {}, lambda file, line: "other text") == tb


def test_a_frame_the_kernel_cannot_name_stays_as_it_was():
    tb = frames('  File "<dynamic-code>", line 9, in unknown')
    assert fix_traceback(tb, {"work": "cell.py"}) == tb


def test_lines_that_are_not_frames_are_untouched():
    tb = "ValueError: bad\n\nDuring handling of the above exception, another exception occurred:\n"
    assert fix_traceback(tb, {}, lambda file, line: "never") == tb
    assert fix_traceback("", {}) == ""


def test_the_source_line_is_read_from_the_named_file():
    asked = []

    def getline(file, line):
        asked.append((file, line))
        return "   total += x   \n"

    tb = frames('  File "<dynamic-code>", line 12, in step')
    fixed = fix_traceback(tb, {"step": "/work/job.py"}, getline)
    assert asked == [("/work/job.py", 12)]
    assert fixed == frames('  File "/work/job.py", line 12, in step', "    total += x")


def test_code_files_follows_closures_globals_and_callable_objects(cell):
    def outer(x):
        return cell["work"](x)  # a closure over `cell`: the dict is not a function

    inner = cell["helper"]

    def closing(x):
        return inner(x)

    class Stateful:
        def __call__(self, x):
            return x

        def method(self, x):
            return x

    here = __file__
    assert code_files(closing) == {"closing": here, "helper": CELL}
    assert code_files(cell["work"]) == {"work": CELL, "helper": CELL}
    assert code_files(Stateful()) == {"__call__": here}
    assert code_files(Stateful().method) == {"method": here}
    assert code_files(outer) == {"outer": here}
    assert code_files(len) == {}


def test_code_files_ends_on_recursion_and_on_many_functions():
    def again(n):
        return again(n - 1) if n else 0

    assert code_files(again) == {"again": __file__}

    namespace = {}
    names = [f"f{i}" for i in range(300)]
    source = "".join(f"def {a}():\n    return {b}()\n" for a, b in zip(names, names[1:], strict=False))
    source += f"def {names[-1]}():\n    return 0\n"
    exec(compile(source, "<chain>", "exec"), namespace)
    found = code_files(namespace["f0"])
    assert 100 < len(found) <= 201 and set(found.values()) == {"<chain>"}
