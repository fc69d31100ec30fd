"""observe/ stays light and self-contained: the seam between the runtime and every display."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import minigun_nb.observe as observe

PACKAGE_DIR = Path(observe.__file__).resolve().parent
MINIGUN_DIR = PACKAGE_DIR.parent
FORBIDDEN = ("pandas", "ipywidgets", "anywidget", "IPython", "tqdm", "rich")

# Prints the forbidden modules loaded and every minigun_nb module loaded, as JSON.
REPORT = f"""
import json, sys
forbidden = {FORBIDDEN!r}
loaded = [m for m in forbidden if m in sys.modules]
ours = sorted(m for m in sys.modules if m == "minigun_nb" or m.startswith("minigun_nb."))
print(json.dumps({{"forbidden": loaded, "ours": ours}}))
"""


def run_python(code: str) -> dict[str, list[str]]:
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=25,
        cwd=MINIGUN_DIR.parent,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.timeout(30)
def test_observe_alone_loads_no_ui_and_no_pandas() -> None:
    # A stub parent package isolates observe/ from whatever minigun_nb/__init__.py imports.
    code = (
        f"""
import sys, types
stub = types.ModuleType("minigun_nb")
stub.__path__ = [{str(MINIGUN_DIR)!r}]
sys.modules["minigun_nb"] = stub
import minigun_nb.observe, minigun_nb.observe.stats, minigun_nb.observe.summary
import minigun_nb.observe.events, minigun_nb.observe.histogram, minigun_nb.observe.snapshot
stats = minigun_nb.observe.StatsCollector()
stats.snapshot().summary()
"""
        + REPORT
    )
    report = run_python(code)
    assert report["forbidden"] == []
    assert all(m == "minigun_nb" or m.startswith("minigun_nb.observe") for m in report["ours"])


@pytest.mark.timeout(30)
def test_importing_observe_stats_through_the_package_loads_no_ui_and_no_pandas() -> None:
    # This one goes through minigun_nb/__init__.py, which the rest of the package owns.
    report = run_python("import minigun_nb.observe.stats\n" + REPORT)
    assert report["forbidden"] == [], "minigun_nb/__init__.py pulls these in"


def test_observe_imports_nothing_from_the_rest_of_minigun_nb() -> None:
    for path in sorted(PACKAGE_DIR.glob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                module = node.module or ""
                if node.level == 0:
                    names = [module]
                elif node.level == 1:
                    names = [f"minigun_nb.observe.{module}".rstrip(".")]
                else:
                    names = ["minigun_nb"]  # ..anything leaves observe/
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for name in names:
                if name.startswith("minigun_nb"):
                    assert name.startswith("minigun_nb.observe"), f"{path.name} imports {name}"
                assert name.split(".")[0] not in FORBIDDEN[1:], f"{path.name} imports {name}"


def test_pandas_is_only_imported_inside_functions() -> None:
    for path in sorted(PACKAGE_DIR.glob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in tree.body:  # module level only; `if TYPE_CHECKING:` blocks are skipped
            if isinstance(node, ast.Import):
                assert all(a.name.split(".")[0] != "pandas" for a in node.names), path.name
            if isinstance(node, ast.ImportFrom):
                assert (node.module or "").split(".")[0] != "pandas", path.name


def test_modules_stay_small() -> None:
    for path in sorted(PACKAGE_DIR.glob("*.py")):
        assert len(path.read_text().splitlines()) < 500, path.name


def test_public_names_are_pinned() -> None:
    assert sorted(observe.__all__) == sorted(
        [
            "STATS_COLUMNS",
            "ChunkProcessed",
            "Event",
            "EventObserver",
            "ItemsCancelled",
            "ItemsReceived",
            "ItemsTaken",
            "LatencyHistogram",
            "RunFinished",
            "RunSnapshot",
            "RunStarted",
            "RunTotals",
            "SnapshotObserver",
            "StageFinished",
            "StageInfo",
            "StageSnapshot",
            "StageStarted",
            "StatsCollector",
            "bottleneck_hint",
            "find_bottleneck",
            "summary_text",
        ]
    )
    for name in observe.__all__:
        assert getattr(observe, name) is not None
