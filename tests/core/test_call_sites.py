"""A definition records the user's line, however many package frames it went through."""

from __future__ import annotations

import inspect
import sys

import pytest

import minigun_nb as mg
from minigun_nb.stagefn.frames import PACKAGE_DIR, in_package, inside_package, outer_frame

pytestmark = pytest.mark.timeout(30)


def _next_line() -> int:
    """The line after the caller's."""
    return inspect.currentframe().f_back.f_lineno + 1


def test_an_operator_records_the_line_that_added_it():
    pipe = mg.Pipeline()
    line = _next_line()
    op = pipe.batch(10)
    assert (op.site.filename, op.site.lineno) == (__file__, line)


def test_an_operator_routed_into_a_nested_pipeline_records_the_users_line():
    pipe = mg.Pipeline("outer")
    with pipe.pipeline("inner"):
        line = _next_line()
        op = pipe.debatch()
    assert pipe["inner"].stages == [op]
    assert (op.site.filename, op.site.lineno) == (__file__, line)


def test_a_nested_pipeline_block_records_the_with_line():
    pipe = mg.Pipeline("outer")
    line = _next_line()
    with pipe.pipeline("inner") as inner:
        pass
    assert (inner.site.filename, inner.site.lineno) == (__file__, line)


def test_outer_frame_walks_out_from_the_caller_or_further():
    def inner():
        return outer_frame(lambda f: f.f_code.co_name == "inner")

    def middle():
        return inner(), outer_frame(lambda f: False, depth=1)

    (frame, steps), (caller, none_skipped) = middle()
    assert frame.f_code.co_name == "middle" and steps == 1
    assert caller is sys._getframe() and none_skipped == 0


def test_the_package_directory_is_the_package():
    assert inside_package(mg.__file__)
    assert PACKAGE_DIR.endswith("minigun_nb/") or PACKAGE_DIR.endswith("minigun_nb\\")
    assert not inside_package(__file__)
    assert not in_package(sys._getframe())
