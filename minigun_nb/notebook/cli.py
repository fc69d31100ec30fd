"""``minigun-nb``: export a notebook to a script; run a notebook or a script headless.

``minigun-nb export NB [-o SCRIPT]`` writes the notebook as a plain script (:mod:`.export`).

``minigun-nb run TARGET [-p NAME=VALUE ...] [--output EXECUTED.ipynb] [--hud] [--log-json]
[--allow-errors] [-v] [-- SCRIPT ARGS]`` runs a script as ``python TARGET`` would (as
``__main__``), or a notebook converted as ``export`` converts it, in this process; with
``--output`` the notebook runs in a Jupyter kernel instead and is saved with its outputs
(:mod:`.kernelrun`). Every run's display is ``"text"`` (``"hud"`` with ``--hud``; none with
``--log-json``, whose JSON lines own stderr); each run's summary is printed once, and at the end
what went wrong: the first error rows of each run. Exit status:

- 0 when every run ended ``done`` with no error rows;
- 1 when a run failed, was stopped or cancelled, or had error rows (allowed with
  ``--allow-errors``), or the code raised;
- 2 on a usage error (a missing or unreadable notebook, a bad ``-p``, an unknown option);
- 130 after an interrupt: the first SIGINT drains the running run and ends the job, a second
  one cancels.

Runs the code started but did not wait for (``pipe.start()``) are waited for first.
"""

from __future__ import annotations

import argparse
import ast
import logging
import os
import re
import runpy
import shutil
import signal
import sys
import tempfile
import threading
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import __version__

if TYPE_CHECKING:
    from ..runtime.result import RunResult

log = logging.getLogger("minigun_nb")
#: error rows printed per run at the end (the rest are counted)
FIRST_ERRORS = 5
NOTEBOOK_SUFFIXES = (".ipynb",)


class UsageError(Exception):
    """A mistake in the command line or its files: one line on stderr, exit status 2."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="minigun-nb",
        description="Export minigun_nb notebooks to scripts; run notebooks and scripts headless.",
    )
    parser.add_argument("--version", action="version", version=f"minigun_nb {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser(
        "run", help="run a notebook or a script; exit 1 when a run failed or had errors",
        description="Run a notebook (converted as export does, in this process; in a kernel "
                    "with --output) or a script (as `python SCRIPT` would). Exit status: 0 ok, "
                    "1 a run failed/stopped or had error rows or the code raised, 2 usage "
                    "error, 130 interrupted.")
    run.add_argument("target", metavar="TARGET", help="a notebook (.ipynb) or a .py script")
    run.add_argument("-p", "--parameter", action="append", default=[], metavar="NAME=VALUE",
                     help="set a parameter of the notebook's cell tagged parameters (VALUE "
                          "is read as a Python literal; a plain word is a string)")
    run.add_argument("--output", metavar="EXECUTED.ipynb",
                     help="run the notebook in a Jupyter kernel and save it with its outputs")
    run.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                     help="with --output: the longest a cell may run (default: no limit)")
    run.add_argument("--hud", action="store_true", help="show the full-screen terminal HUD")
    run.add_argument("--log-json", action="store_true",
                     help="log records as JSON lines on stderr (INFO and up; DEBUG with -v)")
    run.add_argument("--allow-errors", action="store_true",
                     help="error rows alone do not make the exit status 1")
    run.add_argument("-v", "--verbose", action="store_true",
                     help="log DEBUG records too (process starts, forks, reaps)")
    export = sub.add_parser("export", help="write a notebook as a plain Python script",
                            description="Write NOTEBOOK as a plain Python script; never runs "
                                        "the notebook's code.")
    export.add_argument("notebook", metavar="NOTEBOOK")
    export.add_argument("-o", "--output", metavar="SCRIPT",
                        help="the script to write (default: the notebook's name with .py)")
    return parser


# -- what the runs did -------------------------------------------------------------------------
def say(message: str, json_logs: bool, level: int = logging.INFO) -> None:
    """One line of the runner on stderr: a log record (a JSON line) with ``--log-json``."""
    if json_logs:
        log.log(level, message, extra={"run_id": None, "stage": None})
    else:
        print(message, file=sys.stderr, flush=True)


def run_record(result: Any) -> dict[str, Any]:
    """What the runner keeps of a finished run (JSON values, so a kernel can send it too)."""
    from .logjson import run_finished_fields

    errors = result._errors
    rows = []
    for e in errors[:FIRST_ERRORS]:
        row = e.row()
        rows.append({k: str(row[k]) for k in ("stage", "item_repr", "exc_type", "message")})
    return {
        "run_id": result.run_id,
        "pipeline": result.snapshot.pipeline or "pipeline",
        "status": result.status,
        "summary": result.summary(),
        "finished": run_finished_fields(result),
        "errors_total": len(errors),
        "errors": rows,
    }


def log_finished(record: dict[str, Any]) -> None:
    """The ``run_finished`` log record of a run (a JSON line with ``--log-json``)."""
    fields = record["finished"]
    log.info("run %s of %s finished: %s", record["run_id"], record["pipeline"],
             record["status"], extra={"run_id": record["run_id"], "stage": None,
                                      "event": "run_finished", "fields": fields})


class Tally:
    """Every run that ends in this process: remember it, report it as it ends."""

    def __init__(self, print_summary: bool, json_logs: bool) -> None:
        self.print_summary = print_summary  # the display prints it otherwise
        self.json_logs = json_logs
        self.records: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.on_end: Any = None  # called after each run (the interrupt ends the job there)

    def __call__(self, result: RunResult) -> None:
        record = run_record(result)
        with self.lock:
            self.records.append(record)
        log_finished(record)
        if self.print_summary:
            print(record["summary"], flush=True)
        if not self.json_logs:
            from ..display.text import status_line

            print(status_line(result.snapshot), file=sys.stderr, flush=True)
        if self.on_end is not None:
            self.on_end()


def exit_status(records: list[dict[str, Any]], allow_errors: bool, json_logs: bool) -> int:
    """Print the runs' outcome (what went wrong on stdout, the counts on stderr); 0 or 1."""
    report(records)
    failed = sum(r["status"] != "done" for r in records)
    with_errors = sum(bool(r["errors_total"]) for r in records)
    final = (f"minigun-nb: {len(records)} run(s), {failed} failed or stopped, "
             f"{with_errors} with errors")
    say(final, json_logs)
    return 1 if failed + (0 if allow_errors else with_errors) else 0


def report(records: list[dict[str, Any]]) -> None:
    """What went wrong, on stdout: each run's status and its first error rows."""
    for r in records:
        head = f"minigun-nb: run {r['run_id']} ({r['pipeline']}): {r['status']}"
        if not r["errors_total"]:
            print(head, flush=True)
            continue
        print(f"{head}, {r['errors_total']} error(s):", flush=True)
        for row in r["errors"]:
            message = " ".join(row["message"].split())
            if len(message) > 200:
                message = message[:197] + "..."
            print(f"  {row['stage']}  item {row['item_repr']}  {row['exc_type']}: {message}",
                  flush=True)
        more = r["errors_total"] - len(r["errors"])
        if more > 0:
            print(f"  ... and {more} more error(s) (result.errors has them all)", flush=True)


@contextmanager
def forced_display(mode: str) -> Iterator[None]:
    """Every run started in here gets display ``mode`` whatever its code asks: the runner
    decides how a headless job is seen (``display=`` values are still checked)."""
    from ..display import forced

    with forced(mode):
        yield


class Interrupts:
    """SIGINT while a job runs: the first drains the running run and ends the job once it
    has ended; the second cancels. Both reach the code as KeyboardInterrupt, as in a notebook.
    """

    def __init__(self) -> None:
        self.count = 0
        self._ours = False  # the next SIGINT is end_job's, not the user's
        self._ended = False
        self._saved: Any = None

    def __enter__(self) -> Interrupts:
        if threading.current_thread() is threading.main_thread():
            self._saved = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._saved is not None:
            signal.signal(signal.SIGINT, self._saved)

    def _handle(self, signum: int, frame: Any) -> None:
        if self._ours:
            self._ours = False
        else:
            self.count += 1
        raise KeyboardInterrupt

    def end_job(self) -> None:
        """A run ended after the first SIGINT: stop the code there (the run drained)."""
        if self.count and not self._ended:
            import _thread

            self._ended = self._ours = True
            _thread.interrupt_main()


# -- parameters --------------------------------------------------------------------------------
def script_parameters(path: str) -> list[str] | None:
    """The parameter names of a script made by ``minigun-nb export`` (its
    ``parse_parameters({...})`` call), or None for another script."""
    try:
        tree = ast.parse(Path(path).read_text(encoding="utf-8"))
    except (SyntaxError, UnicodeDecodeError, OSError):
        return None
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id == "parse_parameters" and node.args
                and isinstance(node.args[0], ast.Dict)):
            return [k.value for k in node.args[0].keys
                    if isinstance(k, ast.Constant) and isinstance(k.value, str)]
    return None


def parse_assignments(given: list[str], known: list[str] | None, target: str
                      ) -> dict[str, Any]:
    """``-p NAME=VALUE`` options, checked against the known parameter names."""
    from .params import ParameterError, parse_value

    values: dict[str, Any] = {}
    for text in given:
        name, eq, raw = text.partition("=")
        name = name.strip()
        if not eq or not name:
            raise UsageError(f"-p {text!r}: write -p NAME=VALUE, e.g. -p limit=100")
        if known is None:
            raise UsageError(
                f"-p {name}: {target} takes no parameters (a notebook needs a cell tagged "
                f"parameters; a script one made by minigun-nb export); pass a script's own "
                f"arguments after --")
        if name not in known:
            names = ", ".join(known) if known else "none (no cell tagged parameters)"
            raise UsageError(f"-p {name}: unknown parameter; the parameters of {target} are: "
                             f"{names}")
        try:
            values[name] = parse_value(raw)
        except ParameterError as exc:
            raise UsageError(f"-p {name}: {exc}") from None
    return values


# -- commands ----------------------------------------------------------------------------------
def cmd_export(opts: argparse.Namespace) -> int:
    from .export import ExportError, export_notebook

    try:
        out, done = export_notebook(opts.notebook, opts.output)
    except ExportError as exc:
        raise UsageError(str(exc)) from None
    for warning in done.warnings:
        print(f"minigun-nb export: warning: {warning}", file=sys.stderr)
    names = done.parameters.names
    options = f" (options: {', '.join('--' + n for n in names)})" if names else ""
    print(f"minigun-nb: wrote {out}{options}", file=sys.stderr)
    return 0


def cmd_run(opts: argparse.Namespace, script_args: list[str]) -> int:
    target = opts.target
    if not os.path.isfile(target):
        raise UsageError(f"no such file: {target}")
    notebook = target.endswith(NOTEBOOK_SUFFIXES)
    exported = None
    if notebook:
        from .export import ExportError, convert, read_notebook

        try:
            nb = read_notebook(target)
            exported = convert(nb, name=Path(target).stem, notebook_name=Path(target).name)
        except ExportError as exc:
            raise UsageError(str(exc)) from None
        known: list[str] | None = exported.parameters.names
    else:
        known = script_parameters(target)
    values = parse_assignments(opts.parameter, known, target)
    if opts.output is not None:
        if not notebook:
            raise UsageError(f"--output needs a notebook to execute; {target} is a script")
        folder = Path(opts.output).parent
        if not folder.is_dir():
            raise UsageError(f"--output {opts.output}: the folder {folder} does not exist")
    from .logjson import install, uninstall

    undo = install(json_lines=True, verbose=opts.verbose) if opts.log_json else (
        install(json_lines=False, verbose=True) if opts.verbose else [])
    try:
        if opts.output is not None:
            from .kernelrun import run_in_kernel

            return run_in_kernel(target, opts.output, values, opts)
        return run_here(target, exported.source if exported else None, values, script_args,
                        opts)
    finally:
        uninstall(undo)


def run_here(target: str, source: str | None, values: dict[str, Any], script_args: list[str],
             opts: argparse.Namespace) -> int:
    """Run a script (or a converted notebook's ``source``) in this process."""
    from .. import shutdown
    from ..runtime import handle

    mode = "hud" if opts.hud else "none" if opts.log_json else "text"
    tally = Tally(print_summary=mode == "none", json_logs=opts.log_json)
    tmpdir = None
    script = target
    if source is not None:  # a notebook: its script, written where tracebacks can show it
        tmpdir = tempfile.mkdtemp(prefix="minigun-nb-")
        script = os.path.join(tmpdir, Path(target).stem + ".py")
        Path(script).write_text(source, encoding="utf-8")
    args = [a for name, value in values.items() for a in (f"--{name}", repr(value))]
    saved_argv, saved_path = sys.argv, list(sys.path)
    sys.argv = [script, *args, *script_args]
    sys.path.insert(0, os.path.dirname(os.path.abspath(target)))
    handle.RESULT_LISTENERS.append(tally)
    status: int | None = None
    try:
        with Interrupts() as interrupts, forced_display(mode):
            tally.on_end = interrupts.end_job
            try:
                try:
                    runpy.run_path(script, run_name="__main__")
                except KeyboardInterrupt:
                    raise
                finally:
                    _finish_live(handle)  # runs the code started and left running
            except KeyboardInterrupt:
                status = 130
                say("minigun-nb: interrupted", opts.log_json, logging.WARNING)
            except SystemExit as exc:  # the code's own exit (argparse's 2 included)
                if exc.code not in (None, 0):
                    status = exc.code if isinstance(exc.code, int) else 1
                    if not isinstance(exc.code, int):
                        print(exc.code, file=sys.stderr)
            except BaseException as exc:  # noqa: BLE001 - the job's status, and its trace
                _print_raised(exc, target, opts.log_json, script if source else None, source)
                status = 1
            if interrupts.count:
                status = 130
    finally:
        sys.argv, sys.path[:] = saved_argv, saved_path
        handle.RESULT_LISTENERS.remove(tally)
        if tmpdir is not None:
            shutil.rmtree(tmpdir, ignore_errors=True)
        shutdown(wait=False)  # no warm worker outlives the job
    code = exit_status(tally.records, opts.allow_errors, opts.log_json)
    return status if status is not None else code


def _finish_live(handle: Any) -> None:
    """Wait for the runs still going (a first Ctrl-C here drains them, a second cancels)."""
    live = [h for h in list(handle.LIVE_HANDLES)]
    try:
        for h in live:
            h.wait()
    except KeyboardInterrupt:
        for h in live:
            h.stop(drain=True)
        try:
            for h in live:
                h.wait()
        except KeyboardInterrupt:
            for h in live:
                h.stop(drain=False)
            for h in live:
                h._finished.wait()
        raise
    finally:
        for h in live:
            if h.done:
                h.join_displays()


def _print_raised(exc: BaseException, target: str, json_logs: bool,
                  script: str | None = None, source: str | None = None) -> None:
    """The job's traceback without the runner's frames, then one line that says it (for a
    notebook, with the cell the error came from)."""
    tb = exc.__traceback__
    while tb is not None and not _is_user_frame(tb.tb_frame.f_code.co_filename):
        tb = tb.tb_next
    text = "".join(traceback.format_exception(type(exc), exc, tb))
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    line = f"minigun-nb: {target} raised {type(exc).__name__}" + (f": {message}" if message
                                                                   else "")
    cell = _cell_of(tb, script, source)
    if cell is not None:
        line += f" (in cell {cell})"
    if json_logs:
        log.error(line, extra={"run_id": None, "stage": getattr(exc, "stage", None)},
                  exc_info=(type(exc), exc, tb))
    else:
        print(text.rstrip(), file=sys.stderr)
        print(line, file=sys.stderr, flush=True)


def _cell_of(tb: Any, script: str | None, source: str | None) -> int | None:
    """The notebook cell of the deepest frame in the converted script (its ``# -- cell N``
    markers), or None."""
    if script is None or source is None:
        return None
    lineno = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == script:
            lineno = tb.tb_lineno
        tb = tb.tb_next
    if lineno is None:
        return None
    lines = source.splitlines()
    for i in range(min(lineno, len(lines)) - 1, -1, -1):
        match = re.match(r"\s*# -- cell (\d+)", lines[i])
        if match:
            return int(match.group(1))
    return None


def _is_user_frame(filename: str) -> bool:
    return not (filename == __file__ or filename.endswith(("runpy.py", "<frozen runpy>")))


def main(argv: list[str] | None = None) -> int:
    """The ``minigun-nb`` command; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    # everything after the first "--" belongs to the script
    script_args = argv[argv.index("--") + 1:] if "--" in argv else []
    ours = argv[: argv.index("--")] if "--" in argv else argv
    opts = _parser().parse_args(ours)  # exits 2 with argparse's usage line on a bad option
    try:
        if opts.command == "export":
            return cmd_export(opts)
        return cmd_run(opts, script_args)
    except UsageError as exc:
        if getattr(opts, "log_json", False):  # still one line, and JSON like the rest
            from .logjson import install, uninstall

            undo = install(json_lines=True)
            try:
                log.error(f"minigun-nb: {exc}", extra={"run_id": None, "stage": None})
            finally:
                uninstall(undo)
        else:
            print(f"minigun-nb: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover - python -m minigun_nb.notebook.cli
    sys.exit(main())
