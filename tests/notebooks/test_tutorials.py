"""The tutorials in notebooks/: what nbval cannot see, and Binder.

nbval (``make test``'s separate ``--nbval-lax`` invocation) executes every tutorial and
compares the cells tagged ``nbval-check-output``. These tests check the rest: the six are
there in SPEC §13 order, each saved notebook was built from its current source and saved
with its outputs (the static dashboard, no widget state, no error), each tells the reader
about ``result.stats`` and ``result.errors`` and ends with what to try next; the sanitize
patterns do what they say; and the quickstart runs in a fresh virtualenv made from exactly
the ``binder/`` files.
"""

from __future__ import annotations

import configparser
import importlib.util
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
BINDER = ROOT / "binder"

#: SPEC §13: quickstart; routing, fan-out and nesting; processes, forks and async; pandas
#: batches; errors, retries and re-driving failed items; from notebook to cron
TUTORIALS = [
    "01_quickstart",
    "02_routing_fanout_nesting",
    "03_processes_forks_async",
    "04_pandas_batches",
    "05_errors_retries_redriving",
    "06_notebook_to_cron",
]

DASHBOARD = "data:image/svg+xml;base64,"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def _build_module():
    spec = importlib.util.spec_from_file_location("notebooks_build", NOTEBOOKS / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _saved(name: str) -> nbformat.NotebookNode:
    return nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)


def _code(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


def test_six_tutorials_in_spec_order():
    build = _build_module()
    assert [p.stem for p in build.sources()] == TUTORIALS
    assert sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb")) == TUTORIALS


@pytest.mark.parametrize("name", TUTORIALS)
def test_saved_notebook_is_built_from_its_source(name):
    """A source edited without `make notebooks` leaves a stale notebook: caught here."""
    built = _build_module().make_notebook(NOTEBOOKS / "src" / f"{name}.md")
    saved = _saved(name)
    assert [(c.cell_type, c.source, c.metadata.get("tags", [])) for c in saved.cells] == \
        [(c.cell_type, c.source, c.metadata.get("tags", [])) for c in built.cells]
    assert saved.metadata["kernelspec"]["name"] == "python3"


@pytest.mark.parametrize("name", TUTORIALS)
def test_saved_with_outputs_and_no_widget_state(name):
    nb = _saved(name)
    code = _code(nb)
    # executed top to bottom in one kernel: execution counts 1..n
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1))
    assert "widgets" not in nb.metadata  # store_widget_state=False
    outputs = [o for c in code for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert not [o for o in outputs if WIDGET_VIEW in o.get("data", {})], \
        "a live widget was saved: the run's end must replace it by the static dashboard"
    dashboards = [o for o in outputs if DASHBOARD in o.get("data", {}).get("text/html", "")
                  and "<table" in o["data"]["text/html"]]
    assert dashboards, "no static dashboard (result.to_html()) in the saved notebook"
    for out in dashboards:
        # the summary is the text form next to it
        assert "done" in out["data"]["text/plain"]


@pytest.mark.parametrize("name", TUTORIALS)
def test_each_tutorial_tells_its_story_to_the_end(name):
    nb = _saved(name)
    code = "\n".join(c.source for c in _code(nb))
    assert ".stats" in code and ".errors" in code
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")
    last = nb.cells[-1]
    assert last.cell_type == "markdown" and last.source.startswith("## What to try next")
    # nbval --nbval-lax compares only these: each tutorial checks some of its results
    checked = [c for c in _code(nb) if "nbval-check-output" in c.metadata.get("tags", [])]
    assert len(checked) >= 2
    for cell in checked:
        assert cell.outputs, f"a checked cell with no output to compare: {cell.source[:60]!r}"


@pytest.mark.parametrize("name", TUTORIALS)
def test_no_network(name):
    code = "\n".join(c.source for c in _code(_saved(name)))
    assert not re.search(r"https?://|urllib|requests\.get|socket\.", code)


@pytest.mark.parametrize("name", ["01_quickstart", "06_notebook_to_cron"])
def test_magic_tutorials_use_minigun_cells(name):
    code = [c.source for c in _code(_saved(name))]
    assert "%load_ext minigun_nb" in code
    assert any(src.startswith("%%minigun ") for src in code)


def test_cron_tutorial_has_parameters_export_run_cron_and_systemd():
    nb = _saved("06_notebook_to_cron")
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    text = "\n".join(c.source for c in nb.cells)
    for needed in ("!minigun-nb export", "!minigun-nb run", " -p ", "--log-json",
                   "OnCalendar=", "[Timer]", "* * *"):
        assert needed in text
    streams = "".join(o.get("text", "") for c in _code(nb) for o in c.outputs)
    assert "exit status: 0" in streams and "exit status: 2" in streams
    assert '"event": "run_finished"' in streams


def _sanitize(text: str) -> str:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(NOTEBOOKS / "nbval_sanitize.cfg")
    for section in parser.sections():
        text = re.sub(parser[section]["regex"], parser[section]["replace"], text)
    return text


def test_sanitize_patterns_hide_what_changes_between_runs():
    first = ("run c42b698a done in 5.91s: 336 done · parse 36.8 items/s, p50 45.3 ms · "
             "mg-sq-sq-0 pid=1151 at 2026-12-06 21:28:41.667313 · 0x7fc3ff235620 · 12 MB · "
             "/tmp/ipykernel_16363/116610277.py · /tmp/minigun-taxi-abc/trips.csv")
    second = ("run 0b1ffe2a done in 0.07s: 336 done · parse 1,204/s, p50 0.002 ms · "
              "mg-sq-sq-0 pid=77 at 2027-01-02 03:04:05.000001 · 0x55d0c0ffee00 · 3 MB · "
              "/tmp/ipykernel_2/99.py · /tmp/minigun-taxi-xyz/trips.csv")
    assert _sanitize(first) == _sanitize(second)
    # what the checked cells print stays readable: counts, names and booleans are kept
    kept = "pipeline == plain Python: True · 293119 rows kept of 300000 · 27 lines re-driven"
    assert _sanitize(kept) == kept


def _run(cmd, **kwargs):
    done = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    assert done.returncode == 0, f"{cmd}: exit {done.returncode}\n{done.stdout[-3000:]}\n" \
                                 f"{done.stderr[-3000:]}"
    return done


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_binder_environment_runs_the_quickstart(tmp_path):
    """A fresh virtualenv from exactly binder/ (requirements, then postBuild) runs 01."""
    venv = tmp_path / "binder-venv"
    _run([sys.executable, "-m", "venv", str(venv)])
    bindir = venv / "bin"
    python = bindir / "python"
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}",
           "VIRTUAL_ENV": str(venv), "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    env.pop("PYTHONPATH", None)
    _run([str(python), "-m", "pip", "install", "-q", "-r", str(BINDER / "requirements.txt")],
         env=env, cwd=ROOT)
    _run(["bash", str(BINDER / "postBuild")], env=env, cwd=ROOT)  # as repo2docker does
    # JupyterLab and the package came from those files, into that environment only
    _run([str(bindir / "jupyter-lab"), "--version"], env=env)
    check = _run([str(python), "-c", "import minigun_nb, jupyterlab; print(minigun_nb.__file__)"],
                 env=env, cwd=tmp_path)
    assert Path(check.stdout.strip()).is_relative_to(ROOT)
    script = textwrap.dedent(f"""
        import nbformat
        from nbclient import NotebookClient
        nb = nbformat.read({str(NOTEBOOKS / "01_quickstart.ipynb")!r}, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                cell.outputs = []
        nb.cells.append(nbformat.v4.new_code_cell(
            "import sys; print('kernel python:', sys.executable)"))
        NotebookClient(nb, kernel_name="python3", timeout=600, store_widget_state=False,
                       resources={{"metadata": {{"path": {str(NOTEBOOKS)!r}}}}}).execute()
        texts = [o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs]
        print("".join(texts))
    """)
    ran = _run([str(python), "-c", script], env=env, cwd=tmp_path)
    assert "pipeline == plain Python: True" in ran.stdout
    assert f"kernel python: {python}" in ran.stdout
