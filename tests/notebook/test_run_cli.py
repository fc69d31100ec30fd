"""``minigun-nb run``: notebooks and scripts headless, parameters, exit codes, interrupts."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import nbformat
import nbformat.v4 as v4
import pytest

pytestmark = pytest.mark.timeout(120)

PIPE = textwrap.dedent("""\
    import minigun_nb as mg

    pipe = mg.Pipeline("job")

    @pipe.producer
    def numbers():
        yield from range(limit)

    @pipe.processor(workers=2)
    def check(x):
        if x in bad:
            raise ValueError(f"bad {x}")
        return x

    @pipe.consumer
    def keep(x):
        return x

    result = pipe.run()
    print("OUTPUTS", len(result.outputs))
""")


def notebook(tmp_path: Path, *cells: str, params: str = "limit = 10\nbad = []",
             name: str = "job.ipynb") -> Path:
    nb = v4.new_notebook(cells=[v4.new_code_cell(params, metadata={"tags": ["parameters"]}),
                                *[v4.new_code_cell(c) for c in cells]])
    path = tmp_path / name
    nbformat.write(nb, str(path))
    return path


def cli(*args: str, cwd: Path, timeout: float = 100) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "minigun_nb.notebook.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


def summaries(stdout: str) -> list[str]:
    """The totals line of each summary table printed."""
    return re.findall(r"^run (\w+) (?:done|failed|stopped|cancelled) in ", stdout, re.M)


def test_a_notebook_runs_in_process_with_each_summary_once(tmp_path):
    nb = notebook(tmp_path, PIPE, "again = pipe.run()\nprint('AGAIN', len(again.outputs))")
    done = cli("run", str(nb), "-p", "limit=7", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "OUTPUTS 7" in done.stdout and "AGAIN 7" in done.stdout
    ids = summaries(done.stdout)
    assert len(ids) == 2 and len(set(ids)) == 2  # two runs, one summary each
    for run_id in ids:
        assert f"minigun-nb: run {run_id} (job): done" in done.stdout
    # the text display: a status line per run (the final one at least) on stderr
    assert len(re.findall(r"^job: 7 done, 0 failed, [\d,]+/s, \d\d:\d\d \(done\)$",
                          done.stderr, re.M)) == 2
    assert "2 run(s), 0 failed or stopped, 0 with errors" in done.stderr


def test_error_rows_are_shown_and_make_status_1_unless_allowed(tmp_path):
    nb = notebook(tmp_path, PIPE)
    done = cli("run", str(nb), "-p", "bad=[3,4,5,6,7,8,9]", cwd=tmp_path)
    assert done.returncode == 1
    assert "OUTPUTS 3" in done.stdout and len(summaries(done.stdout)) == 1
    assert re.search(r"minigun-nb: run \w+ \(job\): done, 7 error\(s\):", done.stdout)
    # the first five rows (in the order they failed): stage, item repr, type, message
    rows = re.findall(r"^  check  item (\d+)  ValueError: bad (\d+)$", done.stdout, re.M)
    assert len(rows) == 5 and all(a == b and 3 <= int(a) <= 9 for a, b in rows)
    assert "... and 2 more error(s)" in done.stdout
    allowed = cli("run", str(nb), "-p", "bad=[3]", "--allow-errors", cwd=tmp_path)
    assert allowed.returncode == 0, allowed.stderr
    assert "  check  item 3  ValueError: bad 3" in allowed.stdout


def test_code_that_raises_exits_1_with_its_traceback_and_one_line(tmp_path):
    nb = notebook(tmp_path, "x = 1", "def step():\n    raise RuntimeError('boom')\nstep()")
    done = cli("run", str(nb), cwd=tmp_path)
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-2:]
    assert any(line.startswith("minigun-nb: ") and "raised RuntimeError: boom (in cell 3)"
               in line for line in last), done.stderr
    assert "raise RuntimeError('boom')" in done.stderr  # the user's line
    assert "runpy" not in done.stderr and "cli.py" not in done.stderr


def test_a_failed_run_exits_1(tmp_path):
    failing = PIPE.replace("@pipe.processor(workers=2)", "@pipe.processor(on_error='raise')")
    done = cli("run", str(notebook(tmp_path, failing)), "-p", "bad=[2]", cwd=tmp_path)
    assert done.returncode == 1
    assert "StageError" in done.stderr and ": failed" in done.stdout


@pytest.mark.parametrize(("args", "says"), [
    (["-p", "limt=3"], "unknown parameter; the parameters of"),
    (["-p", "limit"], "write -p NAME=VALUE"),
    (["-p", "limit=[3"], "not a Python literal"),
    (["--output", "missing/out.ipynb"], "does not exist"),
])
def test_usage_errors_get_one_line_and_status_2(tmp_path, args, says):
    done = cli("run", str(notebook(tmp_path, PIPE)), *args, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert says in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    if "limt" in args[-1]:
        assert "limit, bad" in done.stderr  # the known ones are listed


def test_bad_targets_exit_2(tmp_path):
    assert cli("run", "nope.ipynb", cwd=tmp_path).returncode == 2
    (tmp_path / "x.ipynb").write_text("not json")
    done = cli("run", "x.ipynb", cwd=tmp_path)
    assert done.returncode == 2 and "not valid JSON" in done.stderr
    script = tmp_path / "plain.py"
    script.write_text("print('hi')\n")
    done = cli("run", str(script), "-p", "a=1", cwd=tmp_path)
    assert done.returncode == 2 and "takes no parameters" in done.stderr
    done = cli("run", str(script), "--output", str(tmp_path / "o.ipynb"), cwd=tmp_path)
    assert done.returncode == 2 and "needs a notebook" in done.stderr


def test_an_exported_script_takes_p_and_its_own_options(tmp_path):
    nb = notebook(tmp_path, PIPE)
    assert cli("export", str(nb), cwd=tmp_path).returncode == 0
    done = cli("run", "job.py", "-p", "limit=4", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "OUTPUTS 4" in done.stdout and len(summaries(done.stdout)) == 1
    unknown = cli("run", "job.py", "-p", "nope=1", cwd=tmp_path)
    assert unknown.returncode == 2 and "limit, bad" in unknown.stderr
    own = cli("run", "job.py", "--", "--limit", "2", cwd=tmp_path)
    assert own.returncode == 0 and "OUTPUTS 2" in own.stdout
    wrong = cli("run", "job.py", "--", "--limt", "2", cwd=tmp_path)
    assert wrong.returncode == 2 and "--limit" in wrong.stderr


def test_hud_is_accepted_and_falls_back_to_text_without_a_terminal(tmp_path):
    done = cli("run", str(notebook(tmp_path, PIPE)), "--hud", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "needs a terminal" in done.stderr
    assert len(summaries(done.stdout)) == 1


# -- interrupts --------------------------------------------------------------------------------
SLOW = textwrap.dedent("""\
    import itertools, os, time
    from pathlib import Path
    import minigun_nb as mg

    pipe = mg.Pipeline("endless", queue_size={queue})

    @pipe.producer
    def numbers():
        yield from itertools.count()

    @pipe.processor(backend="process", workers=2)
    def slow(x):
        with open("pids.txt", "a") as f:
            f.write(f"{{os.getpid()}}\\n")
        time.sleep({nap})
        return x

    @pipe.consumer
    def keep(x):
        Path("started").touch()

    result = pipe.run()
    print("AFTER THE RUN", result.status)
""")


def _interrupted(tmp_path: Path, signals: int, queue: int, nap: float
                 ) -> tuple[subprocess.CompletedProcess[str], list[int]]:
    script = tmp_path / "endless.py"
    script.write_text(SLOW.format(queue=queue, nap=nap))
    proc = subprocess.Popen([sys.executable, "-m", "minigun_nb.notebook.cli", "run", str(script)],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        while not (tmp_path / "started").exists():
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        for _ in range(signals):
            proc.send_signal(signal.SIGINT)
            time.sleep(0.5)
        out, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
    pids = sorted({int(p) for p in (tmp_path / "pids.txt").read_text().split()})
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err), pids


def _wait_gone(pids: list[int]) -> list[int]:
    deadline = time.monotonic() + 60  # a timeout for slow machines, not a measurement
    alive = pids
    while alive and time.monotonic() < deadline:
        alive = [p for p in alive if _alive(p)]
        time.sleep(0.1)
    return alive


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is gone for our purposes
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(os.name != "posix", reason="signals")
def test_the_first_sigint_drains_and_ends_the_job_with_130(tmp_path):
    done, pids = _interrupted(tmp_path, signals=1, queue=4, nap=0.01)
    assert done.returncode == 130, (done.stdout, done.stderr)
    ids = summaries(done.stdout)
    assert len(ids) == 1 and re.search(r"^run \w+ stopped in ", done.stdout, re.M)
    assert "AFTER THE RUN" not in done.stdout  # the job ended with the drained run
    assert "minigun-nb: interrupted" in done.stderr
    assert pids and _wait_gone(pids) == []  # no worker process outlives the job


@pytest.mark.skipif(os.name != "posix", reason="signals")
def test_a_second_sigint_cancels_with_130(tmp_path):
    done, pids = _interrupted(tmp_path, signals=2, queue=1000, nap=0.05)
    assert done.returncode == 130, (done.stdout, done.stderr)
    assert re.search(r"^run \w+ cancelled in ", done.stdout, re.M), done.stdout
    assert len(summaries(done.stdout)) == 1
    assert pids and _wait_gone(pids) == []


# -- in a kernel -------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.timeout(240)
def test_output_executes_in_a_kernel_and_saves_the_report(tmp_path):
    nb = notebook(tmp_path, PIPE, "print('LIMIT', limit)", params="limit = 10\nbad = [1]")
    out = tmp_path / "executed.ipynb"
    done = cli("run", str(nb), "-p", "limit=4", "--allow-errors", "--output", str(out),
               cwd=tmp_path, timeout=200)
    assert done.returncode == 0, done.stderr
    saved = nbformat.read(str(out), 4)
    tags = [c.metadata.get("tags", []) for c in saved.cells]
    assert tags[0] == ["parameters"] and tags[1] == ["injected-parameters"]
    assert "limit = 4" in saved.cells[1].source
    outputs = saved.cells[2].outputs
    assert any("OUTPUTS 3" in o.get("text", "") for o in outputs)  # 4 items, 1 bad
    # the run's display in a kernel: the static dashboard stays in the saved notebook
    assert any("text/html" in o.get("data", {}) for o in outputs)
    assert "LIMIT 4" in saved.cells[3].outputs[0]["text"]
    assert "widgets" not in saved.metadata  # store_widget_state=False
    assert len(summaries(done.stdout)) == 1  # stdout keeps the summary
    assert "  check  item 1  ValueError: bad 1" in done.stdout
    strict = cli("run", str(nb), "--output", str(out), cwd=tmp_path, timeout=200)
    assert strict.returncode == 1  # the error row counts without --allow-errors


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_output_of_a_failing_cell_exits_1_and_still_saves(tmp_path):
    nb = notebook(tmp_path, "x = 1", "raise ValueError('broken cell')", "print('never')")
    out = tmp_path / "executed.ipynb"
    done = cli("run", str(nb), "--output", str(out), cwd=tmp_path, timeout=200)
    assert done.returncode == 1
    assert "cell 3 raised ValueError: broken cell" in done.stderr
    saved = nbformat.read(str(out), 4)
    assert saved.cells[2].outputs[0]["output_type"] == "error"
    assert not saved.cells[3].get("outputs")
    assert json.loads(out.read_text())["cells"][2]["outputs"][0]["ename"] == "ValueError"


# -- the scheduling docs, run as written -------------------------------------------------------
DOCS = Path(__file__).resolve().parents[2] / "docs" / "scheduling.md"


def _fenced(lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```", DOCS.read_text(), re.M | re.S)


def _nightly_job(home: Path) -> Path:
    """~/jobs/nightly as the docs assume: its virtualenv and the exported notebook."""
    job = home / "jobs" / "nightly"
    (job / ".venv" / "bin").mkdir(parents=True)
    (job / ".venv" / "bin" / "minigun-nb").symlink_to(Path(sys.executable).with_name("minigun-nb"))
    notebook(job, PIPE.replace('mg.Pipeline("job")', 'mg.Pipeline("nightly")'),
             name="nightly.ipynb")
    assert cli("export", "nightly.ipynb", cwd=job).returncode == 0
    return job


def _check_text_log(log: str) -> None:
    # the text status line of the run, its summary table once, the runner's counts
    assert re.search(r"^nightly: 1,000 done, 0 failed, [\d,]+/s, \d\d:\d\d \(done\)$", log, re.M)
    assert len(re.findall(r"^stage +status +in +out +failed", log, re.M)) == 1
    assert len(summaries(log)) == 1 and "OUTPUTS 1000" in log
    assert "minigun-nb: 1 run(s), 0 failed or stopped, 0 with errors" in log


def test_the_cron_line_of_the_docs_runs_as_cron_would(tmp_path):
    (entry,) = [line for block in _fenced("cron") for line in block.splitlines()
                if line.strip() and not line.startswith("#")]
    command = entry.split(None, 5)[5]  # after minute, hour, day, month, weekday
    job = _nightly_job(tmp_path)
    cron_env = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "SHELL": "/bin/sh"}
    done = subprocess.run(["/bin/sh", "-c", command], env=cron_env, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=100)  # stderr: no terminal
    assert done.returncode == 0, (done.stdout, done.stderr)
    _check_text_log((job / "nightly.log").read_text())
    # a failing night: the same line's job with an error row exits 1 and says what failed
    (job / "nightly.py").write_text((job / "nightly.py").read_text().replace(
        '"bad": []', '"bad": [7]'))
    failed = subprocess.run(["/bin/sh", "-c", command], env=cron_env, stdin=subprocess.DEVNULL,
                            capture_output=True, text=True, timeout=100)
    assert failed.returncode == 1
    assert "  check  item 7  ValueError: bad 7" in (job / "nightly.log").read_text()


def test_the_systemd_service_command_of_the_docs_runs(tmp_path):
    import shlex

    service = next(b for b in _fenced("ini") if "ExecStart=" in b)
    keys = dict(line.split("=", 1) for line in service.splitlines()
                if "=" in line and not line.startswith("#"))
    assert "timers.target" in "".join(_fenced("ini"))  # and the timer beside it
    home = str(tmp_path)
    job = _nightly_job(tmp_path)
    cwd = keys["WorkingDirectory"].replace("%h", home)
    assert Path(cwd) == job
    out_path = keys["StandardOutput"].removeprefix("append:").replace("%h", home)
    err_path = keys["StandardError"].removeprefix("append:").replace("%h", home)
    argv = shlex.split(keys["ExecStart"].replace("%h", home))
    with open(out_path, "a") as out, open(err_path, "a") as err:
        done = subprocess.run(argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                              env={"HOME": home, "PATH": "/usr/bin:/bin"}, timeout=100)
    assert done.returncode == 0, Path(err_path).read_text()
    records = [json.loads(line) for line in Path(err_path).read_text().splitlines()]
    finished = [r for r in records if r.get("event") == "run_finished"]
    assert len(finished) == 1 and finished[0]["status"] == "done"
    assert finished[0]["pipeline"] == "nightly" and finished[0]["failed"] == 0
    log = Path(out_path).read_text()
    assert len(summaries(log)) == 1 and "OUTPUTS 1000" in log


@pytest.mark.parametrize("display", ["text", "none", "auto", "progress"])
def test_a_scripts_own_display_choice_still_prints_each_summary_once(tmp_path, display):
    script = tmp_path / "job.py"
    script.write_text(textwrap.dedent(f"""
        import minigun_nb as mg
        pipe = mg.Pipeline([mg.processor(abs, name="absolute")])
        pipe.run(items=[-1, 2], display={display!r})
        pipe.start(items=[3], display={display!r})  # left running: the runner waits for it
    """))
    done = cli("run", str(script), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    ids = summaries(done.stdout)
    assert len(ids) == 2 and len(set(ids)) == 2, done.stdout


@pytest.mark.slow
@pytest.mark.timeout(240)
@pytest.mark.skipif(os.name != "posix", reason="signals")
def test_sigint_with_output_drains_the_kernels_run_and_saves_the_notebook(tmp_path):
    nb = notebook(tmp_path, textwrap.dedent("""\
        import itertools, time
        from pathlib import Path
        import minigun_nb as mg
        pipe = mg.Pipeline("endless", queue_size=4)
        pipe.producer(lambda: itertools.count(), name="gen")
        @pipe.consumer
        def nap(x):
            time.sleep(0.01)
            Path("started").touch()
        res = pipe.run()
        print("STATUS", res.status)
    """), "print('NEXT CELL')")
    out = tmp_path / "executed.ipynb"
    proc = subprocess.Popen([sys.executable, "-m", "minigun_nb.notebook.cli", "run", str(nb),
                             "--output", str(out)], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        while not (tmp_path / "started").exists():
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    assert re.search(r"^run \w+ stopped in ", stdout, re.M)
    saved = nbformat.read(str(out), 4)
    assert any("STATUS stopped" in o.get("text", "") for o in saved.cells[1].outputs)
    assert not saved.cells[2].get("outputs")  # no further cell ran


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_output_with_a_cell_timeout_exits_1_and_saves(tmp_path):
    nb = notebook(tmp_path, "import time\ntime.sleep(120)", "print('never')")
    out = tmp_path / "executed.ipynb"
    done = cli("run", str(nb), "--output", str(out), "--timeout", "3", cwd=tmp_path,
               timeout=200)
    assert done.returncode == 1
    assert "cell 2 ran longer than --timeout 3.0 s" in done.stderr
    assert out.is_file() and not nbformat.read(str(out), 4).cells[2].get("outputs")


@pytest.mark.timeout(120)
@pytest.mark.skipif(os.name != "posix", reason="a pseudo-terminal")
def test_hud_in_a_terminal_shows_the_dashboard_and_q_stops_the_job(tmp_path):
    pexpect = pytest.importorskip("pexpect")
    nb = notebook(tmp_path, textwrap.dedent("""\
        import itertools, time
        import minigun_nb as mg
        pipe = mg.Pipeline("endless", queue_size=10)  # a short drain after q
        pipe.producer(lambda: itertools.count(), name="numbers")
        @pipe.consumer
        def slowly(x):
            time.sleep(0.01)
        result = pipe.run()
        print("STATUS", result.status)
    """))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    env["TERM"] = "xterm-256color"
    child = pexpect.spawn(sys.executable, ["-m", "minigun_nb.notebook.cli", "run", str(nb),
                                           "--hud"], cwd=str(tmp_path), env=env,
                          dimensions=(30, 110), timeout=60, encoding="utf-8",
                          codec_errors="replace")
    for word in ("P50 ms", "P99 ms", "numbers", "slowly"):  # the HUD is on the screen
        child.expect_exact(word)
    child.send("q")  # stops the run, draining
    child.expect(r"run \w+ stopped in ")  # the summary once the HUD has left the screen
    child.expect(r"STATUS (\w+)")
    assert child.match.group(1) == "stopped"
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 1  # a stopped run: the job did not finish
