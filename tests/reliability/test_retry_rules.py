"""The retry rules, the same on every backend now that one policy serves them all (issue 11):
``retry_on=()`` retries nothing, a ``BaseException`` in an accumulator is one error row, and
``retried`` counts only the retries that ran."""

from __future__ import annotations

import sys
import time

import cloudpickle
import pytest

import minigun_nb as mg

from ._helpers import assert_conserved

pytestmark = pytest.mark.timeout(90)
cloudpickle.register_pickle_by_value(sys.modules[__name__])


def always_fails(x):
    raise ValueError(f"bad {x}")


async def always_fails_async(x):
    raise ValueError(f"bad {x}")


@pytest.mark.parametrize("backend", ["thread", "inline", "process", "fork", "async"])
@pytest.mark.parametrize(("retry_on", "attempts"), [((), 1), ((ValueError,), 3), (None, 3)])
def test_retry_on_decides_on_every_backend(backend, retry_on, attempts):
    fn = always_fails_async if backend == "async" else always_fails
    options = {} if retry_on is None else {"retry_on": retry_on}
    stage = mg.processor(fn, name="f", backend=backend, retries=2, **options)
    result = mg.Pipeline("retry_on", [stage]).run(items=range(4), display="none")
    assert list(result.errors["attempts"]) == [attempts] * 4
    assert result.stats.loc["f", "retried"] == 4 * (attempts - 1)
    assert_conserved(result)


def test_an_accumulator_retries_only_what_retry_on_names():
    calls = []
    pipe = mg.Pipeline("acc_retry_on")

    @pipe.producer
    def numbers():
        yield from range(6)

    @pipe.accumulator(3, retries=2, retry_on=())
    def total(batch):
        calls.append(list(batch))
        raise ValueError("no")

    result = pipe.run(display="none")
    assert len(calls) == 2  # two batches, one attempt each
    assert list(result.errors["attempts"]) == [1] * 6  # a row per item of the failed batches


def test_a_base_exception_in_an_accumulator_is_an_error_row():
    pipe = mg.Pipeline("acc_base")

    @pipe.producer
    def numbers():
        yield from range(8)

    @pipe.accumulator(2)
    def total(batch):
        if batch[0] == 2:
            raise SystemExit("bye")
        return sum(batch)

    result = pipe.run(display="none")
    assert result.status == "done"
    assert sorted(result.outputs) == [1, 9, 13]
    assert set(result.errors["exc_type"]) == {"SystemExit"}
    assert_conserved(result)


def test_retried_counts_the_retries_that_ran_when_a_cancel_cuts_a_backoff():
    # Each item fails, waits 0.4 s, fails again...; the cancel comes during the first backoffs,
    # so the retries counted are the attempts made after the first, never one that never ran.
    attempts: list[int] = []

    def slow_fail(x):
        attempts.append(x)
        raise ValueError("again")

    pipe = mg.Pipeline("cancel_backoff")
    pipe.processor(slow_fail, name="f", workers=2, retries=3, backoff=0.4)
    handle = pipe.start(items=range(6), display="none")
    time.sleep(0.2)
    handle.stop(drain=False)
    result = handle.wait(timeout=30)
    assert result.status == "cancelled"
    made = len(attempts)
    assert result.stats.loc["f", "retried"] == made - len(set(attempts))
    assert_conserved(result)
