"""`make demo`: a real pipeline over real local data, no network.

Walks the Python standard library's source files, reads them on 8 threads, parses each with
`ast` to count functions, classes and lines, batches the metrics into DataFrames, and prints the
largest modules, the run's summary table and its bottleneck.
"""

from __future__ import annotations

import ast
import sys
import sysconfig
from pathlib import Path

import minigun_nb as mg

STDLIB = Path(sysconfig.get_paths()["stdlib"])
LIMIT = int(sys.argv[1]) if len(sys.argv) > 1 else None

pipe = mg.Pipeline("stdlib_metrics", queue_size=200)


@pipe.producer
def source_files():
    """Every .py file of the standard library (tests and site-packages left out)."""
    files = (
        p for p in sorted(STDLIB.rglob("*.py"))
        if "site-packages" not in p.parts and "test" not in p.parts
    )
    for i, path in enumerate(files):
        if LIMIT is not None and i >= LIMIT:
            return
        yield path


@pipe.processor(workers=8)
def read(path: Path):
    """I/O on threads: read the file's text."""
    return path, path.read_text(encoding="utf-8", errors="replace")


@pipe.processor(workers=2, retries=0)
def measure(pair):
    """Parse with ast and count what a module defines (a SyntaxError is an error row)."""
    path, text = pair
    tree = ast.parse(text, filename=str(path))
    nodes = list(ast.walk(tree))
    return {
        "module": str(path.relative_to(STDLIB)).removesuffix(".py").replace("/", "."),
        "lines": text.count("\n") + 1,
        "functions": sum(isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) for n in nodes),
        "classes": sum(isinstance(n, ast.ClassDef) for n in nodes),
        "nodes": len(nodes),
    }


pipe.batch(250, frame=True)  # dict rows -> DataFrames of 250 modules


def main() -> None:
    print(f"Pipeline {pipe.name!r}: {' -> '.join(s.name for s in pipe.stages)}")
    # display="auto": progress bars per stage in a terminal, text status lines when piped
    # (both end with the summary table), the live dashboard in a notebook
    result = pipe.run()
    frame = result.to_frame().sort_values("lines", ascending=False)
    print(f"\n{len(frame)} modules measured in {result.elapsed_s:.2f} s; the 10 largest:\n")
    print(frame.head(10).to_string(index=False))
    if not result.errors.empty:  # files the parser rejects (Python 2 test data) are error rows
        print("\nerror table (result.errors):")
        print(result.errors[["stage", "exc_type", "message"]].to_string(max_colwidth=70))
    print(f"\nbottleneck: {result.bottleneck or 'none'}")


if __name__ == "__main__":
    main()
