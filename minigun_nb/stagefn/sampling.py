"""Which chunks a worker times item by item (latency sampling), the same rule wherever it runs.

Items slower than :data:`FAST_ITEM` have every latency measured; faster ones are sampled one
chunk in :func:`sample_every`, so that the clock reads and histogram updates (about 0.3 µs an
item) stay around 1% of the stage's own work.
"""

from __future__ import annotations

#: items slower than this have every latency measured by the runtimes; faster ones are
#: sampled a chunk in :func:`sample_every`, so that the clock reads and histogram updates
#: (about 0.3 µs an item) stay around 1% of the stage's own work
FAST_ITEM = 20e-6
#: every item is timed until a worker has measured this many (the first chunk is often a
#: single cold call), then fast stages are sampled
MIN_LATENCY_SAMPLES = 1000
#: the sparsest sampling: even a no-op stage has a chunk timed in this many
MAX_SAMPLE_EVERY = 64
#: what timing one item costs, clock read plus its histogram update
_TIMING_COST = 0.3e-6


def sample_every(per_item: float) -> int:
    """Time one chunk in this many for a stage whose items take ``per_item`` seconds.

    >>> sample_every(50e-6), sample_every(2e-6), sample_every(0.05e-6)
    (1, 15, 64)
    """
    if per_item > FAST_ITEM:
        return 1
    if per_item <= 0:
        return MAX_SAMPLE_EVERY
    return max(1, min(MAX_SAMPLE_EVERY, round(_TIMING_COST / (0.01 * per_item))))


def time_this_chunk(chunks: int, timed_items: int, per_item: float) -> bool:
    """Whether a worker times its ``chunks``-th chunk item by item: always until it has
    ``MIN_LATENCY_SAMPLES`` latencies, then one chunk in :func:`sample_every`.

    >>> time_this_chunk(5, 10, 1e-9), time_this_chunk(5, 5000, 1e-9), time_this_chunk(64, 5000, 1e-9)
    (True, False, True)
    """
    return timed_items < MIN_LATENCY_SAMPLES or chunks % sample_every(per_item) == 0


def running_mean(old: float, new: float) -> float:
    """A running estimate (seconds per item, bytes per item): the first value sets it, later
    ones move it by 30%, so one odd chunk does not swing it.

    >>> running_mean(0.0, 2.0), running_mean(2.0, 1.0)
    (2.0, 1.7)
    """
    return new if old <= 0 else 0.7 * old + 0.3 * new
