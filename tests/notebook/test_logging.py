"""Logging: every record of a run names the run and the stage; ``--log-json`` writes them."""

from __future__ import annotations

import datetime
import json
import logging
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import minigun_nb as mg

pytestmark = pytest.mark.timeout(120)


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def captured():
    logger = logging.getLogger("minigun_nb")
    handler, level = Capture(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def _fails_on_three(x):
    if x == 3:
        raise ValueError("three")
    return x


@pytest.mark.parametrize("backend", ["thread", "process", "fork"])
def test_every_record_of_a_run_carries_its_run_id_and_stage(captured, backend):
    pipe = mg.Pipeline(f"logs_{backend}")
    pipe.producer(lambda: range(8), name="gen")
    pipe.processor(_fails_on_three, name="work", backend=backend, workers=2)

    @pipe.on_error
    def broken_hook(exc, item, stage):
        raise RuntimeError("the hook itself fails")

    @pipe.after_run
    def broken_after(result):
        raise RuntimeError("so does this one")

    result = pipe.run(display="none")
    # a warm pool of an earlier test closing meanwhile is no record of this run
    records = [r for r in captured.records if "shut down" not in r.getMessage()]
    assert records
    for record in records:
        assert getattr(record, "run_id", "missing") == result.run_id, record.getMessage()
        assert hasattr(record, "stage"), record.getMessage()
    by_message = {r.getMessage(): r for r in records}
    failed = [r for r in records if r.levelno == logging.WARNING and "item failed" in r.getMessage()]
    assert len(failed) == 1 and failed[0].stage == "work"
    hook = [r for r in records if "on_error hook" in r.getMessage()]
    assert hook and hook[0].stage == "work" and hook[0].levelno == logging.ERROR
    assert any("after_run hook" in m for m in by_message)
    starts = [r.stage for r in records if r.getMessage() == "stage started"]
    assert sorted(starts) == ["gen", "work"]
    if backend == "process":  # process starts at DEBUG, with the stage
        assert any("worker process" in m and "connected" in m for m in by_message)
    if backend == "fork":  # every fork and every reap
        forks = [r for r in records if r.getMessage().startswith("forked child")]
        reaps = [r for r in records if r.getMessage().startswith("reaped child")]
        assert forks and len(forks) == len(reaps) and all(r.stage == "work" for r in forks)


JOB = textwrap.dedent("""\
    import minigun_nb as mg

    def gen():
        yield from range(6)

    def work(x):
        if x == 2:
            raise ValueError("two")
        return x

    for name, backend in (("first", "thread"), ("second", "fork")):
        pipe = mg.Pipeline(name)
        pipe.producer(gen)
        pipe.processor(work, backend=backend)
        print("RUN", pipe.run().run_id)
""")


def run_job(tmp_path: Path, *options: str) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "job.py"
    script.write_text(JOB)
    return subprocess.run(
        [sys.executable, "-m", "minigun_nb.notebook.cli", "run", str(script), *options],
        cwd=tmp_path, capture_output=True, text=True, timeout=100)


def parse_lines(stderr: str) -> list[dict]:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines
    return [json.loads(line) for line in lines]  # every line is one JSON object


def test_log_json_lines_carry_the_keys_and_one_run_finished_per_run(tmp_path):
    done = run_job(tmp_path, "--log-json", "--allow-errors")
    assert done.returncode == 0, done.stderr
    records = parse_lines(done.stderr)
    for rec in records:
        assert {"time", "level", "message", "run_id", "stage"} <= set(rec)
        assert datetime.datetime.fromisoformat(rec["time"]).tzinfo is not None
        assert rec["level"] in ("INFO", "WARNING", "ERROR")  # INFO and up without -v
    finished = [r for r in records if r.get("event") == "run_finished"]
    run_ids = [line.split()[1] for line in done.stdout.splitlines() if line.startswith("RUN ")]
    assert [r["run_id"] for r in finished] == run_ids and len(run_ids) == 2
    for rec, name in zip(finished, ("first", "second"), strict=True):
        assert rec["pipeline"] == name and rec["status"] == "done"
        assert rec["failed"] == 1 and rec["cancelled"] == 0
        for key in ("done", "filtered", "elapsed_s"):
            assert isinstance(rec[key], (int, float))
    warnings = [r for r in records if r["level"] == "WARNING"]
    assert len(warnings) == 2 and all(r["stage"] == "work" for r in warnings)
    assert {r["run_id"] for r in warnings} == set(run_ids)
    assert any(r["stage"] is None and r["run_id"] is None for r in records)  # the runner's own
    # stdout keeps the summaries (and nothing of the logs)
    assert done.stdout.count("done in ") == 2 and '"level"' not in done.stdout


def test_verbose_adds_debug_records_of_stages_forks_and_reaps(tmp_path):
    done = run_job(tmp_path, "--log-json", "-v", "--allow-errors")
    assert done.returncode == 0, done.stderr
    records = parse_lines(done.stderr)
    debug = [r for r in records if r["level"] == "DEBUG"]
    messages = [r["message"] for r in debug]
    assert "stage started" in messages
    forks = [r for r in debug if r["message"].startswith("forked child")]
    reaps = [r for r in debug if r["message"].startswith("reaped child")]
    assert forks and len(forks) == len(reaps)
    assert all(r["stage"] == "work" and r["run_id"] for r in forks + reaps)


def test_verbose_without_json_logs_text_lines(tmp_path):
    done = run_job(tmp_path, "-v", "--allow-errors")
    assert done.returncode == 0, done.stderr
    assert " DEBUG [" in done.stderr and "stage started" in done.stderr
    assert " WARNING [" in done.stderr and "item failed in work" in done.stderr


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_log_json_with_output_forwards_the_kernels_records(tmp_path):
    import nbformat
    import nbformat.v4 as v4

    nb = tmp_path / "job.ipynb"
    nbformat.write(v4.new_notebook(cells=[v4.new_code_cell(JOB)]), str(nb))
    done = subprocess.run(
        [sys.executable, "-m", "minigun_nb.notebook.cli", "run", str(nb), "--output",
         str(tmp_path / "out.ipynb"), "--log-json", "--allow-errors"],
        cwd=tmp_path, capture_output=True, text=True, timeout=200)
    assert done.returncode == 0, done.stderr
    records = parse_lines(done.stderr)  # stderr is JSON lines only, the kernel's included
    warnings = [r for r in records if r["level"] == "WARNING"]
    finished = [r for r in records if r.get("event") == "run_finished"]
    assert len(warnings) == 2 and all(r["stage"] == "work" for r in warnings)
    assert [r["pipeline"] for r in finished] == ["first", "second"]
    assert {r["run_id"] for r in warnings} == {r["run_id"] for r in finished}


def test_every_logging_call_of_the_runtime_passes_run_id_and_stage():
    """A guard for new call sites: each log call in runtime/, executors/ and observe/ gives
    ``extra=`` (the run's ``log_extra(stage)``), so no record of a run lacks its id."""
    import ast

    package = Path(mg.__file__).parent
    missing = []
    for folder in ("runtime", "executors", "observe"):
        for path in sorted((package / folder).glob("*.py")):
            source = path.read_text()
            for node in ast.walk(ast.parse(source)):
                if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                        and node.func.attr in ("debug", "info", "warning", "error",
                                               "exception", "critical", "log")
                        and isinstance(node.func.value, ast.Name)
                        and node.func.value.id in ("log", "logger")
                        and not any(k.arg == "extra" for k in node.keywords)):
                    missing.append(f"{folder}/{path.name}:{node.lineno}")
    assert missing == []


def test_a_usage_error_with_log_json_is_one_json_line(tmp_path):
    done = run_job(tmp_path, "--log-json", "-p", "nope=1")
    assert done.returncode == 2
    (record,) = parse_lines(done.stderr)
    assert record["level"] == "ERROR" and "takes no parameters" in record["message"]
