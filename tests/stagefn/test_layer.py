"""``minigun_nb.stagefn`` is the lowest layer: a worker process that imports it to run a chunk
loads nothing else of the package and no third-party library.

``import minigun_nb.stagefn`` runs ``minigun_nb/__init__.py`` first; that file loads its public
names lazily (PEP 562), so the test imports the layer the way a worker does and checks what
``sys.modules`` holds afterwards, in a fresh interpreter.
"""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import minigun_nb.stagefn

pytestmark = pytest.mark.timeout(60)

MODULES = sorted(
    f"minigun_nb.stagefn.{m.name}"
    for m in pkgutil.iter_modules([str(Path(minigun_nb.stagefn.__file__).parent)])
)


def _loaded_after(imports: list[str]) -> list[str]:
    code = (
        "import json, sys\n"
        "before = set(sys.modules)\n"
        + "".join(f"import {name}\n" for name in imports)
        + "print(json.dumps(sorted(set(sys.modules) - before)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=50)
    return json.loads(out.stdout)


def test_the_layer_has_the_modules_the_workers_import():
    for name in ("calling", "outcome", "output", "reprs", "runner", "sampling", "wire",
                 "worker"):
        assert f"minigun_nb.stagefn.{name}" in MODULES


@pytest.mark.parametrize("module", [*MODULES, "minigun_nb.stagefn"])
def test_importing_a_stagefn_module_loads_only_the_layer_and_the_stdlib(module):
    loaded = _loaded_after([module])
    ours = [m for m in loaded if m == "minigun_nb" or m.startswith("minigun_nb.")]
    assert [m for m in ours if m != "minigun_nb" and not m.startswith("minigun_nb.stagefn")] == []
    third_party = [m for m in loaded if m.split(".")[0] not in sys.stdlib_module_names
                   and m.split(".")[0] != "minigun_nb" and not m.startswith("_")]
    assert third_party == []


def test_all_of_the_layer_at_once_loads_no_core_runtime_observe_or_executors():
    loaded = _loaded_after(MODULES)
    for layer in ("core", "runtime", "observe", "executors", "display", "notebook", "errors"):
        assert not [m for m in loaded if m.startswith(f"minigun_nb.{layer}")], layer


def test_the_package_stays_whole_for_its_users():
    code = (
        "import minigun_nb as mg, minigun_nb.stagefn.output as out\n"
        "assert mg.to is out.to\n"
        "assert set(mg.__all__) <= set(dir(mg))\n"
        "ns = {}\n"
        "exec('from minigun_nb import *', ns)\n"
        "assert {n for n in mg.__all__} <= set(ns), set(mg.__all__) - set(ns)\n"
        "assert ns['Pipeline'] is mg.Pipeline\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=50)
    assert out.stdout.strip() == "ok", out.stderr
