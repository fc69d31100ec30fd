"""Re-running notebook cells is safe (issue 13, item 5).

``rerun_cells.ipynb`` is a small tutorial-style notebook. Its cells run in one Jupyter kernel
kept open (nbclient's ``execute_cell``), the way a person runs them: in order, then each
definition cell twice in a shuffled order, then with stages edited between runs. After each
run of the pipeline the notebook's last cell prints the pipeline's state, and the test
compares it with what plain Python gives: the stages stay the same four in the same order,
no stage is duplicated, and the results follow the latest definitions.
"""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path

import nbformat
import pytest

NOTEBOOK = Path(__file__).with_name("rerun_cells.ipynb")

#: cell indexes in rerun_cells.ipynb
SETUP, PRODUCER, SQUARE, TOTAL, RUN, CHECK = 1, 2, 3, 4, 5, 7
DEFINITIONS = [PRODUCER, SQUARE, TOTAL]

STAGES = ["numbers", "square", "batch", "total"]
EDGES = [["numbers", "square"], ["square", "batch"], ["batch", "total"]]


class Session:
    """One kernel, the notebook's cells, and a way to run (or edit and run) any of them."""

    def __init__(self, client, nb):
        self.client, self.nb = client, nb
        self.count = 0

    def run(self, index: int, source: str | None = None):
        cell = self.nb.cells[index]
        if source is not None:
            cell.source = source  # an edit in the notebook, then the cell is run
        self.count += 1
        cell.outputs = []  # the kernel's display updates (the dashboard's end) land in nb's cell
        self.client.execute_cell(cell, index, execution_count=self.count)
        errors = [o for o in cell.outputs if o.get("output_type") == "error"]
        assert not errors, f"cell {index} raised: {errors[0].get('evalue')}"
        return copy.deepcopy(cell)

    def state(self) -> dict:
        self.run(RUN)
        ran = self.run(CHECK)
        text = "".join(o.get("text", "") for o in ran.outputs if o.get("name") == "stdout")
        return json.loads(text.strip().splitlines()[-1])


def expect(state: dict, total: int, outputs: int) -> None:
    assert state["stages"] == STAGES, "a stage was duplicated, lost or moved"
    assert state["edges"] == EDGES
    assert state["stats"] == STAGES
    assert (state["total"], state["outputs"]) == (total, outputs)
    assert state["ok"] and state["errors"] == 0


@pytest.mark.timeout(300)
def test_cells_rerun_twice_out_of_order_and_edited():
    from nbclient import NotebookClient

    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(nb, kernel_name="python3", timeout=120, store_widget_state=False,
                            resources={"metadata": {"path": str(NOTEBOOK.parent)}})
    squares = sum(x * x for x in range(100))
    with client.setup_kernel():
        session = Session(client, nb)
        for index in [SETUP, *DEFINITIONS]:  # top to bottom, once
            session.run(index)
        expect(session.state(), squares, 10)

        # every definition cell twice, out of order (a seeded shuffle): nothing changes
        order = DEFINITIONS * 2
        random.Random(2).shuffle(order)
        assert order != sorted(order) and order[0] != PRODUCER
        for index in order:
            session.run(index)
        expect(session.state(), squares, 10)
        expect(session.state(), squares, 10)  # and the same pipeline runs again

        # edit a stage (same name, new body and options): it is replaced where it was, and
        # so is the batch the same cell adds after it
        square_cell = nb.cells[SQUARE].source
        session.run(SQUARE, square_cell.replace("workers=2", "workers=4")
                    .replace("x * x", "x ** 3"))
        cubes = sum(x**3 for x in range(100))
        expect(session.state(), cubes, 10)

        # edit the batch size in that cell: still one batch stage
        session.run(SQUARE, nb.cells[SQUARE].source.replace("batch(10)", "batch(25)"))
        session.run(SQUARE)
        expect(session.state(), cubes, 4)

        # edit the consumer, then re-run the stages before it out of order
        session.run(TOTAL, "@pipe.consumer\ndef total(batch):\n    return sum(batch) * 2")
        for index in (SQUARE, PRODUCER, SQUARE):
            session.run(index)
        expect(session.state(), 2 * cubes, 4)

        # starting over: the setup cell makes a new empty pipeline; the cells rebuild it
        session.run(SETUP)
        for index in DEFINITIONS:
            session.run(index)
        expect(session.state(), 2 * cubes, 4)
