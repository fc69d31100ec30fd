"""``import minigun_nb`` stays light: heavy and display libraries load only where used."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.timeout(30)

HEAVY = ("pandas", "loky", "ipywidgets", "anywidget", "IPython", "tqdm", "rich")


@pytest.mark.parametrize("module", ["minigun_nb", "minigun_nb.core.graph"])
def test_importing_loads_no_heavy_dependency(module):
    code = (
        f"import sys, {module}\n"
        f"heavy = {HEAVY!r}\n"
        "print(','.join(m for m in heavy if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=25
    )
    assert out.stdout.strip() == ""


def test_defining_and_drawing_a_pipeline_stays_light():
    code = (
        "import sys, minigun_nb as mg\n"
        "pipe = mg.Pipeline('p')\n"
        "pipe.producer(lambda: [1], name='gen')\n"
        "pipe.processor(abs)\n"
        "pipe.batch(10)\n"
        "pipe.to_mermaid(); pipe.to_dot(); pipe._repr_mimebundle_()\n"
        f"heavy = {HEAVY!r}\n"
        "print(','.join(m for m in heavy if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=25
    )
    assert out.stdout.strip() == ""
