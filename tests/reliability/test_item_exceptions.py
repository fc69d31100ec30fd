"""SPEC §14: whatever a stage function raises for one item is that item's error row with the
real type; it never ends the run or touches another item (issue 15, findings 1-4)."""

from __future__ import annotations

import asyncio
import sys

import cloudpickle
import pytest

import minigun_nb as mg

from ._helpers import assert_conserved

pytestmark = pytest.mark.timeout(90)
cloudpickle.register_pickle_by_value(sys.modules[__name__])

BACKENDS = ["thread", "inline", "process", "fork", "async"]


class Custom(BaseException):
    """A BaseException that is not an Exception."""


class BadStr(Exception):
    def __str__(self):
        raise ValueError("__str__ is broken")


class BadRepr:
    def __repr__(self):
        raise ValueError("__repr__ is broken")


def raiser(kind):
    if kind == "SystemExit":
        return SystemExit(3)
    if kind == "KeyboardInterrupt":
        return KeyboardInterrupt()
    if kind == "Custom":
        return Custom("custom")
    return BadStr()


def stage_raising(backend, kind, poison=3, workers=2):
    if backend == "async":
        async def work(x):
            if x == poison:
                raise raiser(kind)
            return x
    else:
        def work(x):
            if x == poison:
                raise raiser(kind)
            return x
    return mg.processor(work, backend=backend, workers=workers)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", ["SystemExit", "KeyboardInterrupt", "Custom", "BadStr"])
def test_a_base_exception_or_broken_str_is_one_error_row(backend, kind):
    result = mg.Pipeline([stage_raising(backend, kind)]).run(items=range(10), display="none")
    assert result.status == "done", result.status
    assert sorted(result.outputs) == [0, 1, 2, 4, 5, 6, 7, 8, 9]
    errors = result.errors
    assert list(errors["exc_type"]) == [kind]
    assert list(errors["item"]) == [3]
    if kind == "BadStr":
        assert "BadStr" in errors["message"][0]  # a placeholder naming the type
    assert_conserved(result)


@pytest.mark.parametrize("backend", BACKENDS)
def test_base_exceptions_in_a_generator_stage_fail_only_their_item(backend):
    if backend == "async":
        async def gen(x):
            yield x
            if x % 4 == 1:
                raise SystemExit(1)
            yield -x
    else:
        def gen(x):
            yield x
            if x % 4 == 1:
                raise SystemExit(1)
            yield -x
    result = mg.Pipeline([mg.processor(gen, backend=backend, workers=2)]).run(
        items=range(12), display="none")
    good = [x for x in range(12) if x % 4 != 1]
    assert sorted(result.outputs) == sorted(good + [-x for x in good])
    assert sorted(result.errors["item"]) == [1, 5, 9]
    assert_conserved(result)


def test_a_base_exception_with_retries_is_not_retried_and_is_one_row():
    calls = []

    def work(x):
        calls.append(x)
        if x == 2:
            raise SystemExit(2)
        return x

    result = mg.Pipeline([mg.processor(work, retries=2)]).run(items=range(5), display="none")
    assert sorted(result.outputs) == [0, 1, 3, 4]
    assert list(result.errors["exc_type"]) == ["SystemExit"]
    assert calls.count(2) == 1  # retry_on defaults to (Exception,)
    assert_conserved(result)


@pytest.mark.parametrize("backend", ["process", "fork"])
def test_a_broken_str_does_not_fail_a_healthy_item_of_its_chunk(backend):
    def work(x):
        if x == 5:
            raise BadStr()
        return x

    result = mg.Pipeline([mg.processor(work, backend=backend, workers=1, chunk_size=20)]).run(
        items=range(20), display="none")
    assert sorted(result.outputs) == [x for x in range(20) if x != 5]
    assert list(result.errors["item"]) == [5]
    assert list(result.errors["exc_type"]) == ["BadStr"]


def test_cancelled_error_from_one_coroutine_is_its_row_and_the_others_run():
    async def work(x):
        await asyncio.sleep(0.001 * (x % 3))
        if x == 4:
            raise asyncio.CancelledError("the item's own cancellation")
        return x

    result = mg.Pipeline([mg.processor(work, backend="async", workers=8)]).run(
        items=range(20), display="none")
    assert result.status == "done" and not result.stopped
    assert sorted(result.outputs) == [x for x in range(20) if x != 4]
    assert list(result.errors["exc_type"]) == ["CancelledError"]
    assert list(result.errors["item"]) == [4]
    assert_conserved(result)


@pytest.mark.parametrize("backend", ["thread", "process"])
def test_an_error_table_whose_items_cannot_repr_still_displays(backend):
    def work(x):
        raise ValueError("no")

    result = mg.Pipeline([mg.processor(work, backend=backend)]).run(
        items=[BadRepr()] if backend == "thread" else [1], display="none")
    errors = result.errors
    repr(errors)  # a notebook cell shows this
    errors._repr_html_()
    assert "ValueError" in errors.to_string()
    if backend == "thread":
        assert "BadRepr" in errors["item_repr"][0]
    assert len(result.errors) == 1


def test_item_repr_is_one_short_line():
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"a": range(100), "b": ["x" * 50] * 100})

    def work(df):
        raise ValueError("bad frame")

    result = mg.Pipeline([mg.processor(work)]).run(items=[frame, "y" * 1000], display="none")
    for text in result.errors["item_repr"]:
        assert "\n" not in text
        assert len(text) <= 200
    assert result.errors["item_repr"][0].split()[:2] == ["a", "b"]  # the frame, on one line
