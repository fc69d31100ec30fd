"""A script that runs a dask stage without the ``__main__`` guard gets a clear error before
anything runs (issue 15, finding 16)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("distributed")
pytestmark = pytest.mark.timeout(120)

BODY = """
import minigun_nb as mg

def double(x):
    return 2 * x

pipe = mg.Pipeline([mg.processor(double, backend="dask", workers=1)])
"""


def run_script(tmp_path, text):
    path = tmp_path / "job.py"
    path.write_text(textwrap.dedent(text))
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": ""}
    return subprocess.run([sys.executable, str(path)], capture_output=True, text=True,
                          timeout=100, cwd=tmp_path, env=env)


def test_an_unguarded_dask_script_fails_first_with_a_message_naming_the_guard(tmp_path):
    done = run_script(tmp_path, BODY + "\nresult = pipe.run(items=[1, 2], display='none')\n"
                      "print('outputs', sorted(result.outputs))\n")
    assert done.returncode != 0
    assert "DefinitionError" in done.stderr
    assert 'if __name__ == "__main__":' in done.stderr
    assert "bootstrapping phase" not in done.stderr
    assert "outputs" not in done.stdout


def test_an_unguarded_call_through_a_function_is_caught_too(tmp_path):
    done = run_script(tmp_path, BODY + "\ndef main():\n    pipe.run(items=[1], display='none')\n"
                      "\nmain()\n")
    assert done.returncode != 0
    assert 'if __name__ == "__main__":' in done.stderr


@pytest.mark.slow
def test_a_guarded_dask_script_runs(tmp_path):
    done = run_script(tmp_path, BODY + "\nif __name__ == '__main__':\n"
                      "    result = pipe.run(items=[1, 2], display='none')\n"
                      "    print('outputs', sorted(result.outputs))\n")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "outputs [2, 4]" in done.stdout
