"""`make bench`: run every benchmark module in this folder and print its table.

Each module has ``main() -> list[dict]``; figures are ratios against baselines measured in the
same process, because these machines swing 2-3x between runs.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def table(rows: list[dict]) -> str:
    cols = list(rows[0]) if rows else []
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(r.get(c, "")) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def main(names: list[str]) -> None:
    modules = names or sorted(p.stem for p in HERE.glob("bench_*.py"))
    for name in modules:
        mod = importlib.import_module(name)
        print(f"\n## {name}\n")
        print(table(mod.main()), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
