"""``backend="async"``: ``async def`` stages on one event loop, ``workers`` coroutines in flight."""

from __future__ import annotations

import asyncio
import threading

import pytest

import minigun_nb as mg

from ._helpers import assert_conserved

pytestmark = pytest.mark.timeout(120)


def run(pipe, **kw):
    return pipe.run(display="none", **kw)


class InFlight:
    def __init__(self):
        self.now = self.max = 0
        self.lock = threading.Lock()

    def enter(self):
        with self.lock:
            self.now += 1
            self.max = max(self.max, self.now)

    def leave(self):
        with self.lock:
            self.now -= 1


def test_fifty_workers_keep_fifty_coroutines_in_flight():
    gauge = InFlight()
    threads = set()

    @mg.processor(workers=50)
    async def fetch(x):
        gauge.enter()
        threads.add(threading.get_ident())
        await asyncio.sleep(0.05)
        gauge.leave()
        return x

    assert fetch.options["backend"] == "async"
    result = run(mg.Pipeline([fetch]), items=range(200))
    assert sorted(result.outputs) == list(range(200))
    assert gauge.max == 50  # never more than workers, and all of them used
    assert len(threads) == 1  # one event loop thread
    assert_conserved(result)


def test_a_context_block_and_async_generators_output_and_dynamic_routes():
    pipe = mg.Pipeline("aio")
    with pipe.tasks(10):

        @pipe.processor(routes=["evens"])
        async def split(x, output):
            await asyncio.sleep(0)
            output.emit([x])
            if x % 2 == 0:
                output.to("evens").emit(x)
            yield (x, "gen")
            yield mg.to("evens", -x) if x % 2 == 0 else None

    @pipe.consumer
    def sink(item):
        return ("sink", item)

    @pipe.processor(dynamic=True)
    def evens(x):
        return ("even", x)

    result = run(pipe, items=range(6))
    got = result.outputs_by_stage["sink"]
    assert sorted(map(repr, got)) == sorted(
        map(
            repr,
            [("sink", [x]) for x in range(6)]
            + [("sink", (x, "gen")) for x in range(6)]
            + [("sink", None)] * 3,
        )
    )
    assert sorted(result.outputs_by_stage["evens"]) == sorted(
        [("even", x) for x in (0, 2, 4)] + [("even", -x) for x in (0, 2, 4)]
    )
    assert_conserved(result)


def test_errors_retries_and_timeouts_on_the_event_loop():
    attempts = {}

    @mg.processor(workers=4, retries=1, timeout=0.2)
    async def shaky(x):
        attempts[x] = attempts.get(x, 0) + 1
        if x == 1 and attempts[x] == 1:
            raise OSError("once")
        if x == 2:
            raise ValueError("always")
        if x == 3:
            await asyncio.sleep(10)
        return x

    result = run(mg.Pipeline([shaky]), items=range(5))
    assert sorted(result.outputs) == [0, 1, 4]
    errors = result.errors.sort_values("item")
    assert errors["exc_type"].tolist() == ["ValueError", "TimeoutError"]
    assert errors["attempts"].tolist() == [2, 2]
    assert result.stats.loc["shaky", "retried"] == 3
    assert_conserved(result)


def test_setup_runs_once_on_the_loop_and_resources_are_injected():
    calls = []

    def setup():
        calls.append("setup")
        return {"session": "S"}

    def teardown(session):
        calls.append(f"teardown {session}")

    @mg.processor(workers=8, setup=setup, teardown=teardown)
    async def get(x, session):
        await asyncio.sleep(0.001)
        return session, x

    result = run(mg.Pipeline([get]), items=range(20))
    assert sorted(result.outputs) == [("S", x) for x in range(20)]
    assert calls == ["setup", "teardown S"]


def test_a_sync_function_on_the_async_backend_is_a_definition_error():
    with pytest.raises(mg.DefinitionError, match="async def"):
        mg.processor(lambda x: x, name="f", backend="async")


def test_sync_iter_runs_an_async_producer_on_a_private_loop():
    from minigun_nb.runtime.async_iter import sync_iter

    closed = []

    async def numbers():
        try:
            for i in range(5):
                await asyncio.sleep(0)
                yield i
        finally:
            closed.append(True)

    async def listing():
        return [1, 2]

    async def one():
        return "abc"

    assert list(sync_iter(numbers())) == [0, 1, 2, 3, 4]
    it = sync_iter(numbers())
    assert next(it) == 0
    it.close()  # a draining stop closes the producer: its finally runs
    assert closed == [True, True]
    assert list(sync_iter(listing())) == [1, 2]
    assert list(sync_iter(one())) == ["abc"]
