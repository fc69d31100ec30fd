"""The README's example runs as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(60)

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_mentions_both_commands():
    text = README.read_text()
    assert "make demo" in text and "make test" in text
    assert "mybinder.org/badge_logo.svg" in text


def test_readme_example_runs(capsys):
    block = re.search(r"```python\n(.*?)```", README.read_text(), re.S).group(1)
    scope: dict = {}
    exec(compile(block, "README.md", "exec"), scope)
    result = scope["result"]
    expected = [x * x for x in range(1000) if (x * x) % 97 != 1]
    assert sum(result.outputs) == sum(expected)
    assert set(result.errors["stage"]) == {"check"}
    assert len(result.errors) == sum(1 for x in range(1000) if (x * x) % 97 == 1)
