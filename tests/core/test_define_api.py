"""SPEC 1: defining stages with decorators, standalone stages, composition, blocks, re-runs."""

from __future__ import annotations

import pytest

import minigun_nb as mg

from ._helpers import edges

pytestmark = pytest.mark.timeout(30)



# -- decorators ---------------------------------------------------------------------------


def test_decorators_bare_and_with_options_return_callable_stages():
    pipe = mg.Pipeline("etl")

    @pipe.producer
    def numbers():
        yield from range(3)

    @pipe.processor(workers=8)
    def double(x):
        return 2 * x

    @pipe.accumulator(size=10, timeout=1.0)
    def total(xs):
        return sum(xs)

    @pipe.consumer
    def show(x):
        return None

    assert isinstance(double, mg.Stage)
    assert double(21) == 42  # still the function, for trying one item in a cell
    assert list(numbers()) == [0, 1, 2]
    assert total([1, 2, 3]) == 6
    assert [(s.name, s.kind) for s in pipe.stages] == [
        ("numbers", "producer"),
        ("double", "processor"),
        ("total", "accumulator"),
        ("show", "consumer"),
    ]
    assert double.options == {"workers": 8}
    assert total.params == {"size": 10, "timeout": 1.0}


def test_stage_infers_the_kind_from_the_signature():
    pipe = mg.Pipeline()

    @pipe.stage
    def gen():
        return [1, 2]

    @pipe.stage(workers=2)
    def work(item):
        return item

    assert (gen.kind, work.kind) == ("producer", "processor")
    assert edges(pipe) == [("gen", "work", "default")]


def test_the_stage_keeps_the_function_docstring_and_wrapped():
    def load(path):
        """Load one file."""
        return path

    stage = mg.processor(load)
    assert stage.__doc__ == "Load one file."
    assert stage.__wrapped__ is load


def test_resolved_options_fill_in_defaults_and_pipeline_defaults():
    pipe = mg.Pipeline(workers=3, retries=2)
    pipe.producer(lambda: [1], name="gen", workers=5)
    pipe.processor(lambda x: x, name="f")
    pipe.processor(lambda x: x, name="g", workers=1, queue_size=10)
    stages = pipe.graph().stages
    assert stages["gen"].options["workers"] == 1  # a producer runs once, on one worker
    assert (stages["f"].options["workers"], stages["f"].options["retries"]) == (3, 2)
    assert (stages["g"].options["workers"], stages["g"].options["queue_size"]) == (1, 10)
    assert stages["f"].options["backend"] == "thread"
    assert stages["f"].options["queue_size"] == 1000
    assert stages["f"].options["retry_on"] == (Exception,)


def test_pipeline_options_are_recorded_on_the_graph():
    pipe = mg.Pipeline("etl", max_threads=16, max_processes=4, max_outputs=10)
    pipe.processor(abs)
    options = pipe.graph().options
    assert (options["max_threads"], options["max_processes"], options["max_outputs"]) == (16, 4, 10)
    assert mg.Pipeline().graph().options["max_threads"] is None


# -- standalone stages and composition --------------------------------------------------------


def test_a_standalone_stage_stays_callable_and_keeps_its_options():
    square = mg.processor(lambda x: x * x, name="square", workers=4)
    assert square(3) == 9
    assert (square.name, square.kind, square.options) == ("square", "processor", {"workers": 4})


def read():
    return [1, 2]


def parse(item):
    return item


def save(item):
    return None


def test_a_pipeline_from_a_list_chains_its_stages():
    pipe = mg.Pipeline([mg.producer(read), mg.processor(parse), mg.consumer(save)])
    assert pipe.name == "pipeline"
    assert edges(pipe) == [("read", "parse", "default"), ("parse", "save", "default")]
    named = mg.Pipeline("etl", [mg.producer(read), parse])
    assert named.name == "etl"
    assert edges(named) == [("read", "parse", "default")]


def test_pipe_operator_chains_stages():
    a, b, c = mg.producer(read), mg.processor(parse), mg.consumer(save)
    pipe = a | b | c
    assert isinstance(pipe, mg.Pipeline)
    assert edges(pipe) == [("read", "parse", "default"), ("parse", "save", "default")]
    assert [s.name for s in (read | b).stages] == ["read", "parse"]  # a plain function too


def test_composition_never_changes_its_operands():
    inner = mg.Pipeline("inner", [mg.processor(parse)])
    first = mg.producer(read) | inner
    second = mg.producer(read) | inner  # the same pipeline composed twice
    assert inner.parent is None
    assert edges(first) == edges(second) == [("read", "inner/parse", "nested")]
    chain = mg.Pipeline([mg.producer(read)]) | mg.Pipeline([mg.consumer(save)])
    assert edges(chain) == [("read", "save", "default")]  # unnamed lists flatten
    longer = (mg.producer(read) | inner) | mg.consumer(save)
    assert edges(longer) == [("read", "inner/parse", "nested"), ("inner/parse", "save", "nested")]


def test_adding_a_standalone_stage_copies_it():
    shared = mg.processor(parse, workers=2)
    one, two = mg.Pipeline("one"), mg.Pipeline("two")
    one.add(shared, to="save")
    two.add(shared)
    assert one["parse"] is not shared and one["parse"].to == ("save",)
    assert two["parse"].to is None and shared.to is None


# -- context blocks ---------------------------------------------------------------------------


def test_context_blocks_set_backend_and_workers_and_stage_options_win():
    pipe = mg.Pipeline()

    def f(x):
        return x

    with pipe.threads(8):
        a = pipe.processor(f, name="a")
        b = pipe.processor(f, name="b", workers=2)
    with pipe.processes(3):
        c = pipe.processor(abs, name="c")
    with pipe.forks(2):
        d = pipe.processor(f, name="d")
        e = pipe.processor(f, name="e", backend="thread")
    with pipe.tasks(50):

        async def fetch(url):
            return url

        g = pipe.processor(fetch)
    h = pipe.processor(f, name="h")
    got = {
        s.name: (s.options.get("backend"), s.options.get("workers")) for s in (a, b, c, d, e, g, h)
    }
    assert got == {
        "a": ("thread", 8),
        "b": ("thread", 2),
        "c": ("process", 3),
        "d": ("fork", 2),
        "e": ("thread", 2),
        "fetch": ("async", 50),
        "h": (None, None),  # outside any block: the defaults apply when resolved
    }


def test_context_blocks_apply_inside_a_nested_pipeline():
    pipe = mg.Pipeline()
    with pipe.threads(4):
        with pipe.pipeline("inner"):
            f = pipe.processor(abs, name="f")
    assert (f.options["backend"], f.options["workers"]) == ("thread", 4)


def test_an_async_def_gets_the_async_backend_by_itself():
    async def fetch(url):
        return url

    assert mg.processor(fetch).options["backend"] == "async"
    pipe = mg.Pipeline()
    with pipe.threads(4):  # the function's nature wins over the block's backend
        stage = pipe.processor(fetch)
    assert stage.options == {"backend": "async", "workers": 4}


# -- arity ------------------------------------------------------------------------------------


def test_accepted_signatures():
    class Resource:
        pass

    assert mg.processor(lambda item, output: None, name="emit").kind == "processor"
    assert mg.processor(lambda item, scale=2: item, name="defaults").kind == "processor"
    assert mg.processor(lambda *items: items, name="star").kind == "processor"
    assert mg.producer(lambda output: None, name="pushing").kind == "producer"
    with_db = mg.processor(lambda item, db: item, name="q", setup=lambda: {"db": Resource()})
    assert with_db.kind == "processor"
    keyword = mg.processor(lambda item, *, db: item, name="k", setup=lambda: {"db": 1})
    assert keyword.kind == "processor"
    assert mg.producer(lambda db: [db], name="p", setup=lambda: {"db": 1}).kind == "producer"
    assert mg.accumulator(lambda items: sum(items), name="acc").params == {
        "size": 100,
        "timeout": None,
    }


def test_a_callable_instance_is_a_stage_given_a_name():
    class Counter:
        def __init__(self):
            self.seen = 0

        def __call__(self, item):
            self.seen += 1
            return item

    counter = Counter()
    stage = mg.processor(counter, name="count")
    assert stage(5) == 5 and counter.seen == 1
    assert mg.stage(Counter(), name="c").kind == "processor"


def test_a_callable_instance_brings_its_own_setup_and_teardown():
    class Lookup:
        def setup(self):
            return {"table": {1: "one"}}

        def teardown(self, table):
            table.clear()

        def __call__(self, item, table):  # `table` is a resource from setup()
            return table[item]

    lookup = Lookup()
    pipe = mg.Pipeline([mg.processor(lookup, name="lookup")])
    options = pipe.graph().stages["lookup"].options
    assert options["setup"] == lookup.setup and options["teardown"] == lookup.teardown
    given = mg.Pipeline([mg.processor(lookup, name="lookup", setup=dict)])
    assert given.graph().stages["lookup"].options["setup"] is dict  # setup= wins


# -- re-running a cell ------------------------------------------------------------------------


def test_rerunning_a_cell_replaces_the_stage_in_place_keeping_edges():
    pipe = mg.Pipeline()

    @pipe.producer
    def gen():
        yield 1

    @pipe.processor(to="save")
    def load(x):
        return x

    @pipe.processor
    def mid(x):
        return x

    @pipe.consumer
    def save(x):
        pass

    before = edges(pipe)
    original = pipe["load"]

    @pipe.processor(to="save", workers=4)  # the cell, edited and run again
    def load(x):  # noqa: F811 - that is the point
        return x * 2

    assert [s.name for s in pipe.stages] == ["gen", "load", "mid", "save"]
    assert edges(pipe) == before
    assert pipe["load"] is load and load is not original
    assert pipe["load"].options == {"workers": 4}
    assert pipe["load"](2) == 4


def test_a_different_function_with_the_same_name_is_a_duplicate():
    pipe = mg.Pipeline("etl")

    @pipe.processor
    def clean(x):
        return x

    def other(x):
        return x

    with pytest.raises(mg.DuplicateStageError) as info:
        pipe.processor(other, name="clean")
    message = str(info.value)
    assert message.startswith("stage 'clean': pipeline 'etl' already has a stage of that name")
    assert "defined by function 'clean'; 'other' cannot take it" in message
    assert 'Give it another name (name="clean_2")' in message
    assert [s.fn for s in pipe.stages] == [clean.fn]


def test_a_stage_may_not_take_a_nested_pipelines_name():
    pipe = mg.Pipeline()
    with pipe.pipeline("inner"):
        pass
    with pytest.raises(mg.DuplicateStageError, match=r"defined by nested pipeline 'inner'"):
        pipe.processor(abs, name="inner")


def test_operators_are_numbered_when_the_name_is_taken():
    pipe = mg.Pipeline()
    names = [
        pipe.batch(10).name,
        pipe.batch(10).name,
        pipe.debatch().name,
        pipe.rebatch(5).name,
        pipe.batch(3, name="mine").name,
        pipe.debatch(rows=2).name,
    ]
    assert names == ["batch", "batch_2", "debatch", "rebatch", "mine", "debatch_2"]
    assert pipe["batch_2"].params == {"size": 10, "timeout": None, "key": None, "frame": False}
    assert pipe["debatch_2"].params == {"rows": 2}
    assert [e[:2] for e in edges(pipe)][:2] == [("batch", "batch_2"), ("batch_2", "debatch")]


def test_standalone_operators():
    assert (mg.batch(100).kind, mg.debatch().kind, mg.rebatch(10).kind) == (
        "batch",
        "debatch",
        "rebatch",
    )
    resolved = mg.Pipeline([mg.batch(2), mg.debatch()]).graph().stages
    assert resolved["batch"].options["backend"] == "inline"  # operators run in the kernel


# -- locking ----------------------------------------------------------------------------------


def test_defining_is_locked_while_a_run_is_in_progress():
    pipe = mg.Pipeline("etl")
    with pipe.pipeline("inner") as inner:
        pass
    pipe._running = 1  # what the runtime sets for the duration of a run
    for define in (
        lambda: pipe.processor(abs, name="f"),
        lambda: inner.processor(abs, name="g"),
        lambda: pipe.add(mg.Pipeline("other")),
        lambda: pipe.before_run(lambda: None),
        lambda: pipe.parallel().__enter__(),
    ):
        with pytest.raises(mg.PipelineRunningError) as info:
            define()
        assert "pipeline 'etl' is running; its definition is locked" in str(info.value)
        assert "handle.wait()" in str(info.value)
    pipe._running = 0
    pipe.processor(abs, name="f")
    assert isinstance(mg.PipelineRunningError("x"), mg.DefinitionError)


def test_hooks_are_registered_per_pipeline():
    pipe = mg.Pipeline()
    with pipe.pipeline("inner") as inner:

        @pipe.after_fork
        def reseed():
            pass

    @pipe.before_run
    def hello():
        pass

    @pipe.on_error
    def log(exc, item, stage):
        pass

    hooks = pipe.graph().hooks
    assert hooks["before_run"] == (("", hello),)
    assert hooks["on_error"] == (("", log),)
    assert hooks["after_fork"] == (("inner", reseed),)
    assert inner.hooks["after_fork"] == [reseed]


def test_accumulator_takes_size_and_timeout_positionally():
    pipe = mg.Pipeline()

    @pipe.accumulator(50, 0.5)
    def total(items):
        return sum(items)

    assert total.params == {"size": 50, "timeout": 0.5}
    assert mg.accumulator(7)(sum).params["size"] == 7
    with pytest.raises(mg.DefinitionError, match="given twice"):
        pipe.accumulator(5, size=6)
