"""Error rows for what a worker reported: the kernel builds the row, then gives it the
worker's traceback (made readable by :mod:`.worker_tracebacks`) and the worker's identity."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..stagefn.outcome import RemoteTraceback
from .worker_tracebacks import code_files, fix_traceback

if TYPE_CHECKING:
    from .run import Run
    from .stagerun import StageRun


class WorkerErrors:
    """Records one pooled stage's error rows in its run."""

    def __init__(self, run: Run, st: StageRun) -> None:
        self.run = run
        self.st = st
        self._files: dict[str, str] | None = None

    def fix(self, tb: str) -> str:
        """The worker's traceback with the file names and source lines it could not show."""
        if self._files is None:
            self._files = code_files(self.st.spec.stage.fn)
        return fix_traceback(tb, self._files)

    def record(
        self,
        item: Any,
        exc: BaseException,
        attempts: int,
        tb: str | None = None,
        worker: str | None = None,
        has_item: bool = True,
        fatal: str | None = None,
    ) -> None:
        """One error row; ``has_item=False`` for setup/teardown (a row that concerns no item
        and is never re-driven)."""
        run = self.run
        if tb:
            tb = self.fix(tb)
            if exc.__cause__ is None:  # the printed StageError shows the worker's frames
                exc.__cause__ = RemoteTraceback(tb)
        if has_item:
            run.record_error(self.st, item, exc, attempts)
        else:
            run.record_error(self.st, None, exc, attempts, has_item=False, fatal=fatal)
        if not tb and not worker:
            return
        # the row was built in the kernel; give it the worker's traceback and identity
        with run.lock:
            for rec in reversed(run.errors):
                if rec.exc is exc:
                    if tb:
                        rec.traceback = tb
                    if worker:
                        rec.worker = worker
                    break
        failure = run.failure
        if tb and failure is not None and failure.__cause__ is exc:
            failure.remote_traceback = tb
