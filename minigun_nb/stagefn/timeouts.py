"""A per-item ``timeout`` inside a worker process: a soft timeout backed by a hard one.

The soft timeout (SIGALRM) raises ``TimeoutError`` in the item; an item that ignores it is
ended by the watchdog, which ends the whole process with :data:`~.outcome.TIMEOUT_EXIT` (the
kernel records ``TimeoutError`` for it). Off the main thread (Dask worker threads) the item
runs on a helper thread that is abandoned when it overruns (:class:`~.calling.TimeoutCaller`).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from .calling import TimeoutCaller
from .outcome import TIMEOUT_EXIT


class Watchdog:
    """Ends the process when an item overruns its deadline and ignored the soft timeout."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._deadline: float | None = None
        threading.Thread(target=self._watch, name="mg-watchdog", daemon=True).start()

    def arm(self, deadline: float) -> None:
        with self._cond:
            self._deadline = deadline
            self._cond.notify()

    def disarm(self) -> None:
        self._deadline = None  # the watcher re-checks on wake; no notify needed

    def _watch(self) -> None:
        with self._cond:
            while True:
                deadline = self._deadline
                if deadline is None:
                    self._cond.wait()
                    continue
                left = deadline - time.monotonic()
                if left <= 0:
                    sys.stderr.flush()
                    os._exit(TIMEOUT_EXIT)
                self._cond.wait(left)


_watchdog: Watchdog | None = None
_alarm = {"armed": False, "message": ""}


def _on_alarm(signum: int, frame: Any) -> None:
    if _alarm["armed"]:
        _alarm["armed"] = False
        raise TimeoutError(_alarm["message"])


class ItemTimer:
    """Runs one item's call under ``timeout`` seconds (see the module's docstring)."""

    def __init__(self, timeout: float) -> None:
        global _watchdog
        self.timeout = timeout
        self.grace = max(1.0, timeout)
        self.main = threading.current_thread() is threading.main_thread() and hasattr(
            signal, "setitimer"
        )  # no SIGALRM on Windows
        self.caller: TimeoutCaller | None = None
        if self.main:
            signal.signal(signal.SIGALRM, _on_alarm)
            if _watchdog is None:
                _watchdog = Watchdog()
        else:
            self.caller = TimeoutCaller("mg-worker-timeout")

    def run(self, fn: Callable[[], None]) -> None:
        if self.caller is not None:
            self.caller.call(lambda _: fn(), None, self.timeout)
            return
        assert _watchdog is not None
        _alarm["message"] = f"item took longer than timeout={self.timeout} s"
        _watchdog.arm(time.monotonic() + self.timeout + self.grace)
        _alarm["armed"] = True
        signal.setitimer(signal.ITIMER_REAL, self.timeout)
        try:
            fn()
        finally:
            _alarm["armed"] = False
            signal.setitimer(signal.ITIMER_REAL, 0)
            _watchdog.disarm()
