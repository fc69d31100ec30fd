"""Calling a stage function on one item: injection, retries and their backoff, timeouts, the
text of an error.

Shared by every worker kind (threads, worker processes, fork children, the async loop) so the
semantics (what a retry is, how long it waits, what an error says) are the same whatever runs
the function.

Examples
--------
>>> policy = RetryPolicy(retries=2, retry_on=(ValueError,))
>>> policy.retries_after(ValueError(), 1), policy.retries_after(ValueError(), 3)
(True, False)
>>> policy.retries_after(KeyError(), 1)
False
>>> retry_delay(0.0, 3)
0.0
"""

from __future__ import annotations

import inspect
import queue
import random
import threading
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import GeneratorType
from typing import Any


class Control(BaseException):
    """The runtime's own signals raised through a stage function's frames (a stop, a
    cancel, a finished call). Everything else a stage function raises, ``SystemExit`` and
    ``KeyboardInterrupt`` included, is that item's error row (SPEC §14); item loops catch
    ``Control`` first and let it through."""


class ItemCancelled(Control):
    """Raised at an emission (a yield, ``output.emit``) of an item running when the run is
    cancelled: the generator is closed there and the item counted as cancelled."""


def safe_str(exc: BaseException) -> str:
    """``str(exc)``, or a placeholder naming its type when that raises (SPEC §14)."""
    try:
        return str(exc)
    except BaseException as err:  # noqa: BLE001 - the row must exist whatever __str__ does
        return f"<{type(exc).__name__}: str() raised {type(err).__name__}>"


def format_tb(exc: BaseException) -> str:
    """The traceback text; never raises (a broken ``__str__`` is rendered by traceback)."""
    try:
        return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    except BaseException:  # noqa: BLE001
        return f"{type(exc).__name__}: {safe_str(exc)}\n"


# -- retries ---------------------------------------------------------------------------------------
def retry_delay(backoff: float, attempt: int) -> float:
    """Seconds to wait before retrying after failed attempt ``attempt`` (1 for the first):
    exponential backoff with jitter, ``backoff * 2**(attempt-1)`` scaled by 0.5..1.5."""
    if backoff <= 0:
        return 0.0
    return backoff * (2 ** (attempt - 1)) * (0.5 + random.random())


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """A stage's ``retries``, ``retry_on`` and ``backoff`` options."""

    retries: int = 0
    retry_on: tuple[type[BaseException], ...] = (Exception,)
    backoff: float = 0.0

    def retries_after(self, exc: BaseException, attempt: int) -> bool:
        """Whether failed attempt ``attempt`` (1 for the first) of an item is retried."""
        return attempt <= self.retries and isinstance(exc, self.retry_on)

    def delay(self, attempt: int) -> float:
        """The wait before the retry that follows failed attempt ``attempt``."""
        return retry_delay(self.backoff, attempt)


# -- injection ---------------------------------------------------------------------------------
def as_resources(path: str, got: Any) -> dict[str, Any]:
    """What a stage's ``setup=`` returned, checked: a dict of resources (None means none)."""
    if got is None:
        return {}
    if not isinstance(got, dict):
        raise TypeError(
            f"stage {path!r}: setup= must return a dict of resources (or None), "
            f"got {type(got).__name__}"
        )
    return got


def wants(fn: Callable[..., Any]) -> tuple[bool, set[str]]:
    """Whether ``fn`` takes an ``output`` parameter, and the names it could take as resources."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False, set()
    names = set(params)
    var_kw = any(p.kind is p.VAR_KEYWORD for p in params.values())
    return "output" in names, (names | {"*"}) if var_kw else names


def bind(
    fn: Callable[..., Any], resources: Mapping[str, Any] | None, output: Any, item_param: bool
) -> Callable[..., Any]:
    """A one-argument (or no-argument for producers) callable with injections bound."""
    takes_output, names = wants(fn)
    kwargs: dict[str, Any] = {}
    if resources:
        kwargs.update(
            {k: v for k, v in resources.items() if k in names or "*" in names}
        )
    if takes_output:
        kwargs["output"] = output
    if not kwargs:
        return fn
    if item_param:
        return lambda item: fn(item, **kwargs)
    return lambda: fn(**kwargs)


def bind_output(fn: Callable[..., Any], resources: Mapping[str, Any] | None
                ) -> Callable[[Any, Any], Any]:
    """``(item, output) -> result`` with resources bound, for a stage that takes ``output``:
    each call gets an ``output`` of its own, closed when the call ends (SPEC §14)."""
    _, names = wants(fn)
    kwargs = {k: v for k, v in (resources or {}).items()
              if (k in names or "*" in names) and k != "output"}
    return lambda item, output: fn(item, output=output, **kwargs)


# -- timeouts ------------------------------------------------------------------------------------
def _replay(items: list[Any]) -> Any:
    yield from items


class TimeoutCaller:
    """Run calls on a helper thread so a per-item ``timeout`` can give up on them.

    A thread cannot be killed: a call that overruns is abandoned (its thread keeps running in
    the background until the function returns) and a fresh helper thread serves the next item.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._jobs: queue.SimpleQueue[Any] | None = None

    def _start(self) -> queue.SimpleQueue[Any]:
        jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()

        def serve() -> None:
            while True:
                job = jobs.get()
                if job is None:
                    return
                call, arg, box, done = job
                try:
                    r = call(arg)
                    if type(r) is GeneratorType:
                        # a generator does its work while iterated: iterate it here, under
                        # the timeout, and hand the worker a generator over the results
                        r = _replay(list(r))
                    box.append((True, r))
                except BaseException as exc:  # noqa: BLE001 - handed back to the worker
                    box.append((False, exc))
                done.set()

        threading.Thread(target=serve, name=f"{self._name}-call", daemon=True).start()
        self._jobs = jobs
        return jobs

    def call(self, fn: Callable[[Any], Any], arg: Any, timeout: float) -> Any:
        jobs = self._jobs or self._start()
        box: list[tuple[bool, Any]] = []
        done = threading.Event()
        jobs.put((fn, arg, box, done))
        if not done.wait(timeout):
            self._jobs = None  # abandon the stuck thread; the next call starts a new one
            jobs.put(None)  # it exits once the stuck call returns
            raise TimeoutError(f"item took longer than timeout={timeout} s")
        ok, value = box[0]
        if ok:
            return value
        raise value

    def close(self) -> None:
        if self._jobs is not None:
            self._jobs.put(None)
            self._jobs = None
