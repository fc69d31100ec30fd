"""What the numbers say (issue 15, finding 17): the hint says what would help, and the
summary's totals line counts items into and out of the pipeline, not ``done`` summed over
stages."""

from __future__ import annotations

import pytest

import minigun_nb as mg

pytestmark = pytest.mark.timeout(60)


def test_the_totals_line_counts_items_in_and_out_of_the_pipeline():
    pipe = mg.Pipeline("four", [mg.processor(lambda x: x, name=n) for n in "abcd"])
    result = pipe.run(items=range(868), display="none")
    footer = next(line for line in result.summary().splitlines() if line.startswith("run "))
    assert "868 in, 868 out" in footer, footer
    assert "done" not in footer.split(":", 1)[1]  # not 3472 "done" across four stages


def test_a_stage_that_fails_every_item_is_not_told_to_add_workers():
    from minigun_nb.observe.events import ChunkProcessed, ItemsReceived, RunStarted, StageStarted
    from minigun_nb.observe.stats import StatsCollector
    from tests.observe._helpers import stage

    stats = StatsCollector()
    stats.publish(RunStarted("r", 0.0, (stage("broken", workers=2, queue_size=10),)))
    stats.publish(StageStarted("broken", 0.0))
    stats.publish(ItemsReceived("broken", 20))
    stats.publish(ChunkProcessed("broken", 0, 10, 0, 0, 0, 2.0))
    snap = stats.snapshot()
    assert snap.bottleneck == "broken"
    assert "try workers" not in snap.hint
    assert snap.hint.startswith("`broken` fails every item (10 failed)")
