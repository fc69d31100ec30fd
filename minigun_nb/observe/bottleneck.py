"""Choosing the bottleneck of a run and wording its hint (SPEC §6).

The bottleneck is the stage whose workers are busiest while its input queue is full. The
runtime's router adds no stage of its own, so it can never be named here.

Examples
--------
>>> find_bottleneck(())
(None, '')
"""

from __future__ import annotations

from .snapshot import StageSnapshot

__all__ = ["BOTTLENECK_BUSY", "BOTTLENECK_FILL", "bottleneck_hint", "find_bottleneck"]

#: backends whose items travel to worker processes (transport can cost more than the work)
WORKER_PROCESS_BACKENDS = ("process", "fork", "dask")
#: A stage is reported as the bottleneck only from this busy fraction on ...
BOTTLENECK_BUSY = 0.5
#: ... or when its input queue was at least this full on average.
BOTTLENECK_FILL = 0.5


def bottleneck_hint(stage: StageSnapshot) -> str:
    """Return the one-line hint naming ``stage`` as the bottleneck.

    Examples
    --------
    >>> snap = StageSnapshot("clean", "processor", "thread", 4, "running", *[0] * 10,
    ...                      1.0, 0.0, None, None, None, None, None, None, 0.0)
    >>> bottleneck_hint(snap)
    '`clean` is the bottleneck: 100% busy with 4 workers; try workers=8'
    """
    workers = stage.workers
    noun = "worker" if workers == 1 else "workers"
    if stage.failed and not stage.done:
        # more workers would only fail faster
        return (f"`{stage.path}` fails every item ({stage.failed} failed): fix it first "
                f"(see result.errors)")
    if stage.busy < BOTTLENECK_BUSY and stage.backend in WORKER_PROCESS_BACKENDS:
        # its queue is full but its workers wait: moving items costs more than the work
        return (
            f"`{stage.path}` is the bottleneck: its input queue is full while its {workers} "
            f"{noun} spend {round(stage.busy * 100)}% of their time in the stage function; "
            f"moving items to the workers costs more than the work: try bigger chunks "
            f"(chunk_size=) or fewer, bigger items"
        )
    return (
        f"`{stage.path}` is the bottleneck: {round(stage.busy * 100)}% busy with "
        f"{workers} {noun}; try workers={2 * max(workers, 1)}"
    )


def find_bottleneck(stages: tuple[StageSnapshot, ...]) -> tuple[str | None, str]:
    """Return ``(path, hint)`` of the bottleneck among ``stages``, or ``(None, "")``.

    Producers and stages that have not started are never the bottleneck. A stage qualifies
    when its workers are at least half busy or its input queue was at least half full on
    average; among those the busiest wins (compared at whole percents, the resolution a
    person sees), ties going to the fuller input queue, then to the earlier stage.

    Examples
    --------
    >>> find_bottleneck(())
    (None, '')
    """
    best: StageSnapshot | None = None
    best_key = (-1, -1.0)
    for stage in stages:
        if stage.is_producer or stage.status == "pending":
            continue
        if stage.busy < BOTTLENECK_BUSY and stage.queue_fill < BOTTLENECK_FILL:
            continue
        key = (round(stage.busy * 100), stage.queue_fill)
        if key > best_key:
            best, best_key = stage, key
    if best is None:
        return None, ""
    return best.path, bottleneck_hint(best)
