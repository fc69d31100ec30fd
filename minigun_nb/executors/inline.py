"""An executor that runs each chunk at once in the submitting thread, through the worker's
chunk runner (:class:`~minigun_nb.stagefn.runner.PreparedJob`): the reference for the
protocol in :mod:`.base`, and the test double that drives a pooled stage without processes.

Nothing is pickled, nothing can crash a worker, so every outcome arrives before ``submit``
returns. A per-item ``timeout`` is the worker's (SIGALRM on the main thread; an item that
ignores it ends the process, as it would end a worker): keep it to items that let it work.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any

from ..stagefn.outcome import ErrorInfo, Job, Outcome, TaskCancelled
from ..stagefn.runner import PreparedJob
from ..stagefn.wire import with_ends
from .base import ExecutorSpec


class InlineExecutor:
    """Chunks run in the caller's thread, one at a time."""

    depth = 1
    isolates_crashes = True
    target_seconds = 0.02
    moves_bytes = False
    reporter_drives = False
    item_bytes = 0.0

    def __init__(self, spec: ExecutorSpec) -> None:
        self.spec = spec
        self.prep: PreparedJob | None = None
        self.cancelled = False

    def open(self, job: Job) -> None:
        self.prep = PreparedJob(job, "inline")
        self.cancelled = False

    def submit(self, items: Sequence[Any], report: Callable[[Outcome], None]) -> Future[None]:
        fut: Future[None] = Future()
        fut.set_running_or_notify_cancel()
        prep = self.prep
        assert prep is not None, "open() first"
        try:
            if self.cancelled:
                raise TaskCancelled()
            items = list(items)
            err = prep.ensure()
            if err is not None:
                report(Outcome(0, len(items), worker=prep.worker, setup_error=err))
            else:
                prep.run(items, sink=lambda oc, layout: report(with_ends(oc, layout)))
        except BaseException as exc:  # noqa: BLE001 - handed to the driver
            fut.set_exception(exc)
        else:
            fut.set_result(None)
        return fut

    def cancel(self) -> None:
        self.cancelled = True

    def finish(self) -> list[ErrorInfo]:
        return [] if self.prep is None else self.prep.teardown()

    def close(self) -> None:
        self.prep = None
