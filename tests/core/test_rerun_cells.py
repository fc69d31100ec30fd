"""SPEC 1 and 12: re-running a notebook cell re-defines what it defined, in place.

Cells are simulated with :func:`run_cell`: the source is compiled again on every run, like a
notebook does, so operators named by default (``pipe.rebatch(10)``) and nested pipelines
added with ``pipe.add(...)`` can tell a re-run from a second definition.
"""

from __future__ import annotations

import pytest

import minigun_nb as mg

from ._helpers import edges, run_cell

pytestmark = pytest.mark.timeout(30)


ETL_CELL = """
@pipe.producer
def paths():
    yield from ([1, 2, 3], [4, 5])

@pipe.processor
def load(path):
    return path

pipe.rebatch(2)

@pipe.consumer
def save(rows):
    return rows
"""

ETL_EDGES = [
    ("paths", "load", "default"),
    ("load", "rebatch", "default"),
    ("rebatch", "save", "default"),
]


def names(pipe):
    return [s.name for s in pipe.stages]


@pytest.mark.parametrize("per_statement", [False, True], ids=["exec", "ipython"])
def test_rerunning_a_cell_with_an_operator_replaces_it_in_place(per_statement):
    ns = {"pipe": mg.Pipeline("etl")}
    run_cell(ns, ETL_CELL, per_statement=per_statement)
    pipe = ns["pipe"]
    first = pipe.run(display="none").outputs
    rebatch = pipe["rebatch"]
    run_cell(ns, ETL_CELL, per_statement=per_statement)
    assert names(pipe) == ["paths", "load", "rebatch", "save"]
    assert edges(pipe) == ETL_EDGES
    assert pipe["rebatch"] is not rebatch  # the new definition, in the old one's place
    assert sorted(pipe.run(display="none").outputs) == sorted(first) == [[1, 2], [3, 4], [5]]


def test_an_edited_cell_replaces_its_operator_even_when_its_lines_moved():
    ns = {"pipe": mg.Pipeline("etl")}
    run_cell(ns, ETL_CELL)
    pipe = ns["pipe"]
    edited = ETL_CELL.replace(
        "    return path\n", "    # one more line moves the operator down\n    return path\n"
    ).replace("pipe.rebatch(2)", "pipe.rebatch(3)")
    run_cell(ns, edited)
    assert names(pipe) == ["paths", "load", "rebatch", "save"]
    assert edges(pipe) == ETL_EDGES
    assert pipe["rebatch"].params["size"] == 3
    assert sorted(pipe.run(display="none").outputs) == [[1, 2, 3], [4, 5]]


def test_an_edited_cell_with_two_operators_in_a_row_replaces_both():
    cell = """
    @pipe.processor
    def load(path):
        return path

    pipe.debatch()
    pipe.batch(2)
    """
    ns = {"pipe": mg.Pipeline("etl")}
    run_cell(ns, cell)
    pipe = ns["pipe"]
    run_cell(ns, cell.replace("return path", "return list(path)").replace("(2)", "(4)"))
    assert names(pipe) == ["load", "debatch", "batch"]
    assert pipe["batch"].params["size"] == 4


@pytest.mark.parametrize("per_statement", [False, True], ids=["exec", "ipython"])
def test_two_operators_in_one_cell_are_numbered_and_both_replaced_on_a_rerun(per_statement):
    cell = "pipe.batch(10); pipe.batch(20)\n"
    ns = {"pipe": mg.Pipeline()}
    run_cell(ns, cell, per_statement=per_statement)
    pipe = ns["pipe"]
    assert names(pipe) == ["batch", "batch_2"]
    run_cell(ns, cell, per_statement=per_statement)
    assert names(pipe) == ["batch", "batch_2"]
    assert [s.params["size"] for s in pipe.stages] == [10, 20]
    assert edges(pipe) == [("batch", "batch_2", "default")]


def test_a_loop_adds_one_operator_per_pass_and_a_rerun_replaces_them():
    cell = """
    for size in (10, 20):
        pipe.batch(size)
    """
    ns = {"pipe": mg.Pipeline()}
    run_cell(ns, cell)
    pipe = ns["pipe"]
    assert names(pipe) == ["batch", "batch_2"]
    run_cell(ns, cell)
    assert names(pipe) == ["batch", "batch_2"]
    assert [s.params["size"] for s in pipe.stages] == [10, 20]


def test_a_helper_called_twice_adds_two_operators():
    ns = {"pipe": mg.Pipeline()}
    run_cell(ns, """
    def add_batch(size):
        return pipe.batch(size)
    """)
    run_cell(ns, "add_batch(10)\nadd_batch(20)\n")
    pipe = ns["pipe"]
    assert names(pipe) == ["batch", "batch_2"]
    run_cell(ns, "pipe.batch(30)\n")  # a new cell with one more operator
    assert names(pipe) == ["batch", "batch_2", "batch_3"]


def test_an_operator_given_a_name_is_replaced_by_name():
    cell = 'pipe.batch(10, name="chunks")\n'
    ns = {"pipe": mg.Pipeline()}
    run_cell(ns, cell)
    run_cell(ns, cell.replace("10", "5"))
    assert names(ns["pipe"]) == ["chunks"]
    assert ns["pipe"]["chunks"].params["size"] == 5


# -- nested pipelines added with pipe.add ------------------------------------------------------


ADD_CELL = """
pipe.add(mg.Pipeline("inner", [mg.processor(lambda x: x + 1, name="inc")]))
"""


def test_rerunning_a_cell_that_adds_a_nested_pipeline_replaces_it_in_place():
    ns = {"mg": mg, "pipe": mg.Pipeline("etl")}
    pipe = ns["pipe"]
    pipe.producer(lambda: [1, 2], name="gen")
    run_cell(ns, ADD_CELL)
    pipe.consumer(lambda x: x, name="save")
    old = pipe["inner"]
    before = edges(pipe)
    run_cell(ns, ADD_CELL)
    assert [p.name for p in pipe.pipelines] == ["inner"]
    assert pipe["inner"] is not old and old.parent is None and pipe["inner"].parent is pipe
    assert edges(pipe) == before == [
        ("gen", "inner/inc", "nested"),
        ("inner/inc", "save", "nested"),
    ]
    run_cell(ns, ADD_CELL.replace("x + 1", "x + 10"))  # the edited cell
    assert [p.name for p in pipe.pipelines] == ["inner"]
    assert sorted(pipe.run(display="none").outputs) == [11, 12]


def test_two_nested_pipelines_of_one_name_in_one_cell_are_still_duplicates():
    ns = {"mg": mg, "pipe": mg.Pipeline("etl")}
    with pytest.raises(mg.DuplicateStageError, match=r"already has a pipeline of that name"):
        run_cell(ns, ADD_CELL + ADD_CELL)
    assert len(ns["pipe"].pipelines) == 1


def test_a_nested_pipeline_never_replaces_a_stage_of_its_name():
    ns = {"mg": mg, "pipe": mg.Pipeline("etl")}
    ns["pipe"].processor(lambda x: x, name="inner")
    with pytest.raises(mg.DuplicateStageError, match=r"already has a stage of that name"):
        run_cell(ns, ADD_CELL)
    assert ns["pipe"].pipelines == []


def test_rerunning_a_hook_cell_replaces_the_hook():
    calls = []
    ns = {"mg": mg, "calls": calls}
    run_cell(ns, """
        pipe = mg.Pipeline("hooks")
        pipe.processor(lambda x: x, name="f")
    """)
    cell = """
        @pipe.before_run
        def hello():
            calls.append("hello")

        pipe.after_run(lambda result: calls.append("bye"))
    """
    run_cell(ns, cell)
    run_cell(ns, cell)  # the same cell again
    pipe = ns["pipe"]
    pipe.before_run(ns["hello"])  # the very same function again: still once
    pipe.run(items=[1], display="none")
    assert calls == ["hello", "bye"]

    # an edited cell: the named hook is replaced; a lambda from an edited cell cannot be told
    # from a new one (another file name), so it is added - def-named hooks are replaceable
    calls.clear()
    run_cell(ns, cell.replace('"hello")', '"hello, edited")'))
    pipe.run(items=[1], display="none")
    assert calls == ["hello, edited", "bye", "bye"]


def test_hooks_registered_in_a_loop_all_stay():
    calls = []
    pipe = mg.Pipeline("loop")
    pipe.processor(lambda x: x, name="f")
    for tag in ("a", "b", "c"):
        pipe.before_run(lambda tag=tag: calls.append(tag))
    pipe.run(items=[1], display="none")
    assert calls == ["a", "b", "c"]
