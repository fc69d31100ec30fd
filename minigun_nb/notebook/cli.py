"""``minigun-nb``: run a pipeline script headless, with an exit status a scheduler can use.

``minigun-nb run job.py [--allow-errors] [-- args for the script]`` runs ``job.py`` as
``python job.py`` would (as ``__main__``, with ``sys.argv`` set to the script and its args),
prints each finished run's summary table, and exits

- 0 when every run ended ``done`` with no error rows;
- 1 when a run failed, was stopped or cancelled, or had error rows (error rows are allowed
  with ``--allow-errors``), or when the script raised;

Runs the script started but did not wait for (``pipe.start()``) are waited for before the
exit status is decided.
- 2 on a usage error.

Notebooks (``.ipynb``) and ``minigun-nb export`` need the notebook export, which is not built
yet: both say so and exit 2.
"""

from __future__ import annotations

import argparse
import os
import runpy
import sys
import traceback
from typing import TYPE_CHECKING

from .. import __version__

if TYPE_CHECKING:
    from ..runtime.result import RunResult

NOT_BUILT = (
    "minigun-nb: {what} needs the notebook export, which is not built yet in minigun_nb "
    "{version}; run a .py script instead (jupytext --to py:percent turns a notebook into one)"
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="minigun-nb", description="Run minigun_nb pipeline scripts headless."
    )
    parser.add_argument("--version", action="version", version=f"minigun_nb {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a pipeline script; exit 1 when a run failed or had errors")
    run.add_argument("script", help="a .py file (as `python script.py` would run it)")
    run.add_argument(
        "--allow-errors", action="store_true", help="error rows alone do not make the exit status 1"
    )
    export = sub.add_parser("export", help="notebook -> script (not built yet)")
    export.add_argument("notebook")
    export.add_argument("-o", "--output")
    return parser


class _Tally:
    """Every run the script finishes: print its summary and remember how it went."""

    def __init__(self) -> None:
        self.runs = 0
        self.failed = 0
        self.with_errors = 0

    def __call__(self, result: RunResult) -> None:
        self.runs += 1
        if result.status != "done":  # failed, or stopped/cancelled: the job did not finish
            self.failed += 1
        if len(result._errors):
            self.with_errors += 1
        print(f"\nrun {result.run_id}: {result.status}", flush=True)
        print(result.summary(), flush=True)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    # everything after the first "--" belongs to the script
    args = argv[argv.index("--") + 1 :] if "--" in argv else []
    opts = _parser().parse_args(argv[: len(argv) - len(args) - (1 if "--" in argv else 0)])
    if opts.command == "export":
        print(NOT_BUILT.format(what="export", version=__version__), file=sys.stderr)
        return 2
    script = opts.script
    if script.endswith(".ipynb"):
        print(NOT_BUILT.format(what="running a notebook", version=__version__), file=sys.stderr)
        return 2
    if not os.path.isfile(script):
        print(f"minigun-nb: no such script: {script}", file=sys.stderr)
        return 2
    from ..runtime import handle

    tally = _Tally()
    handle.RESULT_LISTENERS.append(tally)
    saved_argv, saved_path = sys.argv, list(sys.path)
    sys.argv = [script, *args]
    sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
    try:
        runpy.run_path(script, run_name="__main__")
        for started in list(handle.LIVE_HANDLES):  # runs left running by the script
            started.wait()
    except SystemExit as exc:  # the script's own exit status wins when it is an error
        if exc.code not in (None, 0):
            return exc.code if isinstance(exc.code, int) else 1
    except KeyboardInterrupt:
        print("minigun-nb: interrupted", file=sys.stderr)
        return 130
    except Exception:  # noqa: BLE001 - a scheduler needs the status, a person the trace
        traceback.print_exc()
        return 1
    finally:
        sys.argv, sys.path[:] = saved_argv, saved_path
        handle.RESULT_LISTENERS.remove(tally)
    problems = tally.failed + (0 if opts.allow_errors else tally.with_errors)
    print(
        f"\nminigun-nb: {tally.runs} run(s), {tally.failed} failed or stopped, "
        f"{tally.with_errors} with errors",
        file=sys.stderr,
    )
    return 1 if problems else 0


if __name__ == "__main__":  # pragma: no cover - python -m minigun_nb.notebook.cli
    sys.exit(main())
