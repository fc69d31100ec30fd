"""``Batcher(origins=True)``: which input items each output completed (the runtime turns an
output it cannot deliver into error rows for exactly those inputs)."""

from __future__ import annotations

import pandas as pd
import pytest

from minigun_nb.ops.batching import Batcher

pytestmark = pytest.mark.timeout(60)


def test_origins_follow_each_output_of_one_call():
    b = Batcher(2, origins=True)
    assert b.add("a", 0.0) == ([], 0) and b.last_origins == []
    outs, done = b.add("b", 0.0)
    assert outs == [["a", "b"]] and done == 2 and b.last_origins == [["a", "b"]]


def test_a_frame_completes_with_the_output_carrying_its_last_row():
    f1 = pd.DataFrame({"x": range(3)})
    f2 = pd.DataFrame({"x": range(3, 7)})
    b = Batcher(4, mode="rebatch", origins=True)
    b.add(f1, 0.0)
    outs, done = b.add(f2, 0.0)  # rows 0..3 complete f1 only; f2 is still held
    assert [len(o) for o in outs] == [4] and done == 1
    assert [[id(x) for x in o] for o in b.last_origins] == [[id(f1)]]
    outs, done = b.flush_all()
    assert [len(o) for o in outs] == [3] and done == 1
    assert [[id(x) for x in o] for o in b.last_origins] == [[id(f2)]]


def test_origins_of_timed_out_keyed_batches():
    b = Batcher(10, key=lambda x: x % 2, timeout=1.0, origins=True)
    for i, t in enumerate([0.0, 0.1, 0.5]):
        b.add(i, t)
    outs, done = b.flush_due(1.2)  # key 0 (oldest item at 0.0) is due, key 1 (0.1) too
    assert outs == [[0, 2], [1]] and done == 3
    assert b.last_origins == [[0, 2], [1]]


def test_origins_are_off_by_default():
    b = Batcher(1)
    b.add("a", 0.0)
    assert b.last_origins == []
