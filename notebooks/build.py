"""(Re)build the tutorial notebooks from their sources and execute them, saving the outputs.

Each tutorial is written as a jupytext Markdown file in ``notebooks/src/`` (prose as Markdown,
code cells as ```` ```python ```` fences, cell tags such as ``parameters`` or
``nbval-check-output`` in the fence line). This script turns each source into
``notebooks/NN_name.ipynb`` with nbformat, executes it top to bottom with nbclient in a
Jupyter kernel running this interpreter (cwd ``notebooks/``, no widget state stored: the live
dashboard replaces itself by the static one at the end of each run) and saves it with its
outputs, so the notebooks read well on GitHub and Binder and nbval has reference outputs.

Usage::

    .venv/bin/python notebooks/build.py            # all tutorials
    .venv/bin/python notebooks/build.py 01 04      # the ones whose name starts so

It prints each notebook's run time; a tutorial must run in under 2 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jupytext
import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent
SOURCES = HERE / "src"

#: the longest a single cell may run while building (the whole notebook must stay < 2 min)
CELL_TIMEOUT = 300

KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}


def sources(prefixes: list[str] | None = None) -> list[Path]:
    """The tutorial sources, in order, optionally only those whose name starts with a prefix."""
    found = sorted(SOURCES.glob("[0-9][0-9]_*.md"))
    if prefixes:
        found = [p for p in found if any(p.name.startswith(x) for x in prefixes)]
    return found


def make_notebook(source: Path) -> nbformat.NotebookNode:
    """The unexecuted notebook of one source (no jupytext metadata left in it)."""
    nb = jupytext.read(source, fmt="md")
    nb.metadata.pop("jupytext", None)
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    for cell in nb.cells:
        cell.metadata.pop("lines_to_next_cell", None)
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    nbformat.validate(nb)
    return nb


def execute(nb: nbformat.NotebookNode, cwd: Path = HERE, kernel_name: str = "python3",
            timeout: int = CELL_TIMEOUT) -> float:
    """Execute ``nb`` in place in a fresh kernel; return the seconds it took."""
    client = NotebookClient(
        nb,
        kernel_name=kernel_name,
        timeout=timeout,
        store_widget_state=False,  # a finished run leaves no widget state, only its dashboard
        record_timing=False,  # keeps the saved notebooks free of per-cell timestamps
        resources={"metadata": {"path": str(cwd)}},
    )
    start = time.perf_counter()
    client.execute()
    return time.perf_counter() - start


def tidy(nb: nbformat.NotebookNode) -> None:
    """Drop what changes on every build and means nothing to a reader."""
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        cell.metadata.pop("execution", None)
        kept = []
        for out in cell.outputs:
            # the kernel's own noise (e.g. a warning about TCP without encryption) is not ours
            if out.get("output_type") == "stream" and out.get("name") == "stderr" and \
                    "Kernel is running over TCP" in out.get("text", ""):
                continue
            kept.append(out)
        cell.outputs = kept


def build(source: Path) -> tuple[Path, float]:
    """Build, execute and save one tutorial; return its path and run time in seconds."""
    nb = make_notebook(source)
    target = HERE / source.with_suffix(".ipynb").name
    # the notebook is on disk, as it now reads, before it runs: the cron tutorial exports
    # itself (if the run fails, the file is left unexecuted; git has the last good one)
    nbformat.write(nb, target)
    seconds = execute(nb)
    tidy(nb)
    nbformat.write(nb, target)
    return target, seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("only", nargs="*", help="build only notebooks whose name starts so")
    args = parser.parse_args(argv)
    chosen = sources(args.only)
    if not chosen:
        print(f"no tutorial source matches {args.only} in {SOURCES}", file=sys.stderr)
        return 2
    for source in chosen:
        target, seconds = build(source)
        print(f"{target.name}: {seconds:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
