"""SPEC §14: a StageError from a worker process prints the worker's traceback as its cause
(issue 15, finding 5)."""

from __future__ import annotations

import sys
import traceback

import cloudpickle
import pytest

import minigun_nb as mg

pytestmark = pytest.mark.timeout(90)
cloudpickle.register_pickle_by_value(sys.modules[__name__])


def parse_record(x):
    if x == 2:
        raise ValueError(f"record {x} is malformed")  # the user's line
    return x


@pytest.mark.parametrize("backend", ["process", "fork"])
def test_a_stage_error_from_a_worker_prints_the_users_frame(backend):
    pipe = mg.Pipeline([mg.processor(parse_record, backend=backend, on_error="raise")])
    with pytest.raises(mg.StageError) as info:
        pipe.run(items=[1, 2, 3], display="none")
    err = info.value
    printed = "".join(traceback.format_exception(err))
    assert "parse_record" in printed
    assert 'raise ValueError(f"record {x} is malformed")' in printed
    assert printed.index("parse_record") < printed.index("StageError")  # the cause comes first
    assert isinstance(err.__cause__, ValueError)
    assert "parse_record" in err.remote_traceback


def test_the_error_row_keeps_the_worker_traceback_only():
    pipe = mg.Pipeline([mg.processor(parse_record, backend="process")])
    result = pipe.run(items=[2], display="none")
    tb = result.errors["traceback"][0]
    assert "parse_record" in tb
    assert tb.count("Traceback (most recent call last)") == 1  # the worker's, once
