"""``minigun-nb run``: a script's runs decide the exit status; summaries are printed."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(120)

JOB = """
import sys
import minigun_nb as mg

limit = int(sys.argv[1]) if len(sys.argv) > 1 else 10
pipe = mg.Pipeline("job")

@pipe.producer
def numbers():
    yield from range(limit)

@pipe.processor(workers=2, on_error={on_error!r})
def check(x):
    if x in {bad}:
        raise ValueError(f"bad {{x}}")
    return x

@pipe.consumer
def keep(x):
    return x

result = pipe.run(display="none")
print("outputs", len(result.outputs))
"""


def minigun_nb(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "minigun_nb.notebook.cli", *args],
        cwd=cwd, capture_output=True, text=True, timeout=100,
    )


def job(tmp_path: Path, bad: set[int] | frozenset[int] = frozenset(), on_error: str = "collect") -> str:
    path = tmp_path / "job.py"
    path.write_text(textwrap.dedent(JOB.format(bad=set(bad) or "set()", on_error=on_error)))
    return str(path)


def test_a_clean_run_exits_0_and_prints_the_summary(tmp_path):
    done = minigun_nb("run", job(tmp_path), "--", "25", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "outputs 25" in done.stdout  # the script got its own arguments
    assert ": done" in done.stdout and "check" in done.stdout and "keep" in done.stdout
    assert "1 run(s), 0 failed or stopped, 0 with errors" in done.stderr


def test_error_rows_exit_1_unless_allowed(tmp_path):
    script = job(tmp_path, bad={3, 4})
    done = minigun_nb("run", script, cwd=tmp_path)
    assert done.returncode == 1
    assert "outputs 8" in done.stdout and "2 error(s)" in done.stdout
    allowed = minigun_nb("run", script, "--allow-errors", cwd=tmp_path)
    assert allowed.returncode == 0, allowed.stderr


def test_a_failed_run_exits_1_with_the_stage_error(tmp_path):
    done = minigun_nb("run", job(tmp_path, bad={3}, on_error="raise"), "--allow-errors", cwd=tmp_path)
    assert done.returncode == 1
    assert "StageError" in done.stderr and "'check'" in done.stderr
    assert ": failed" in done.stdout


def test_a_stopped_run_and_a_run_left_running_count(tmp_path):
    stopped = tmp_path / "stopped.py"
    stopped.write_text(textwrap.dedent("""
        import itertools, time
        import minigun_nb as mg
        pipe = mg.Pipeline("endless")
        pipe.producer(lambda: itertools.count(), name="gen")
        pipe.processor(lambda x: time.sleep(0.001), name="nap")
        handle = pipe.start(display="none")
        time.sleep(0.2)
        handle.stop()  # a drained, partial run: the job did not finish
        handle.wait()
    """))
    done = minigun_nb("run", str(stopped), cwd=tmp_path)
    assert done.returncode == 1 and ": stopped" in done.stdout
    assert "1 run(s), 1 failed or stopped" in done.stderr

    left = tmp_path / "left.py"
    left.write_text(textwrap.dedent("""
        import time
        import minigun_nb as mg
        def bad(x):
            time.sleep(0.01)
            raise ValueError(x)
        mg.Pipeline([mg.processor(bad, name="bad")]).start(items=range(20), display="none")
    """))  # returns while the run goes on: the runner waits for it
    done = minigun_nb("run", str(left), cwd=tmp_path)
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "1 run(s), 0 failed or stopped, 1 with errors" in done.stderr


def test_usage_errors_exit_2(tmp_path):
    assert minigun_nb("run", str(tmp_path / "missing.py"), cwd=tmp_path).returncode == 2
    notebook = tmp_path / "n.ipynb"
    notebook.write_text("{}")
    done = minigun_nb("run", str(notebook), cwd=tmp_path)
    # the notebook runner exists now: "{}" is no notebook, said in one line
    assert done.returncode == 2 and "is not a Jupyter notebook" in done.stderr
    assert "Traceback" not in done.stderr
    assert minigun_nb("export", str(notebook), cwd=tmp_path).returncode == 2


def test_the_console_script_is_installed():
    exe = Path(sys.executable).with_name("minigun-nb")
    if os.name != "posix" or not exe.exists():
        pytest.fail(f"the console script is missing next to {sys.executable}")
    done = subprocess.run([str(exe), "--version"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.startswith("minigun_nb ")
