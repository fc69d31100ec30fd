"""The ``%%minigun`` cell magic (SPEC section 13), kernel-free through IPython's own shell.

Each test runs real cells with ``shell.run_cell`` (what a notebook does) and checks what the
cell left behind: the pipeline bound to NAME, its stages in order with their kinds, backends
and workers, the RunResult in NAME_result compared with plain Python, and for bad input the
one-sentence error and that NAME was not rebound. One slow test runs the magic in a real
Jupyter kernel through nbclient.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.core.magic_arguments import parse_argstring

import minigun_nb as mg
from minigun_nb.notebook.magic import MinigunMagics
from minigun_nb.notebook.magicline import (
    MagicLine,
    MagicLineError,
    from_namespace,
    parse_line,
    plan_cell,
)
from minigun_nb.notebook.tracebacks import PACKAGE_DIR

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def shell():
    sh = InteractiveShell.instance()
    sh.run_line_magic("colors", "nocolor")
    sh.extension_manager.load_extension("minigun_nb")  # %load_ext (quiet when loaded)
    before = set(sh.user_ns)
    sh.run_cell("import minigun_nb as mg")
    yield sh
    for name in set(sh.user_ns) - before:
        del sh.user_ns[name]


@pytest.fixture(autouse=True, scope="module")
def _close_pools_after_module():
    yield
    mg.shutdown()  # the process stages' warm pools: no worker outlives this module


def cell(shell, line, body):
    """Run ``%%minigun line`` + body as a notebook cell; return IPython's ExecutionResult."""
    return shell.run_cell(f"%%minigun {line}\n" + textwrap.dedent(body).lstrip("\n"))


def ok(shell, line, body):
    result = cell(shell, line, body)
    assert result.success, result.error_in_exec
    return result


def layout(pipe):
    """(name, kind, backend, workers) of every stage, in order, as the pipeline resolves it."""
    graph = pipe.graph()
    return [(s.name, s.kind, graph.stages[s.name].options.get("backend"),
             graph.stages[s.name].options.get("workers")) for s in pipe.stages]


# -- what a cell becomes ------------------------------------------------------------------------
CHAIN = """
import math
OFFSET = 10

def numbers():
    yield from range(1, 21)

def _scale(x):
    return x * 3

def work(x):
    return _scale(x) + OFFSET

def keep(x):
    return math.sqrt(x)
"""


def test_top_level_functions_become_stages_in_order_and_the_run_equals_plain_python(shell):
    ok(shell, "etl --display none", CHAIN)
    ns = shell.user_ns
    pipe, result = ns["etl"], ns["etl_result"]
    assert isinstance(pipe, mg.Pipeline) and pipe.name == "etl"
    assert [(s.name, s.kind) for s in pipe.stages] == [
        ("numbers", "producer"), ("work", "processor"), ("keep", "consumer")]
    # the cell ran in the user's namespace: its import, constant and helper stay defined
    assert ns["OFFSET"] == 10 and ns["math"].sqrt(4) == 2 and ns["_scale"](2) == 6
    expected = [ns["math"].sqrt(x * 3 + 10) for x in range(1, 21)]
    assert sorted(result.outputs) == sorted(expected)
    assert result.status == "done"


def test_a_function_with_no_item_parameter_is_a_producer(shell):
    ok(shell, "gen --display none", """
        def letters(prefix="x"):
            return [prefix + c for c in "abc"]

        def upper(s):
            return s.upper()
    """)
    pipe = shell.user_ns["gen"]
    assert [(s.name, s.kind) for s in pipe.stages] == [("letters", "producer"),
                                                       ("upper", "consumer")]
    assert sorted(shell.user_ns["gen_result"].outputs) == ["XA", "XB", "XC"]


@pytest.mark.parametrize(("option", "backend"), [
    ("--threads", "thread"), ("--processes", "process"), ("--forks", "fork"), ("--tasks", "async"),
])
def test_a_backend_option_gives_every_non_producer_stage_that_backend(shell, option, backend):
    prefix = "async " if backend == "async" else ""
    ok(shell, f"par {option} 3 --display none", f"""
        def numbers():
            yield from range(30)

        {prefix}def square(x):
            return x * x

        {prefix}def plus_one(x):
            return x + 1
    """)
    pipe = shell.user_ns["par"]
    assert layout(pipe) == [
        ("numbers", "producer", "thread", 1),
        ("square", "processor", backend, 3),
        ("plus_one", "consumer", backend, 3),
    ]
    assert sorted(shell.user_ns["par_result"].outputs) == sorted(x * x + 1 for x in range(30))


def test_without_a_backend_option_stages_keep_the_defaults(shell):
    ok(shell, "plain --display none", CHAIN)
    assert [s.options for s in shell.user_ns["plain"].stages] == [{}, {}, {}]


def test_an_async_def_runs_on_the_event_loop_under_any_backend_option(shell):
    ok(shell, "mixed --threads 4 --display none", """
        def numbers():
            yield from range(10)

        async def fetch(x):
            return x + 100

        def parse(x):
            return -x
    """)
    assert layout(shell.user_ns["mixed"])[1:] == [("fetch", "processor", "async", 4),
                                                  ("parse", "consumer", "thread", 4)]
    assert sorted(shell.user_ns["mixed_result"].outputs) == sorted(-(x + 100) for x in range(10))


def test_decorator_options_win_over_the_line(shell):
    ok(shell, "deco --threads 3 --display none", """
        seen = []

        def numbers():
            yield from range(12)

        @mg.processor(workers=1, backend="inline")
        def first(x):
            return x + 1

        @mg.processor(workers=5)
        def second(x):
            return x * 2

        @mg.processor(retries=2, to="sink")
        def third(x):
            return x - 1

        @mg.consumer(name="sink")
        def save(x):
            seen.append(x)
            return x
    """)
    pipe = shell.user_ns["deco"]
    assert layout(pipe) == [
        ("numbers", "producer", "thread", 1),
        ("first", "processor", "inline", 1),    # its own backend and workers
        ("second", "processor", "thread", 5),   # its own workers, the line's backend
        ("third", "processor", "thread", 3),    # the line's backend and workers, its retries
        ("sink", "consumer", "thread", 3),      # its own name and kind
    ]
    third = next(s for s in pipe.stages if s.name == "third")
    assert third.options["retries"] == 2 and third.to == ("sink",)
    expected = sorted((x + 1) * 2 - 1 for x in range(12))
    assert sorted(shell.user_ns["seen"]) == expected
    assert sorted(shell.user_ns["deco_result"].outputs) == expected


def test_a_decorated_last_function_keeps_its_kind(shell):
    ok(shell, "tail --display none", """
        @mg.producer
        def numbers():
            return [1, 2, 3]

        @mg.processor
        def double(x):
            return 2 * x
    """)
    assert [(s.name, s.kind) for s in shell.user_ns["tail"].stages] == [
        ("numbers", "producer"), ("double", "processor")]
    assert sorted(shell.user_ns["tail_result"].outputs) == [2, 4, 6]


def test_mg_is_available_in_the_cell_without_an_import(shell):
    del shell.user_ns["mg"]
    ok(shell, "bare --display none", """
        @mg.producer
        def numbers():
            return [1, 2]

        def neg(x):
            return -x
    """)
    assert shell.user_ns["mg"] is mg
    shell.run_cell("mg = 'mine'")
    ok(shell, "bare --display none", "def numbers():\n    return [1]\n")
    assert shell.user_ns["mg"] == "mine"  # an existing name is left alone


def test_batch_puts_a_batch_operator_before_the_last_stage(shell):
    ok(shell, "b --batch 4 --display none", """
        def numbers():
            yield from range(10)

        def double(x):
            return 2 * x

        def total(batch):
            assert isinstance(batch, list) and 1 <= len(batch) <= 4
            return sum(batch)
    """)
    pipe = shell.user_ns["b"]
    assert [(s.name, s.kind) for s in pipe.stages] == [
        ("numbers", "producer"), ("double", "processor"), ("batch", "batch"),
        ("total", "consumer")]
    assert pipe.stages[2].params["size"] == 4
    result = shell.user_ns["b_result"]
    assert sum(result.outputs) == sum(2 * x for x in range(10))
    assert result.stats.loc["batch", "items_out"] == 3  # 4 + 4 + 2


def test_queue_size_is_the_pipelines_option(shell):
    ok(shell, "q --queue-size 7 --no-run", CHAIN)
    assert shell.user_ns["q"].options == {"queue_size": 7}
    assert pipe_queue_sizes(shell.user_ns["q"]) == {7}


def pipe_queue_sizes(pipe):
    graph = pipe.graph()
    return {graph.stages[s.name].options["queue_size"] for s in pipe.stages}


def test_items_is_evaluated_in_the_user_namespace_and_passed_as_items(shell):
    shell.run_cell("words = ['a', 'bb', 'ccc']")
    ok(shell, "lens --items words --display none", """
        def length(w):
            return len(w)
    """)
    assert sorted(shell.user_ns["lens_result"].outputs) == [1, 2, 3]
    # an expression with spaces, and a name the cell itself defines
    ok(shell, "lens --items [n * 10 for n in base] + [1] --display none", """
        base = [1, 2]

        def neg(x):
            return -x
    """)
    assert sorted(shell.user_ns["lens_result"].outputs) == [-20, -10, -1]


def test_no_run_binds_the_pipeline_and_runs_nothing(shell):
    ok(shell, "later --no-run", """
        calls = []

        def numbers():
            calls.append("ran")
            yield 1

        def show(x):
            return x
    """)
    assert isinstance(shell.user_ns["later"], mg.Pipeline)
    assert "later_result" not in shell.user_ns
    assert shell.user_ns["calls"] == []
    # the bound pipeline runs like any other
    assert shell.user_ns["later"].run(display="none").outputs == [1]


def test_re_running_the_cell_rebuilds_pipeline_and_result_from_scratch(shell):
    ok(shell, "again --display none", CHAIN)
    first_pipe, first_result = shell.user_ns["again"], shell.user_ns["again_result"]
    ok(shell, "again --display none", CHAIN)
    pipe, result = shell.user_ns["again"], shell.user_ns["again_result"]
    assert pipe is not first_pipe and result is not first_result
    assert [s.name for s in pipe.stages] == ["numbers", "work", "keep"]  # no duplicate
    assert sorted(result.outputs) == sorted(first_result.outputs)
    # an edited cell: a stage renamed, one removed, the options changed
    ok(shell, "again --threads 2 --display none", """
        def numbers():
            yield from range(3)

        def triple(x):
            return 3 * x
    """)
    assert layout(shell.user_ns["again"]) == [("numbers", "producer", "thread", 1),
                                              ("triple", "consumer", "thread", 2)]
    assert sorted(shell.user_ns["again_result"].outputs) == [0, 3, 6]
    # --no-run drops the old result: it belonged to the previous pipeline
    ok(shell, "again --no-run", CHAIN)
    assert "again_result" not in shell.user_ns


def test_the_cell_returns_nothing_and_display_text_prints_the_summary(shell, capsys):
    result = ok(shell, "shown --display text", CHAIN)
    assert result.result is None
    out = capsys.readouterr().out
    assert "numbers" in out and "work" in out and "keep" in out and "done" in out


def test_an_error_in_the_cell_shows_the_cells_own_lines(shell, capsys):
    result = cell(shell, "oops --display none", """
        def numbers():
            yield 1

        LIMIT = 1 / 0
    """)
    assert isinstance(result.error_in_exec, ZeroDivisionError)
    out = capsys.readouterr().out
    assert "LIMIT = 1 / 0" in out and "line 5" in out  # the %%minigun line is line 1
    assert PACKAGE_DIR not in out
    assert "oops" not in shell.user_ns


# -- bad input: one sentence naming the fix, and NAME not half-bound -----------------------------
BAD = [
    ("--bogus 3", CHAIN, ["unrecognized arguments: --bogus", "--threads N", "--items EXPR"]),
    ("--threads four", CHAIN, ["--threads", "invalid int value: 'four'", "--no-run"]),
    ("--batch 2.5", CHAIN, ["--batch", "invalid int value: '2.5'"]),
    ("--workers 0 --threads 0", CHAIN, ["unrecognized arguments"]),
    ("--threads 0", CHAIN, ["--threads: 0 is not an int >= 1"]),
    ("--threads 2 --processes 2", CHAIN, ["--threads and --processes given together",
                                          "choose one backend option"]),
    ("--display fancy", CHAIN, ["'fancy' is not a display mode", "text"]),
    ("", "X = 1\nprint(X)\n", ["defines no function", "define the stages as top-level functions"]),
    ("", "def _a():\n    return 1\n", ["only helpers (_a)", "without the leading _"]),
    ("--items not_defined_anywhere", CHAIN, ["--items not_defined_anywhere",
                                             "name 'not_defined_anywhere' is not defined",
                                             "define it"]),
    ("--items range(", CHAIN, ["is not a Python expression"]),
    ("", "def numbers():\n    yield 1\ndef work(x:\n    return x\n",
     ["syntax error at line 4", "def work(x:", "fix that line"]),
    ("", "def target():\n    yield 1\n", ["the function target", "rename"]),
    ("", "def target_result(x):\n    return x\n", ["the function target_result", "its result"]),
    ("--batch 3", "def gen():\n    yield 1\n", ["--batch 3", "gen (line 2), is a producer",
                                                 "drop --batch"]),
]


@pytest.mark.parametrize(("options", "body", "words"), BAD,
                         ids=[f"{o or 'line'}|{b.split(chr(10))[0]}" for o, b, _ in BAD])
def test_bad_input_fails_the_cell_with_one_sentence_and_binds_nothing(
        shell, capsys, options, body, words):
    shell.run_cell("target = 'before'")
    result = shell.run_cell(f"%%minigun target {options}\n{body}")
    assert not result.success
    exc = result.error_in_exec
    assert isinstance(exc, UsageError)
    message = str(exc)
    for word in words:
        assert word in message
    assert "\n" not in message  # one sentence
    assert shell.user_ns["target"] == "before"  # the previous binding is kept
    assert "target_result" not in shell.user_ns
    err = capsys.readouterr().err
    assert f"UsageError: {message}" in err  # IPython shows exactly that, no traceback


def test_bad_input_with_no_previous_binding_leaves_the_name_undefined(shell):
    assert not cell(shell, "fresh --items nope", CHAIN).success
    assert "fresh" not in shell.user_ns and "fresh_result" not in shell.user_ns


def test_a_definition_error_fails_the_cell_with_the_definition_error_itself(shell, capsys):
    ok(shell, "etl --no-run", CHAIN)
    previous = shell.user_ns["etl"]
    cases = [
        ("""
            def numbers():
                yield 1

            @mg.processor(bogus=1)
            def work(x):
                return x
         """, mg.DefinitionError, "unknown option 'bogus'"),
        ("""
            def numbers():
                yield 1

            def work(x, y):
                return x
         """, mg.DefinitionError, "requires 2 parameters"),
        ("""
            def numbers():
                yield 1

            @mg.processor(to="nowhere")
            def work(x):
                return x

            def keep(x):
                return x
         """, mg.UnknownStageError, "'nowhere'"),
        ("""
            def numbers():
                yield 1

            def work(x):  # --tasks needs async def
                return x
         """, mg.DefinitionError, "plain def"),
        ("""
            def numbers():
                yield 1

            def a(x):
                return x

            @mg.processor(to="a")
            def b(x):
                return x
         """, mg.CycleError, "cycle: a -> b -> a"),
        ("""
            def work(x):  # no producer and no --items: found when the run starts
                return x
         """, mg.DefinitionError, "no items were given"),
    ]
    for i, (body, exc_type, words) in enumerate(cases):
        line = "etl --tasks 2" if i == 3 else "etl"
        result = cell(shell, line, body)
        assert isinstance(result.error_in_exec, exc_type), (i, result.error_in_exec)
        assert words in str(result.error_in_exec)
        shown = capsys.readouterr().out
        assert PACKAGE_DIR not in shown and "minigun_nb/" not in shown
        assert shown.splitlines()[0].startswith(f"{exc_type.__name__}: ")  # message first
        assert shell.user_ns["etl"] is previous  # NAME keeps its previous pipeline
        assert "etl_result" not in shell.user_ns


def test_a_run_that_raises_binds_the_new_pipeline_and_no_stale_result(shell):
    ok(shell, "job --display none", CHAIN)
    result = cell(shell, "job --display none", """
        def numbers():
            yield 1

        @mg.processor(on_error="raise")
        def explode(x):
            raise ValueError(f"bad {x}")
    """)
    assert isinstance(result.error_in_exec, mg.StageError)
    assert [s.name for s in shell.user_ns["job"].stages] == ["numbers", "explode"]
    assert "job_result" not in shell.user_ns  # the old result was of the old pipeline


def test_a_definition_error_for_an_undecorated_function_names_its_line(shell):
    result = cell(shell, "etl", """
        def numbers():
            yield 1

        def work(a, b):
            return a
    """)
    exc = result.error_in_exec
    assert isinstance(exc, mg.DefinitionError)
    assert any("work, line 5 of the %%minigun cell" in note for note in exc.__notes__)


@pytest.mark.timeout(120)
def test_the_examples_in_docs_magic_md_run_as_written(shell, capsys):
    import collections
    import re
    import shutil
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "magic.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", doc, re.S)
    assert len(blocks) >= 4
    for block in blocks:
        result = shell.run_cell(block)
        assert result.success, (block, result.error_in_exec)
    ns = shell.user_ns
    assert sum(ns["wordcount_result"].outputs, collections.Counter())["the"] == 6000
    assert sum(ns["etl_result"].outputs) == 190
    assert layout(ns["etl"]) == [("read", "processor", "thread", 8),
                                 ("parse", "processor", "process", 2),
                                 ("store", "consumer", "process", 2)]
    shutil.rmtree(ns["folder"])
    out = capsys.readouterr().out  # --display text printed both summaries
    assert "words" in out and "parse" in out and out.count(" done in ") == 2


# -- the line's parser: the magic and minigun-nb export read lines identically -------------------
LINES = [
    "etl",
    "etl --threads 4 --batch 100 --queue-size 50",
    "etl --processes 2 --items range(10) --display text --no-run",
    "etl --forks 3 --items [a,  b]  --display none",
    "etl --tasks 8 --items {'k': 1}",
    "etl --items=paths --no-run",
    "etl --bogus",
    "etl --threads x",
    "etl --threads 1 --forks 2",
    "1etl",
    "",
    "etl --batch -1",
]


@pytest.mark.parametrize("line", LINES)
def test_parse_line_reads_a_line_exactly_as_the_magic_does(line):
    try:
        expected = from_namespace(parse_argstring(MinigunMagics.minigun, line), line)
    except (UsageError, MagicLineError) as exc:
        with pytest.raises(MagicLineError) as caught:
            parse_line(line)
        assert str(exc).rstrip(".") in str(caught.value)
    else:
        assert parse_line(line) == expected


def test_parse_line_fields():
    assert parse_line("etl --forks 3 --items [a,  b]  --display none --batch 5") == MagicLine(
        name="etl", backend="fork", workers=3, batch=5, queue_size=None, items="[a,  b]",
        display="none", no_run=False)
    assert parse_line("x --no-run --queue-size 9").result_name == "x_result"


def test_plan_cell_kinds_helpers_and_decorators():
    plan = plan_cell(textwrap.dedent("""
        import os
        def gen(n=3):
            yield from range(n)
        def _helper(x):
            return x
        @mg.processor(workers=2)
        def a(x):
            return x
        async def b(x, output=None):
            return x
        class C:
            def method(self, x):
                return x
        @mg.stage
        def c(x):
            return x
        def d(item, *, scale=1):
            return item
    """).lstrip("\n"), line_offset=1)
    assert [(p.name, p.kind, p.decorated, p.is_async) for p in plan] == [
        ("gen", "producer", False, False),
        ("a", "processor", True, False),
        ("b", "processor", False, True),
        ("c", "processor", True, False),
        ("d", "consumer", False, False),
    ]
    assert plan[0].lineno == 3  # counted from the %%minigun line


@pytest.mark.parametrize(("source", "words"), [
    ("x = 1\n", "defines no function"),
    ("def _a():\n    pass\n", "only helpers"),
    ("def f(:\n    pass\n", "syntax error at line 1"),
    ("def f(x):\n    pass\n%time f(1)\n", r"line 3 of the cell is IPython syntax \(%time f\(1\)\)"),
    ("!ls\ndef f(x):\n    pass\n", "move that line to a cell of its own"),
    ("def f(x):\n    pass\ndef f(x):\n    pass\n", "f is defined twice"),
])
def test_plan_cell_rejects_a_cell_without_stages(source, words):
    with pytest.raises(MagicLineError, match=words):
        plan_cell(source)
    assert issubclass(MagicLineError, ValueError)


# -- lazy registration -------------------------------------------------------------------------
def test_the_magic_is_registered_by_load_ext_and_its_help_lists_the_options(shell):
    assert "minigun" in shell.magics_manager.magics["cell"]
    help_text = MinigunMagics.minigun.__doc__
    for option in ("--threads", "--processes", "--forks", "--tasks", "--batch", "--queue-size",
                   "--items", "--display", "--no-run"):
        assert option in help_text


def test_import_minigun_nb_does_not_load_the_magic_or_ipython():
    code = (
        "import sys, minigun_nb, minigun_nb.notebook.magicline\n"
        "print(','.join(m for m in ('IPython', 'minigun_nb.notebook.magic') if m in sys.modules))\n"
        "from IPython.core.interactiveshell import InteractiveShell\n"
        "shell = InteractiveShell.instance()\n"
        "shell.run_line_magic('load_ext', 'minigun_nb')\n"
        "print('minigun' in shell.magics_manager.magics['cell'],\n"
        "      'minigun_nb.notebook.magic' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=50)
    assert out.stdout.splitlines() == ["", "True True"]


# -- a real kernel ------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.timeout(180)
def test_the_magic_in_a_real_jupyter_kernel():
    import nbformat
    from jupyter_client.kernelspec import KernelSpecManager
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    spec = KernelSpecManager().get_kernel_spec("python3")
    # the spec says "python", which jupyter_client replaces by the interpreter running us
    assert spec.argv[0] in ("python", "python3", sys.executable)
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("import sys\nprint(sys.executable)"),
        nbformat.v4.new_code_cell("%load_ext minigun_nb"),
        nbformat.v4.new_code_cell(textwrap.dedent("""\
            %%minigun squares --threads 2 --display text
            def numbers():
                yield from range(5)

            def square(x):
                return x * x
        """)),
        nbformat.v4.new_code_cell(
            "print(type(squares).__name__, sorted(squares_result.outputs), "
            "squares_result.status)"),
        # a definition error: the cell fails with the DefinitionError (tagged so the run goes on)
        nbformat.v4.new_code_cell(
            "%%minigun squares\ndef numbers():\n    yield 1\ndef work(a, b):\n    return a",
            metadata={"tags": ["raises-exception"]}),
        nbformat.v4.new_code_cell("print(sorted(squares_result.outputs))"),
        # bad input fails the cell: the notebook stops there
        nbformat.v4.new_code_cell("%%minigun squares --bogus\ndef f(): pass"),
        nbformat.v4.new_code_cell("print('not reached')"),
    ]
    client = NotebookClient(nb, kernel_name="python3", timeout=60, store_widget_state=False)
    with pytest.raises(CellExecutionError, match="unrecognized arguments: --bogus"):
        client.execute()

    def text(i, name="stdout"):
        return "".join(o.get("text", "") for o in nb.cells[i].outputs
                       if o.output_type == "stream" and o.name == name)

    assert text(0).strip() == sys.executable  # the kernel runs this virtualenv's Python
    assert nb.cells[1].outputs == []
    summary = text(2)
    assert "numbers" in summary and "square" in summary and "done" in summary
    assert not [o for o in nb.cells[2].outputs if o.output_type in ("error", "execute_result")]
    assert text(3).strip() == "Pipeline [0, 1, 4, 9, 16] done"
    (error,) = [o for o in nb.cells[4].outputs if o.output_type == "error"]
    assert error.ename == "DefinitionError" and "requires 2 parameters" in error.evalue
    shown = "\n".join(error.traceback)
    assert PACKAGE_DIR not in shown and "minigun_nb/" not in shown
    assert text(5).strip() == "[0, 1, 4, 9, 16]"  # the previous binding is kept
    assert "unrecognized arguments: --bogus" in text(6, "stderr")
    assert nb.cells[7].get("outputs", []) == []
