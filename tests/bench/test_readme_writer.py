"""``bench/run.py --write``: the regions of bench/README.md it replaces, and what it leaves alone.

No benchmark runs here: rows are handed to the writer (``record``) with a temporary README, and
``main`` runs fake modules. ``bench/`` is not a package, so ``run.py`` is loaded from its path
(as tests/notebooks loads ``notebooks/build.py``).
"""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(60)

RUN_PY = Path(__file__).resolve().parents[2] / "bench" / "run.py"


def _load_run() -> types.ModuleType:
    spec = importlib.util.spec_from_file_location("bench_run", RUN_PY)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_run"] = module  # dataclasses and the like look modules up by name
    spec.loader.exec_module(module)
    return module


run = _load_run()

# Prose with what a careless writer would damage: non-ASCII, trailing spaces, a CRLF line, a
# table of its own, no newline at the very end.
HEAD = "# Benchmarks\n\nRatios – not seconds.  \r\nSee §12.\n\n| hand | table |\n|---|---|\n\n"
MID = "\n\nBetween the regions: `x | y`.\n\n"
TAIL = "\n\nThe end, with no final newline."
OLD_A = "_old stamp._\n\n| case | seconds |\n|---|---|\n| a | 1.0 |"
OLD_B = "| case | seconds |\n|---|---|\n| b | 2.0 |"
README = (
    HEAD
    + "<!-- bench:bench_a:begin -->\n" + OLD_A + "\n<!-- bench:bench_a:end -->"
    + MID
    + "<!-- bench:bench_b:begin -->\n" + OLD_B + "\n<!-- bench:bench_b:end -->"
    + TAIL
)
ROWS = [{"case": "fast", "seconds": 0.5, "note": "a | b"}, {"case": "slow", "seconds": 2}]
MACHINE = {"CPU": "test CPU", "cores": "2"}


@pytest.fixture
def readme(tmp_path: Path) -> Path:
    path = tmp_path / "README.md"
    path.write_bytes(README.encode("utf-8"))
    return path


def text(path: Path) -> str:
    return path.read_bytes().decode("utf-8")


def outside(t: str, names: list[str]) -> list[str]:
    """The pieces of ``t`` outside the regions of ``names`` (markers included), in order."""
    pieces, rest = [], t
    for name in names:
        begin, end = run.begin_marker(name), run.end_marker(name)
        before, _, after = rest.partition(begin)
        _, _, rest = after.partition(end)
        pieces.append(before + begin)
        rest = end + rest
    return [*pieces, rest]


def test_a_region_is_replaced_and_everything_else_kept_byte_for_byte(readme: Path) -> None:
    run.record(readme, "bench_a", ROWS, stamp="STAMP", machine=MACHINE)
    after = text(readme)
    body = run.region_body(after, "bench_a")
    assert body == "_STAMP._\n\n" + run.table(ROWS)
    assert "| fast | 0.5 | a \\| b |" in body  # a pipe inside a cell does not split it
    assert run.region_body(after, "bench_b") == OLD_B  # a module that did not run: untouched
    # byte for byte: the old README with only region a's body changed, then the machine region
    # (which this README lacked) added at the end
    expected = README.replace(OLD_A, body)
    assert after.startswith(expected)
    assert after[len(expected):].startswith("\n\n## `machine`")
    assert run.region_body(after, "machine") == run.machine_body(MACHINE)


def test_writing_twice_replaces_the_table_instead_of_adding_one(readme: Path) -> None:
    run.record(readme, "bench_a", ROWS, stamp="ONE", machine=MACHINE)
    once = text(readme)
    run.record(readme, "bench_a", ROWS[:1], stamp="TWO", machine=MACHINE)
    twice = text(readme)
    assert twice.count("<!-- bench:bench_a:begin -->") == 1
    assert twice.count("<!-- bench:machine:begin -->") == 1
    assert run.region_body(twice, "bench_a") == "_TWO._\n\n" + run.table(ROWS[:1])
    assert outside(twice, ["bench_a", "bench_b", "machine"]) == outside(
        once, ["bench_a", "bench_b", "machine"])


def test_a_module_without_a_region_gets_one_at_the_end(readme: Path) -> None:
    run.write_readme(readme, {"bench_new": run.table(ROWS)})
    after = text(readme)
    assert after.startswith(README)  # appended: nothing before it moved
    added = after[len(README):]
    assert "## `bench_new`" in added
    assert added.index("<!-- bench:bench_new:begin -->") < added.index(run.table(ROWS))
    assert added.endswith("<!-- bench:bench_new:end -->\n")
    assert run.region_body(after, "bench_new") == run.table(ROWS)


def test_a_failing_module_keeps_its_old_table_under_a_note(readme: Path) -> None:
    run.record(readme, "bench_b", None, stamp="S1", machine=MACHINE, error="KeyError: 'W9'")
    body = run.region_body(text(readme), "bench_b")
    assert body.startswith(run.NOTE)
    assert "KeyError: 'W9'" in body.splitlines()[0] and "S1" in body.splitlines()[0]
    assert body.endswith(OLD_B)  # the old table, whole
    # failing again: one note (the newest), the same old table
    run.record(readme, "bench_b", None, stamp="S2", machine=MACHINE, error="OSError: gone")
    body = run.region_body(text(readme), "bench_b")
    assert body.count(run.NOTE) == 1 and "OSError: gone" in body and "S2" in body
    assert body.endswith(OLD_B)
    # a later run that works: the note goes with the old table
    run.record(readme, "bench_b", ROWS, stamp="S3", machine=MACHINE)
    assert run.region_body(text(readme), "bench_b") == "_S3._\n\n" + run.table(ROWS)
    assert text(readme).startswith(HEAD)


def test_a_failing_module_without_a_region_gets_only_the_note(readme: Path) -> None:
    run.record(readme, "bench_c", None, stamp="S", machine=MACHINE, error="ValueError: x")
    body = run.region_body(text(readme), "bench_c")
    assert body.startswith(run.NOTE) and "ValueError: x" in body and "|" not in body
    assert text(readme).startswith(README)


@pytest.mark.parametrize("broken", [
    "<!-- bench:bench_a:begin -->\n<!-- bench:bench_a:begin -->\n<!-- bench:bench_a:end -->\n",
    "<!-- bench:bench_a:end -->\n<!-- bench:bench_a:begin -->\n",
    "<!-- bench:bench_a:begin -->\nno end\n",
])
def test_malformed_markers_are_an_error_and_nothing_is_written(tmp_path: Path, broken: str) -> None:
    path = tmp_path / "README.md"
    path.write_text(broken)
    with pytest.raises(ValueError, match="bench_a"):
        run.record(path, "bench_a", ROWS, stamp="S", machine=MACHINE)
    assert path.read_text() == broken


def test_the_machine_region_has_the_keys(readme: Path) -> None:
    info = run.machine_info(["bench_a"], started=0.0, load_start=1.25, load_end=0.5,
                            failed={"bench_b": "KeyError: 'W9'"})
    for key in ["CPU", "cores", "RAM", "Python", "OS", "1-minute load", "date", "commit",
                "loky", "dask", "pandas", "mpire", "joblib", "pypeln", "failed"]:
        assert info[key], key
    assert info["1-minute load"] == "1.25 at start, 0.50 at end"
    assert info["pandas"][0].isdigit()  # installed in the test environment: a version
    run.record(readme, "bench_a", ROWS, stamp="S", machine=info)
    body = run.region_body(text(readme), "machine")
    keys = [line.split(" | ")[0].lstrip("| ") for line in body.splitlines()[2:]]
    assert keys == list(info)


def _fake(rows: list[dict] | None) -> types.ModuleType:
    module = types.ModuleType("fake")

    def main() -> list[dict]:
        if rows is None:
            raise RuntimeError("the benchmark broke\nsecond line")
        return rows

    module.main = main  # type: ignore[attr-defined]
    return module


def test_main_writes_the_modules_it_ran_and_exits_1_after_a_failure(
        readme: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    fakes = {"bench_a": _fake(None), "bench_b": _fake(ROWS), "bench_z": _fake(ROWS[:1])}
    monkeypatch.setattr(run, "available", lambda: sorted(fakes))
    monkeypatch.setattr(run, "load", fakes.__getitem__)
    assert run.main(["--write", "--readme", str(readme), "bench_a", "bench_b"]) == 1
    after = text(readme)
    a, b = run.region_body(after, "bench_a"), run.region_body(after, "bench_b")
    assert a.startswith(run.NOTE) and "RuntimeError: the benchmark broke`" in a
    assert a.endswith(OLD_A)
    assert b.endswith(run.table(ROWS)) and "--write bench_b" in b
    assert run.region_body(after, "bench_z") is None  # not asked for: not run, not added
    machine = run.region_body(after, "machine")
    assert "`bench_a`, `bench_b`" in machine and "RuntimeError" in machine
    out = capsys.readouterr()
    assert "## bench_b" in out.out and run.table(ROWS) in out.out
    assert "failed: bench_a" in out.err
    # without --write: printed, the README is left alone; all good: exit 0
    assert run.main(["--readme", str(readme), "bench_b"]) == 0
    assert text(readme) == after


def test_main_refuses_an_unknown_module_before_running_anything(
        readme: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(run, "available", lambda: ["bench_a"])
    monkeypatch.setattr(run, "load", lambda name: pytest.fail("nothing may run"))
    with pytest.raises(SystemExit) as exit_:
        run.main(["--write", "--readme", str(readme), "bench_a", "bench_nope"])
    assert exit_.value.code == 2
    assert text(readme) == README


def test_the_committed_readme_has_a_region_for_every_module() -> None:
    committed = text(run.README)
    for name in [run.MACHINE, *run.available()]:
        assert run.region_body(committed, name), name
