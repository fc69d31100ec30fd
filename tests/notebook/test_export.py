"""``minigun-nb export``: a notebook becomes a plain script that runs like the notebook."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import nbformat
import nbformat.v4 as v4
import pytest

pytestmark = pytest.mark.timeout(120)

PARAMS = "limit = 10\nlabel = 'sq'\nfactor: float = 1.5\npaths = sorted(['b', 'a'])"
MAGICS = textwrap.dedent("""\
    %load_ext minigun_nb
    import json
    !echo from-the-shell
    files = !ls
    x = 1
    if x:
        %time y = 2
    text = '''
    %not a magic
    !nor a shell line
    '''
""")
PIPE = textwrap.dedent("""\
    %%minigun sq --threads 2 --batch 3 --queue-size 50 --items range(limit) --display none
    import minigun_nb as mg

    def _helper(v):
        return v * factor

    def square(x):
        return _helper(x * x)

    @mg.processor(workers=3)
    def plus(x):
        return x + 1

    def keep(batch):
        return sum(batch)
""")
REPORT = textwrap.dedent("""\
    outputs = sorted(sq_result.outputs)
    display(outputs)
    print("RESULT", json.dumps({"label": label, "outputs": outputs, "text": text}))
""")


def write_notebook(path: Path, cells: list) -> Path:
    nbformat.write(v4.new_notebook(cells=cells), str(path))
    return path


def job_notebook(tmp_path: Path, name: str = "job.ipynb") -> Path:
    return write_notebook(tmp_path / name, [
        v4.new_markdown_cell("# Squares\nA *small* job."),
        v4.new_code_cell(PARAMS, metadata={"tags": ["parameters"]}),
        v4.new_code_cell(MAGICS),
        v4.new_code_cell(PIPE),
        v4.new_code_cell(REPORT),
        v4.new_code_cell("%%bash\necho hello"),
    ])


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "minigun_nb.notebook.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=100)


def python(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=100)


def result_of(stdout: str) -> dict:
    lines = [line for line in stdout.splitlines() if line.startswith("RESULT ")]
    assert len(lines) == 1, stdout
    return json.loads(lines[0][len("RESULT "):])


def expected(limit: int, factor: float = 1.5) -> list[float]:
    """What the notebook computes, in plain Python: batches of 3 of (x*x*factor + 1)."""
    return sorted(x * x * factor + 1 for x in range(limit))


def test_export_writes_the_script_beside_the_notebook(tmp_path):
    nb = job_notebook(tmp_path)
    done = cli("export", str(nb), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    script = tmp_path / "job.py"
    assert script.is_file()
    assert "wrote" in done.stderr and "--limit" in done.stderr
    other = cli("export", str(nb), "-o", str(tmp_path / "other.py"), cwd=tmp_path)
    assert other.returncode == 0 and (tmp_path / "other.py").is_file()


def test_a_minigun_cell_becomes_readable_api_code(tmp_path):
    cli("export", str(job_notebook(tmp_path)), cwd=tmp_path)
    text = (tmp_path / "job.py").read_text()
    assert text.count("import minigun_nb as mg\n") >= 1
    assert 'sq = mg.Pipeline("sq", queue_size=50)' in text
    # the magic's rules: line options on processors and consumers, helpers left alone,
    # a decorated function keeps its options (the line fills in the rest) and is added
    assert '    @sq.processor(backend="thread", workers=2)\n    def square(x):' in text
    assert "@sq.producer" not in text and "def _helper(v):\n" in text
    assert '@mg.processor(workers=3, backend="thread")\n    def plus(x):' in text
    assert "    sq.add(plus)\n" in text
    # --batch N: a batch before the last stage; --items: items=; --display left to the runner
    assert text.index("sq.batch(3)") < text.index('@sq.consumer(backend="thread", workers=2)')
    assert "    sq_result = sq.run(items=range(limit))\n" in text
    assert "display=" not in text.split("if __name__")[1]
    assert "run_cell" not in text and "%%minigun sq" not in text.replace("# %%minigun sq", "")


def test_the_script_gives_the_notebooks_results(tmp_path):
    cli("export", str(job_notebook(tmp_path)), cwd=tmp_path)
    done = python("job.py", "--limit", "3", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    got = result_of(done.stdout)
    values = expected(3)  # one batch of three items: its sum
    assert got["outputs"] == [sum(values)]
    assert got["label"] == "sq"
    assert got["text"] == "\n%not a magic\n!nor a shell line\n"  # strings untouched
    assert f"[{sum(values)}]" in done.stdout  # display() printed the list's text form
    default = python("job.py", cwd=tmp_path)
    assert default.returncode == 0, default.stderr
    batches = result_of(default.stdout)["outputs"]
    assert sum(batches) == pytest.approx(sum(expected(10))) and len(batches) == 4


def test_the_script_agrees_with_the_magic_in_an_ipython_shell(tmp_path):
    """The same notebook run cell by cell through IPython (the %%minigun magic itself)."""
    nb = job_notebook(tmp_path)
    runner = tmp_path / "shell.py"
    runner.write_text(textwrap.dedent(f"""
        import nbformat
        from IPython.core.interactiveshell import InteractiveShell
        shell = InteractiveShell.instance()
        for cell in nbformat.read({str(nb)!r}, 4).cells:
            if cell.cell_type == "code" and not cell.source.startswith("%%bash"):
                shell.run_cell(cell.source, store_history=True).raise_error()
                if "parameters" in cell.metadata.get("tags", []):  # as -p limit=3 would
                    shell.run_cell("limit = 3").raise_error()
    """))
    magic = python(str(runner), cwd=tmp_path)
    assert magic.returncode == 0, magic.stderr
    cli("export", str(nb), cwd=tmp_path)
    script = python("job.py", "--limit", "3", cwd=tmp_path)
    assert result_of(script.stdout) == result_of(magic.stdout)


def test_markdown_magics_and_shell_lines_become_comments(tmp_path):
    cli("export", str(job_notebook(tmp_path)), cwd=tmp_path)
    text = (tmp_path / "job.py").read_text()
    assert "    # # Squares\n    # A *small* job.\n" in text
    for line in ("%load_ext minigun_nb", "!echo from-the-shell", "files = !ls"):
        assert f"    # {line}  # IPython-only, not run in the script\n" in text
    assert "        pass  # %time y = 2  # IPython-only" in text  # the if block stays valid
    assert "# %%bash  # IPython-only" in text and "    # echo hello\n" in text
    done = python("job.py", "--limit", "1", cwd=tmp_path)
    assert "from-the-shell" not in done.stdout and "hello" not in done.stdout


def test_parameters_become_options_with_help_and_defaults(tmp_path):
    done = cli("export", str(job_notebook(tmp_path)), cwd=tmp_path)
    # the non-literal assignment: said at export, kept as code, no option
    assert "paths" in done.stderr and "not a literal" in done.stderr
    text = (tmp_path / "job.py").read_text()
    assert "    paths = sorted(['b', 'a'])\n" in text and "not a literal" in text
    helped = python("job.py", "--help", cwd=tmp_path)
    assert helped.returncode == 0
    for option, default in (("--limit", "10"), ("--label", "'sq'"), ("--factor", "1.5")):
        assert option in helped.stdout and f"(default: {default})" in helped.stdout
    assert "--paths" not in helped.stdout
    unknown = python("job.py", "--limt", "3", cwd=tmp_path)
    assert unknown.returncode == 2 and "--limt" in unknown.stderr
    assert "--limit" in unknown.stderr and "Traceback" not in unknown.stderr
    bad = python("job.py", "--limit", "[3", cwd=tmp_path)
    assert bad.returncode == 2 and "not a Python literal" in bad.stderr
    word = python("job.py", "--limit", "2", "--label", "daily", cwd=tmp_path)
    assert result_of(word.stdout)["label"] == "daily"  # a plain word is a string


@pytest.mark.parametrize(("text", "value"), [
    ("3", 3), ("-2.5", -2.5), ("True", True), ("None", None), ("'a b'", "a b"),
    ("[1, 2]", [1, 2]), ("{'k': 1}", {"k": 1}), ("daily", "daily"), ("2024-01-31", "2024-01-31"),
])
def test_values_are_python_literals_or_plain_words(text, value):
    from minigun_nb.notebook.params import parse_value

    assert parse_value(text) == value


@pytest.mark.parametrize("text", ["[1, 2", "{'a':", "'open", "(1,"])
def test_a_value_that_looks_like_a_literal_but_does_not_parse_is_refused(text):
    from minigun_nb.notebook.params import ParameterError, parse_value

    with pytest.raises(ParameterError, match="not a Python literal"):
        parse_value(text)


def test_export_never_runs_notebook_code(tmp_path):
    marker = tmp_path / "ran.txt"
    nb = write_notebook(tmp_path / "side.ipynb", [
        v4.new_code_cell(f"open({str(marker)!r}, 'w').write('x')\nraise SystemExit(3)"),
        v4.new_code_cell("%%minigun p --items [1]\ndef f(x):\n    open('also.txt', 'w')"),
    ])
    done = cli("export", str(nb), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert not marker.exists() and not (tmp_path / "also.txt").exists()


def test_the_body_runs_only_as_main_so_workers_can_import_the_script(tmp_path):
    cli("export", str(job_notebook(tmp_path)), cwd=tmp_path)
    imported = python("-c", "import runpy; g = runpy.run_path('job.py', run_name='__mp_main__');"
                      " print('names', sorted(k for k in g if not k.startswith('__')))",
                      cwd=tmp_path)
    assert imported.returncode == 0, imported.stderr
    assert "RESULT" not in imported.stdout and "names ['display', 'mg'" in imported.stdout


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_a_dask_stage_works_in_the_exported_script(tmp_path):
    pytest.importorskip("distributed")
    nb = write_notebook(tmp_path / "dask_job.ipynb", [
        v4.new_code_cell("n = 4", metadata={"tags": ["parameters"]}),
        v4.new_code_cell("%%minigun d --items range(n)\nimport minigun_nb as mg\n\n"
                         "@mg.processor(backend='dask', workers=1)\ndef triple(x):\n"
                         "    return 3 * x\n\ndef keep(x):\n    return x"),
        v4.new_code_cell("print('RESULT', sorted(d_result.outputs), d_result.status)"),
    ])
    assert cli("export", str(nb), cwd=tmp_path).returncode == 0
    done = python("dask_job.py", "--n", "5", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "RESULT [0, 3, 6, 9, 12] done" in done.stdout
    assert "bootstrapping phase" not in done.stderr


@pytest.mark.parametrize(("content", "says"), [
    (None, "no such notebook"),
    ("this is not json", "not valid JSON"),
    ("{}", "no list of cells"),
])
def test_bad_notebooks_get_one_line_and_status_2(tmp_path, content, says):
    path = tmp_path / "bad.ipynb"
    if content is not None:
        path.write_text(content)
    done = cli("export", str(path), cwd=tmp_path)
    assert done.returncode == 2
    assert says in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_export_refuses_a_missing_folder_a_syntax_error_and_a_bad_magic_line(tmp_path):
    nb = job_notebook(tmp_path)
    done = cli("export", str(nb), "-o", str(tmp_path / "nowhere" / "job.py"), cwd=tmp_path)
    assert done.returncode == 2 and "does not exist" in done.stderr
    broken = write_notebook(tmp_path / "broken.ipynb", [v4.new_code_cell("x = 1"),
                                                         v4.new_code_cell("def f(:\n    pass")])
    done = cli("export", str(broken), cwd=tmp_path)
    assert done.returncode == 2 and "cell 2 has a syntax error" in done.stderr
    awaits = write_notebook(tmp_path / "awaits.ipynb", [
        v4.new_code_cell("import asyncio\nawait asyncio.sleep(0)")])
    done = cli("export", str(awaits), cwd=tmp_path)
    assert done.returncode == 2 and "await at the top level" in done.stderr
    magic = write_notebook(tmp_path / "magic.ipynb",
                           [v4.new_code_cell("%%minigun p --threads x\ndef f(x):\n    pass")])
    done = cli("export", str(magic), cwd=tmp_path)
    assert done.returncode == 2 and "%%minigun" in done.stderr and "--threads" in done.stderr
    assert "Traceback" not in done.stderr


TUTORIALS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("0*.ipynb"))


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("tutorial", TUTORIALS, ids=[t.stem for t in TUTORIALS])
def test_each_tutorials_script_reproduces_the_notebooks_checked_outputs(tmp_path, tutorial):
    """Issue 14: the exported script of each tutorial runs with `python job.py` and prints
    what the saved notebook shows in its deterministic cells (tagged nbval-check-output)."""
    script = tmp_path / f"{tutorial.stem}.py"
    assert cli("export", str(tutorial), "-o", str(script), cwd=tmp_path).returncode == 0
    done = subprocess.run([sys.executable, str(script)], cwd=tutorial.parent,
                          capture_output=True, text=True, timeout=280)
    assert done.returncode == 0, done.stderr[-3000:]
    checked = [o.text for cell in nbformat.read(str(tutorial), 4).cells
               if "nbval-check-output" in cell.metadata.get("tags", [])
               for o in cell.get("outputs", [])
               if o.output_type == "stream" and o.name == "stdout"]
    assert checked, "the tutorial has no checked output to compare"
    missing = [text for text in checked if text not in done.stdout]
    assert missing == [], done.stdout[-3000:]
