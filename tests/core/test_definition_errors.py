"""SPEC 1 and 5: every DefinitionError names the stage, what is wrong and the fix.

The wording is part of the interface, so the important messages are pinned here.
"""

from __future__ import annotations

import threading

import pytest

import minigun_nb as mg

pytestmark = pytest.mark.timeout(30)


def load(path):
    return path


def message_of(make):
    with pytest.raises(mg.DefinitionError) as info:
        make()
    return str(info.value)


# -- arity ------------------------------------------------------------------------------------


def test_a_producer_with_an_item_parameter():
    def numbers(start):
        yield start

    assert message_of(lambda: mg.producer(numbers)) == (
        "stage 'numbers': a producer takes no item, but it requires 1 parameter(s) (start). "
        "Remove them (or give them defaults), or declare it with @pipe.processor if it should "
        "receive items."
    )


def test_a_processor_without_a_parameter():
    def tick():
        return 1

    assert message_of(lambda: mg.processor(tick)) == (
        "stage 'tick': a processor receives exactly one item, but the function takes no "
        "parameter. Add one (def tick(item): ...), or declare it with @pipe.producer if it "
        "generates items."
    )


def test_a_processor_with_two_parameters():
    def join(left, right):
        return left + right

    pipe = mg.Pipeline()
    assert message_of(lambda: pipe.processor(join)) == (
        "stage 'join': a processor receives exactly one item, but the function requires 2 "
        "parameters (left, right). Keep one item parameter; give the others defaults, or "
        "provide them as resources with setup= returning a dict keyed by their names."
    )
    assert pipe.stages == []


def test_consumer_and_accumulator_arity():
    message = message_of(lambda: mg.consumer(lambda a, b: None, name="save"))
    assert message.startswith("stage 'save': a consumer receives exactly one item")
    message = message_of(lambda: mg.accumulator(lambda: 0, name="total"))
    assert message.startswith("stage 'total': an accumulator receives a list of items")
    assert "def f(items): ..." in message


def test_a_required_keyword_parameter_needs_setup():
    message = message_of(lambda: mg.processor(lambda item, *, db: item, name="query"))
    assert message == (
        "stage 'query': the function requires keyword parameter(s) db that nothing provides. "
        "Give them defaults, or provide them as resources with setup= returning a dict keyed "
        "by their names."
    )


# -- names ------------------------------------------------------------------------------------


def test_a_lambda_needs_a_name():
    assert message_of(lambda: mg.processor(lambda x: x)) == (
        "processor stage: a lambda has no usable name; pass name=, "
        'e.g. pipe.processor(fn, name="clean").'
    )


def test_a_callable_instance_needs_a_name():
    class Scale:
        def __call__(self, item):
            return item

    assert message_of(lambda: mg.Pipeline().processor(Scale())) == (
        "processor stage: a Scale instance has no usable name; pass name=, "
        'e.g. pipe.processor(fn, name="clean").'
    )


def test_invalid_names():
    assert "name='' is not valid" in message_of(lambda: mg.processor(load, name=""))
    assert "Pipeline name 'a/b' is not valid" in message_of(lambda: mg.Pipeline("a/b"))


# -- options ----------------------------------------------------------------------------------


def test_an_unknown_option_suggests_the_closest_one():
    message = message_of(lambda: mg.processor(load, worker=4))
    assert message.startswith("stage 'load': unknown option 'worker'. Did you mean workers")
    assert "Known options: backend, backoff," in message


def test_an_unknown_pipeline_option_suggests_the_closest_one():
    message = message_of(lambda: mg.Pipeline("etl", max_thread=4))
    assert message.startswith(
        "pipeline 'etl': unknown option 'max_thread'. Did you mean max_threads"
    )


def test_operators_reject_worker_options():
    message = message_of(lambda: mg.Pipeline().batch(10, workers=4))
    assert message.startswith("stage 'batch': unknown option 'workers'.")


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (
            {"backend": "gpu"},
            "stage 'load': backend='gpu' is not valid; use one of 'thread', 'process', 'fork', "
            "'async', 'inline', 'dask'.",
        ),
        ({"workers": 0}, "stage 'load': workers=0 is not valid; use an int >= 1, e.g. workers=4."),
        (
            {"workers": -1},
            "stage 'load': workers=-1 is not valid; use an int >= 1, e.g. workers=4.",
        ),
        (
            {"queue_size": 0},
            "stage 'load': queue_size=0 is not valid; use an int >= 1 (items), "
            "e.g. queue_size=1000.",
        ),
        ({"on_error": "x"}, "stage 'load': on_error='x' is not valid; use 'collect' or 'raise'."),
        (
            {"retries": -1},
            "stage 'load': retries=-1 is not valid; use an int >= 0, e.g. retries=3.",
        ),
        (
            {"workers": True},
            "stage 'load': workers=True is not valid; use an int >= 1, e.g. workers=4.",
        ),
        ({"timeout": 0}, "stage 'load': timeout=0 is not valid; use None or seconds > 0."),
        (
            {"retry_on": "IOError"},
            "stage 'load': retry_on='IOError' is not valid; use an exception class or a tuple "
            "of them, e.g. retry_on=(IOError,).",
        ),
    ],
)
def test_bad_option_values(options, expected):
    assert message_of(lambda: mg.processor(load, **options)) == expected


def test_bad_values_in_pipeline_defaults_and_blocks():
    assert message_of(lambda: mg.Pipeline("etl", workers=0)).startswith(
        "pipeline 'etl': workers=0 is not valid"
    )
    pipe = mg.Pipeline("etl")
    assert message_of(lambda: pipe.threads(-1).__enter__()).startswith(
        "pipeline 'etl': workers=-1 is not valid"
    )


def test_bad_operator_parameters():
    assert message_of(lambda: mg.batch(0)) == "stage 'batch': size=0 is not valid; use an int >= 1."
    assert message_of(lambda: mg.debatch(rows="rows")) == (
        "stage 'debatch': rows='rows' is not valid; use 'series', 'dict' or an int >= 1."
    )


def test_a_producer_cannot_have_from():
    assert message_of(lambda: mg.producer(lambda: [], name="gen", from_="a")) == (
        "stage 'gen': a producer has no input, so from_= has no meaning; "
        "make it a processor or drop from_=."
    )


# -- backends ---------------------------------------------------------------------------------


def locked_closure():
    lock = threading.Lock()

    def guarded(item):
        with lock:
            return item

    return guarded


def test_an_unpicklable_function_cannot_go_to_a_process_pool():
    message = message_of(lambda: mg.processor(locked_closure(), backend="process"))
    assert message.startswith(
        "stage 'guarded': backend='process' sends the function to worker processes, but it "
        "cannot be pickled (TypeError: "
    )
    assert "Move what it captures (locks, open files, connections) into setup=" in message
    assert "or use backend='thread' or 'fork'." in message


def test_the_pickle_check_also_covers_blocks_and_pipeline_defaults():
    pipe = mg.Pipeline()
    with pipe.processes(2):
        with pytest.raises(mg.DefinitionError, match=r"stage 'guarded': backend='process'"):
            pipe.processor(locked_closure())
    default_process = mg.Pipeline(backend="process")
    with pytest.raises(mg.DefinitionError, match=r"stage 'guarded': backend='process'"):
        default_process.processor(locked_closure())
    assert pipe.stages == [] and default_process.stages == []
    mg.Pipeline().processor(locked_closure(), backend="fork")  # forks do not pickle


def test_a_nested_pipeline_under_a_process_default_is_checked_at_resolution():
    sub = mg.Pipeline("sub")
    sub.processor(locked_closure())
    parent = mg.Pipeline(backend="process")
    parent.add(sub)
    with pytest.raises(mg.DefinitionError, match=r"stage 'sub/guarded': backend='process'"):
        parent.graph()


async def fetch(url):
    return url


def test_async_and_sync_functions_must_match_their_backend():
    assert message_of(lambda: mg.processor(fetch, backend="thread")) == (
        "stage 'fetch': the function is an async def, but backend='thread'; "
        "use backend='async' (or make it a plain def)."
    )
    assert message_of(lambda: mg.processor(load, backend="async")) == (
        "stage 'load': backend='async' needs an async def function; "
        "write `async def load(item): ...` or use backend='thread'."
    )
    pipe = mg.Pipeline()
    with pipe.tasks(10):
        with pytest.raises(mg.DefinitionError, match=r"backend='async' needs an async def"):
            pipe.processor(load)


def test_every_definition_error_is_a_value_error_under_one_base():
    for cls in (
        mg.DuplicateStageError,
        mg.UnknownStageError,
        mg.AmbiguousStageError,
        mg.CycleError,
        mg.PipelineRunningError,
    ):
        assert issubclass(cls, mg.DefinitionError)
    assert issubclass(mg.DefinitionError, mg.MinigunError)
    assert issubclass(mg.DefinitionError, ValueError)
