"""``backend="async"``: ``async def`` stage functions on one event loop thread per stage.

``workers`` coroutines are in flight at most (one semaphore across every chunk), so a stage
with ``workers=100`` keeps 100 requests open. Chunks only batch the hop between the kernel's
driver thread and the loop; the items of a chunk run concurrently. Nothing is pickled.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from types import GeneratorType
from typing import Any

from ..stagefn.calling import as_resources, bind
from ..stagefn.outcome import ErrorInfo, Job, Outcome, TaskCancelled, encode_error
from ..stagefn.output import Output
from ..stagefn.runner import collect_values, worker_name
from .base import ExecutorSpec

perf = time.perf_counter

#: (static outputs, dynamic outputs, index) of the item the current coroutine serves
_current: contextvars.ContextVar[tuple[list[Any], list[tuple[int, str, Any]], int]] = (
    contextvars.ContextVar("mg_async_item")
)


def _emit(item: Any) -> None:
    _current.get()[0].append(item)


def _send(name: str, item: Any) -> None:
    out, dyn, index = _current.get()
    dyn.append((index, name, item))


def _cancelled_by_runtime() -> bool:
    """Whether the current task is being cancelled from outside (a cancel of the run, which
    cancels the chunk's gather), not by a ``CancelledError`` the coroutine raised itself."""
    task = asyncio.current_task()
    cancelling = getattr(task, "cancelling", None)  # Python 3.11+
    return task is not None and (cancelling() > 0 if cancelling else task.cancelled())


async def _maybe_await(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value


class AsyncExecutor:
    """Chunks of coroutines on the stage's own event loop thread."""

    depth = 2
    isolates_crashes = True
    target_seconds = 0.02
    moves_bytes = False  # nothing is pickled
    reporter_drives = False
    item_bytes = 0.0

    def __init__(self, spec: ExecutorSpec) -> None:
        self.workers = spec.workers
        self.path = spec.path
        self.job: Job | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread: threading.Thread | None = None
        self.sem: asyncio.Semaphore | None = None
        self.call: Callable[[Any], Any] | None = None
        self.resources: dict[str, Any] | None = None
        self.setup_error: ErrorInfo | None = None
        self.setup_lock: asyncio.Lock | None = None
        self.pending: set[Future[Any]] = set()
        self.lock = threading.Lock()
        self.worker = worker_name("async")

    def open(self, job: Job) -> None:
        self.job = job
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(
            target=self.loop.run_forever, daemon=True, name=f"mg-{self.path}-loop"
        )
        self.thread.start()

        async def init() -> None:
            self.sem = asyncio.Semaphore(self.workers)
            self.setup_lock = asyncio.Lock()

        asyncio.run_coroutine_threadsafe(init(), self.loop).result()

    async def _ensure(self) -> ErrorInfo | None:
        assert self.setup_lock is not None and self.job is not None
        async with self.setup_lock:
            if self.call is not None or self.setup_error is not None:
                return self.setup_error
            job = self.job
            try:
                resources: dict[str, Any] = {}
                if job.setup is not None:
                    resources = as_resources(job.path, await _maybe_await(job.setup()))
                self.resources = resources
                self.call = bind(job.fn, resources, Output(_emit, _send), item_param=True)
            except Exception as exc:  # noqa: BLE001 - reported; the driver fails the stage
                self.setup_error = encode_error(-1, exc, 1)
            return self.setup_error

    def submit(self, items: Sequence[Any], report: Callable[[Outcome], None]) -> Future[None]:
        assert self.loop is not None
        fut: Future[None] = Future()
        fut.set_running_or_notify_cancel()
        cf = asyncio.run_coroutine_threadsafe(self._chunk(list(items)), self.loop)
        with self.lock:
            self.pending.add(cf)

        def done(cf: Future[Outcome]) -> None:
            with self.lock:
                self.pending.discard(cf)
            if cf.cancelled():
                fut.set_exception(TaskCancelled())
                return
            exc = cf.exception()
            if exc is not None:
                fut.set_exception(exc)
                return
            try:
                report(cf.result())
            except BaseException as err:  # noqa: BLE001
                fut.set_exception(err)
                return
            fut.set_result(None)

        cf.add_done_callback(done)
        return fut

    async def _chunk(self, items: list[Any]) -> Outcome:
        err = await self._ensure()
        if err is not None:
            return Outcome(0, len(items), worker=self.worker, setup_error=err)
        results = await asyncio.gather(*(self._item(i, x) for i, x in enumerate(items)))
        out: list[Any] = []
        dyn: list[tuple[int, str, Any]] = []
        errors: list[ErrorInfo] = []
        lat: list[float] = []
        done = failed = filtered = retried = 0
        busy = 0.0
        ends: list[int] = []  # where each item's ``out`` ends, sent when routes are
        for i_out, i_dyn, error, tries, seconds in results:
            out.extend(i_out)
            ends.append(len(out))
            if error is None:
                dyn.extend(i_dyn)
                done += 1
                if not i_out and not i_dyn:
                    filtered += 1
            else:
                failed += 1
                errors.append(error)
            retried += tries
            busy += seconds
            lat.append(seconds)
        assert self.job is not None
        return Outcome(
            0,
            len(items),
            out,
            dyn,
            done,
            failed,
            filtered,
            retried,
            busy,
            lat if self.job.track else [],
            errors,
            self.worker,
            ends=ends if dyn else (),
        )

    async def _item(
        self, i: int, item: Any
    ) -> tuple[list[Any], list[Any], ErrorInfo | None, int, float]:
        assert self.sem is not None and self.job is not None and self.call is not None
        job = self.job
        policy = job.policy
        call = self.call
        out: list[Any] = []
        dyn: list[tuple[int, str, Any]] = []
        async with self.sem:
            t0 = perf()
            _current.set((out, dyn, i))
            attempt = 1
            while True:
                mark, dmark = len(out), len(dyn)
                try:
                    if job.timeout is None:
                        await self._run_one(call, item, out, dyn, i)
                    else:
                        try:
                            await asyncio.wait_for(
                                self._run_one(call, item, out, dyn, i), job.timeout
                            )
                        except TimeoutError:
                            if perf() - t0 < job.timeout * 0.99:
                                raise  # the function's own TimeoutError
                            raise TimeoutError(
                                f"item took longer than timeout={job.timeout} s"
                            ) from None
                    return out, dyn, None, attempt - 1, perf() - t0
                except BaseException as exc:  # noqa: BLE001 - an item error (SystemExit too)
                    if isinstance(exc, asyncio.CancelledError) and _cancelled_by_runtime():
                        raise  # a cancel of the run; else the coroutine's own CancelledError
                    del out[mark:]  # a failed attempt leaves nothing behind
                    del dyn[dmark:]
                    if policy.retries_after(exc, attempt):
                        delay = policy.delay(attempt)
                        if delay > 0:
                            await asyncio.sleep(delay)
                        attempt += 1
                        t0 = perf() if job.timeout is not None else t0
                        continue
                    return [], [], encode_error(i, exc, attempt), attempt - 1, perf() - t0

    @staticmethod
    async def _run_one(
        call: Callable[[Any], Any],
        item: Any,
        out: list[Any],
        dyn: list[tuple[int, str, Any]],
        i: int,
    ) -> None:
        r = call(item)
        if inspect.isasyncgen(r):
            values: Any = [v async for v in r]
        else:
            r = await _maybe_await(r)
            if r is None:
                return
            values = r if type(r) is GeneratorType else (r,)
        collect_values(values, i, out, dyn)

    def cancel(self) -> None:
        with self.lock:
            pending = list(self.pending)
        for cf in pending:
            cf.cancel()

    def finish(self) -> list[ErrorInfo]:
        job = self.job
        if job is None or self.loop is None or self.resources is None or job.teardown is None:
            return []
        resources = self.resources
        teardown = job.teardown

        async def down() -> list[ErrorInfo]:
            try:
                await _maybe_await(teardown(**resources))
            except Exception as exc:  # noqa: BLE001
                return [encode_error(-1, exc, 1)]
            return []

        return asyncio.run_coroutine_threadsafe(down(), self.loop).result()

    def close(self) -> None:
        loop = self.loop
        if loop is None:
            return
        self.cancel()

        async def settle() -> None:
            # let cancelled coroutines unwind (their finally blocks) before the loop stops
            me = asyncio.current_task()
            tasks = [t for t in asyncio.all_tasks() if t is not me]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        try:
            asyncio.run_coroutine_threadsafe(settle(), loop).result(timeout=10)
        except Exception:  # noqa: BLE001 - a coroutine that refuses to end is abandoned
            pass
        loop.call_soon_threadsafe(loop.stop)
        if self.thread is not None:
            self.thread.join(timeout=10)
        if not loop.is_running():
            loop.close()
