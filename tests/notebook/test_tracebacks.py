"""Definition errors in a notebook: the message first, and no frame from inside minigun_nb
(issue 15 finding 18; SPEC section 13). Checked on what IPython's own shell prints for a cell,
without loading the %%minigun extension (plain API cells)."""

from __future__ import annotations

import os
import re
import textwrap

import pytest
from IPython.core.interactiveshell import InteractiveShell

import minigun_nb as mg
from minigun_nb.notebook.tracebacks import PACKAGE_DIR, render_traceback

pytestmark = pytest.mark.timeout(60)

ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.fixture
def shell():
    sh = InteractiveShell.instance()
    sh.run_line_magic("colors", "nocolor")
    sh.run_line_magic("xmode", "Context")
    before = set(sh.user_ns)
    sh.run_cell("import minigun_nb as mg\npipe = mg.Pipeline('p')")
    yield sh
    for name in set(sh.user_ns) - before:
        del sh.user_ns[name]


def shown(shell, capsys, source):
    """Run a cell; return (the exception it failed with, the traceback text IPython printed)."""
    capsys.readouterr()
    result = shell.run_cell(textwrap.dedent(source).lstrip("\n"))
    assert not result.success
    return result.error_in_exec, ANSI.sub("", capsys.readouterr().out)


def assert_clean(exc, out, exc_type):
    """The DefinitionError is shown, first, and no frame of the package is."""
    assert isinstance(exc, exc_type)
    lines = out.splitlines()
    assert lines[0] == f"{type(exc).__name__}: {exc}"  # the message comes first
    assert f"{type(exc).__name__}: {exc}" in lines[-1]  # and where IPython always puts it
    assert PACKAGE_DIR not in out
    assert "minigun_nb" + os.sep not in out
    assert "contextlib.py" not in out  # `with pipe.pipeline(...)` enters through contextlib
    assert "Cell In[" in out  # the user's own line is shown


CASES = {
    "bad signature": ("""
        @pipe.processor
        def add(a, b):
            return a + b
    """, mg.DefinitionError, "requires 2 parameters (a, b)", "@pipe.processor"),
    "unknown option": ("""
        @pipe.processor(worker=4)
        def work(x):
            return x
    """, mg.DefinitionError, "unknown option 'worker'", "@pipe.processor(worker=4)"),
    "cycle": ("""
        @pipe.producer
        def gen():
            yield 1
        @pipe.processor
        def a(x):
            return x
        @pipe.processor(to="a")
        def b(x):
            return x
    """, mg.CycleError, "cycle: a -> b -> a", '@pipe.processor(to="a")'),
    "nested pipeline option": ("""
        with pipe.pipeline("inner", bogus=1):
            pass
    """, mg.DefinitionError, "unknown option 'bogus'", 'with pipe.pipeline("inner", bogus=1):'),
    "unknown to= at run": ("""
        @pipe.producer
        def gen():
            yield 1
        @pipe.processor(to="nowhere")
        def work(x):
            return x
        pipe.run(display="none")
    """, mg.UnknownStageError, "'nowhere'", 'pipe.run(display="none")'),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_definition_error_shows_its_message_and_no_package_frame(shell, capsys, case):
    source, exc_type, words, user_line = CASES[case]
    exc, out = shown(shell, capsys, source)
    assert words in str(exc)
    assert_clean(exc, out, exc_type)
    arrows = [line for line in out.splitlines() if line.lstrip().startswith("---->")]
    assert len(arrows) == 1 and user_line in arrows[0]  # one frame: the user's line


def test_the_raw_traceback_does_have_package_frames_that_the_shown_one_hides(shell, capsys):
    # what IPython would print without the hook: the frames this feature leaves out exist
    exc, out = shown(shell, capsys, CASES["bad signature"][0])
    raw = "".join(shell.InteractiveTB.structured_traceback(type(exc), exc, exc.__traceback__))
    assert PACKAGE_DIR in ANSI.sub("", raw)
    assert PACKAGE_DIR not in out
    # showing it did not change the exception: %debug and traceback.print_exc see everything
    frames = []
    tb = exc.__traceback__
    while tb is not None:
        frames.append(tb.tb_frame.f_code.co_filename)
        tb = tb.tb_next
    assert any(f.startswith(PACKAGE_DIR) for f in frames)


def test_the_users_own_frames_in_between_are_kept(shell, capsys):
    exc, out = shown(shell, capsys, """
        def make_stage(fn):
            return pipe.processor(fn, bogus=True)

        def double(x):
            return 2 * x

        make_stage(double)
    """)
    assert_clean(exc, out, mg.DefinitionError)
    assert "make_stage(double)" in out and "return pipe.processor(fn, bogus=True)" in out


def test_the_cause_of_a_definition_error_is_shown_without_package_frames(shell, capsys):
    exc, out = shown(shell, capsys, """
        import threading
        lock = threading.Lock()

        @pipe.processor(backend="process")
        def locked(x):
            with lock:
                return x
    """)
    assert_clean(exc, out, mg.DefinitionError)
    assert exc.__cause__ is not None
    assert type(exc.__cause__).__name__ in out  # the pickling error is still explained
    assert "The above exception was the direct cause" in out


@pytest.mark.parametrize("mode", ["Plain", "Verbose", "Minimal"])
def test_every_xmode_hides_the_package_frames(shell, capsys, mode):
    shell.run_line_magic("xmode", mode)
    try:
        exc, out = shown(shell, capsys, CASES["unknown option"][0])
    finally:
        shell.run_line_magic("xmode", "Context")
    assert isinstance(exc, mg.DefinitionError)
    assert out.splitlines()[0] == f"DefinitionError: {exc}"
    assert PACKAGE_DIR not in out


def test_the_cell_magic_definition_error_has_no_package_frame(shell, capsys):
    shell.extension_manager.load_extension("minigun_nb")
    exc, out = shown(shell, capsys, """
        %%minigun etl --threads 2
        def gen():
            yield 1

        @mg.processor(retries=-1)
        def work(x):
            return x
    """)
    assert_clean(exc, out, mg.DefinitionError)
    assert "@mg.processor(retries=-1)" in out  # the cell's own line, shown with an arrow
    assert "etl" not in shell.user_ns


def test_rendering_never_fails_even_outside_a_shell(monkeypatch):
    import IPython

    monkeypatch.setattr(IPython, "get_ipython", lambda: None)
    try:
        mg.Pipeline("x").processor(lambda a, b: a, name="two")
    except mg.DefinitionError as exc:
        lines = render_traceback(exc)
    text = "\n".join(lines)
    assert lines[0].startswith("DefinitionError: stage 'two'")
    assert "Traceback (most recent call last)" in text  # the plain, complete traceback


def test_the_magic_cuts_the_exceptions_own_traceback_to_the_users_frames(shell):
    # a tool that formats exc.__traceback__ itself (not through IPython's display) sees the
    # cell's line and no package frame either
    shell.extension_manager.load_extension("minigun_nb")
    with pytest.raises(mg.DefinitionError) as info:
        shell.run_cell_magic("minigun", "etl", "def gen():\n    yield 1\n"
                             "@mg.processor(bogus=1)\ndef f(x):\n    return x\n")
    exc = info.value
    text = ANSI.sub("", "".join(
        shell.InteractiveTB.structured_traceback(type(exc), exc, exc.__traceback__)))
    assert "----> 4 @mg.processor(bogus=1)" in text
    assert PACKAGE_DIR not in text
