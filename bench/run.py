"""`make bench`: run the benchmark modules in this folder, print their tables, write the README.

Each module has ``main() -> list[dict]``; figures are ratios against baselines measured in the
same process, because these machines swing 2-3x between runs.

Usage: ``python bench/run.py [--write] [--readme PATH] [module ...]`` (no module: every
``bench_*.py``). With ``--write`` the table of each module that ran replaces the region of
``bench/README.md`` between ``<!-- bench:<module>:begin -->`` and ``<!-- bench:<module>:end -->``,
and the machine that ran them replaces the ``machine`` region; the README is rewritten after each
module, so a run stopped halfway keeps what it measured. Everything outside the regions, and the
regions of modules that did not run, stay byte for byte. A module without a region gets one at
the end of the file. A module that raises keeps its old table, with a note above it saying the
last run failed and why; the others still run, and the exit status is 1.
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import subprocess
import sys
import time
import traceback
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
README = HERE / "README.md"
MACHINE = "machine"
VERSIONS = ("minigun_nb", "loky", "dask", "distributed", "pandas", "numpy", "mpire", "joblib",
            "pypeln")
#: first characters of the line ``--write`` puts above a table kept from an earlier run
NOTE = "> **Not updated by the last run**"


def table(rows: list[dict]) -> str:
    """A markdown table: the columns of the first row, in order."""
    cols = list(rows[0]) if rows else []
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(_cell(r.get(c, "")) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    return " ".join(str(value).split("\n")).replace("|", "\\|")


# --- regions of the README ------------------------------------------------------------------


def begin_marker(name: str) -> str:
    return f"<!-- bench:{name}:begin -->"


def end_marker(name: str) -> str:
    return f"<!-- bench:{name}:end -->"


def find_region(text: str, name: str) -> tuple[int, int] | None:
    """``(start, stop)`` of the text between the two markers of ``name``, or None if absent.

    Raises ValueError when the markers are not exactly one begin followed by one end.
    """
    begin, end = begin_marker(name), end_marker(name)
    nb, ne = text.count(begin), text.count(end)
    if nb == ne == 0:
        return None
    if nb != 1 or ne != 1:
        raise ValueError(f"README: region {name!r} has {nb} begin and {ne} end markers (want 1 each)")
    start = text.index(begin) + len(begin)
    stop = text.index(end)
    if stop < start:
        raise ValueError(f"README: region {name!r} ends before it begins")
    return start, stop


def region_body(text: str, name: str) -> str | None:
    """What the region of ``name`` holds (without the markers and the newlines next to them)."""
    span = find_region(text, name)
    return None if span is None else text[span[0]:span[1]].strip("\n")


def set_region(text: str, name: str, body: str) -> str:
    """``text`` with the region of ``name`` holding ``body``; a missing region goes at the end."""
    span = find_region(text, name)
    if span is None:
        sep = "" if text.endswith("\n\n") else ("\n" if text.endswith("\n") else "\n\n")
        heading = f"## `{name}` (region added by `bench/run.py --write`; write its prose)\n\n"
        return f"{text}{sep}{heading}{begin_marker(name)}\n{body}\n{end_marker(name)}\n"
    return f"{text[:span[0]]}\n{body}\n{text[span[1]:]}"


def strip_note(body: str) -> str:
    """``body`` without the failure note an earlier ``--write`` put at its top."""
    lines = body.split("\n")
    while lines and lines[0].startswith(NOTE):
        lines.pop(0)
        while lines and not lines[0].strip():
            lines.pop(0)
    return "\n".join(lines)


def module_body(rows: list[dict] | None, stamp: str, *, error: str | None = None,
                old: str | None = None) -> str:
    """The text of a module's region: a stamp line and its table, or the old table and a note.

    ``rows`` is what the module's ``main()`` returned; when it raised, ``error`` is its last
    traceback line and ``old`` what the region held before (kept, under the note).
    """
    if error is None:
        assert rows is not None
        return f"_{stamp}._\n\n{table(rows)}"
    note = f"{NOTE} ({stamp}): it raised `{error.replace('`', chr(39))}`."
    kept = strip_note(old or "")
    return f"{note} The table below is from an earlier run.\n\n{kept}" if kept else note


def machine_body(info: Mapping[str, Any]) -> str:
    return table([{"machine": key, "value": value} for key, value in info.items()])


def read(path: Path) -> str:
    return path.read_bytes().decode("utf-8")  # bytes: line endings stay as they are


def write_readme(path: Path, regions: Mapping[str, str]) -> None:
    """Replace (or add) each named region of the README at ``path``; nothing else changes."""
    text = read(path)
    for name, body in regions.items():
        text = set_region(text, name, body)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(text.encode("utf-8"))
    os.replace(tmp, path)


def record(path: Path, name: str, rows: list[dict] | None, *, stamp: str,
           machine: Mapping[str, Any], error: str | None = None) -> None:
    """Write one module's outcome into the README at ``path``: its region and the machine's.

    ``rows`` is what the module's ``main()`` returned, or None with ``error`` (a one-line
    ``"Type: message"``) when it raised: then the region keeps its old table under a note.
    """
    old = region_body(read(path), name)
    write_readme(path, {
        name: module_body(rows, stamp, error=error, old=old),
        MACHINE: machine_body(machine),
    })


# --- the machine ----------------------------------------------------------------------------


def _first(path: str, key: str) -> str | None:
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(key):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=HERE.parent, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def _commit() -> str:
    sha = _git("rev-parse", "--short", "HEAD")
    if sha is None:
        return "unknown (not a git checkout)"
    dirty = _git("status", "--porcelain", "--untracked-files=no", "--", "minigun_nb", "bench")
    return f"{sha} + uncommitted changes in minigun_nb/ or bench/" if dirty else sha


def _ram() -> str:
    total = _first("/proc/meminfo", "MemTotal")
    if total is None:
        return "unknown"
    return f"{int(total.split()[0]) / 2**20:.1f} GiB"


def _utc(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(t))


def machine_info(modules: list[str], started: float, load_start: float, load_end: float,
                 failed: Mapping[str, str] | None = None) -> dict[str, str]:
    """What ran the figures, as the ``machine`` region shows it (key -> value)."""
    cpu = _first("/proc/cpuinfo", "model name") or platform.processor() or platform.machine()
    env = " ".join(f"{k}={v}" for k, v in sorted(os.environ.items()) if k.startswith("MG_BENCH_"))
    info = {
        "modules run": ", ".join(f"`{m}`" for m in modules),
        "date": f"{_utc(started)} to {_utc(time.time())}",
        "commit": _commit(),
        "CPU": cpu,
        "cores": str(os.cpu_count()),
        "RAM": _ram(),
        "Python": f"{platform.python_version()} ({platform.python_implementation()})",
        "OS": f"{platform.system()} {platform.release()}",
        "1-minute load": f"{load_start:.2f} at start, {load_end:.2f} at end",
        "environment": (env or "(no MG_BENCH_* variables: full sizes)") + (
            " (quick sizes: the figures mean little)" if "MG_BENCH_QUICK=1" in env else ""),
    }
    info.update({name: _version(name) for name in VERSIONS})
    if failed:
        info["failed"] = "; ".join(f"`{m}`: {e}" for m, e in failed.items())
    return info


# --- running --------------------------------------------------------------------------------


def available() -> list[str]:
    return sorted(p.stem for p in HERE.glob("bench_*.py"))


def load(name: str) -> Any:
    """The module ``bench/<name>.py`` (imported with this folder on ``sys.path``, as they expect)."""
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    return importlib.import_module(name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/run.py", description=__doc__.split("\n")[0])
    parser.add_argument("modules", nargs="*", help="bench_* modules to run (default: all)")
    parser.add_argument("--write", action="store_true",
                        help="replace the regions of the modules run (and the machine) in the README")
    parser.add_argument("--readme", type=Path, default=README,
                        help="the README to write (default: bench/README.md)")
    args = parser.parse_args(argv)
    known = available()
    modules = [Path(m).stem for m in args.modules] or known
    unknown = [m for m in modules if m not in known]
    if unknown:
        parser.error(f"no such module in bench/: {', '.join(unknown)} (have {', '.join(known)})")
    if args.write:
        text = read(args.readme)
        for name in [MACHINE, *modules]:
            find_region(text, name)  # malformed markers stop the run before anything is measured

    started, load_start = time.time(), os.getloadavg()[0]
    failed: dict[str, str] = {}
    for name in modules:
        t0, load0 = time.time(), os.getloadavg()[0]
        print(f"\n## {name}\n", flush=True)
        rows, error = None, None
        try:
            rows = load(name).main()
            print(table(rows), flush=True)
        except Exception as exc:  # one module failing does not stop the others
            traceback.print_exc()
            error = f"{type(exc).__name__}: {exc}".splitlines()[0]
            failed[name] = error
        if not args.write:
            continue
        load1 = os.getloadavg()[0]
        stamp = (f"{_utc(t0)}, commit {_commit()}, `python bench/run.py --write {name}`, "
                 f"{time.time() - t0:.0f} s, 1-minute load {load0:.2f} at start, {load1:.2f} at end")
        info = machine_info(modules, started, load_start, load1, failed)
        record(args.readme, name, rows, stamp=stamp, machine=info, error=error)
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
