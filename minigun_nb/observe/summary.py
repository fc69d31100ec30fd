"""A plain fixed-width text table of a run, for ``result.summary()`` and terminals.

No external library: the table is the same in a notebook repr, a log file and a cron mail.
Text columns are left-aligned, numbers right-aligned; no line has trailing spaces.

Examples
--------
>>> from minigun_nb.observe.snapshot import RunSnapshot
>>> print(summary_text(RunSnapshot.empty()))
stage  status  in  out  failed  filtered  busy %  items/s  p50 ms  p99 ms
run pending
"""

from __future__ import annotations

from collections.abc import Callable

from .snapshot import RunSnapshot, StageSnapshot

__all__ = ["format_count", "format_duration", "format_ms", "format_rate", "summary_text"]

_SCALES = ((1e3, "k"), (1e6, "M"), (1e9, "G"), (1e12, "T"))


def format_count(n: float) -> str:
    """Format a count: exact below 10,000, then three significant digits with k/M/G/T.

    Examples
    --------
    >>> [format_count(n) for n in (0, 9999, 10_000, 123_456, 999_999, 3_400_000)]
    ['0', '9999', '10.0k', '123k', '1.00M', '3.40M']
    """
    if abs(n) < 10_000:
        return f"{n:.0f}"
    for scale, suffix in _SCALES:
        text = _three_digits(n / scale)
        # 999,999 would read "1000k": move on to the next unit instead.
        if abs(float(text)) < 1000 or suffix == "T":
            return text + suffix
    raise AssertionError("unreachable: the last scale always returns")


def _three_digits(value: float) -> str:
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def format_rate(per_second: float) -> str:
    """Format items per second: two decimals below 10, then fewer, compact from 10,000.

    Examples
    --------
    >>> [format_rate(r) for r in (0.0, 2.5, 42.42, 1234.5, 45_678.0)]
    ['0', '2.50', '42.4', '1234', '45.7k']
    """
    if per_second == 0:
        return "0"
    if per_second < 10:
        return f"{per_second:.2f}"
    if per_second < 100:
        return f"{per_second:.1f}"
    if per_second < 10_000:
        return f"{per_second:.0f}"
    return format_count(per_second)


def format_ms(ms: float | None) -> str:
    """Format milliseconds with about three significant digits; ``-`` when missing.

    Examples
    --------
    >>> [format_ms(v) for v in (None, 0.0123, 2.345, 42.42, 1234.5)]
    ['-', '0.012', '2.35', '42.4', '1234']
    """
    if ms is None or ms != ms:
        return "-"
    if ms < 1:
        return f"{ms:.3f}"
    if ms < 10:
        return f"{ms:.2f}"
    if ms < 100:
        return f"{ms:.1f}"
    if ms < 10_000:
        return f"{ms:.0f}"
    return format_count(ms)


def format_duration(seconds: float) -> str:
    """Format a duration: ``4.20s``, ``42.0s``, ``2m05s``, ``1h02m03s``.

    Examples
    --------
    >>> [format_duration(s) for s in (4.2, 42.0, 125.0, 3723.0)]
    ['4.20s', '42.0s', '2m05s', '1h02m03s']
    """
    if seconds < 10:
        return f"{seconds:.2f}s"
    if seconds < 60:
        return f"{seconds:.1f}s"
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m{secs:02d}s"
    return f"{minutes}m{secs:02d}s"


# (header, right-aligned, cell) for each column of the table.
_COLUMNS: tuple[tuple[str, bool, Callable[[StageSnapshot], str]], ...] = (
    ("stage", False, lambda s: s.path),
    ("status", False, lambda s: s.status),
    ("in", True, lambda s: format_count(s.items_in)),
    ("out", True, lambda s: format_count(s.items_out)),
    ("failed", True, lambda s: format_count(s.failed)),
    ("filtered", True, lambda s: format_count(s.filtered)),
    ("busy %", True, lambda s: f"{round(s.busy * 100)}"),
    ("items/s", True, lambda s: format_rate(s.throughput)),
    ("p50 ms", True, lambda s: format_ms(s.p50_ms)),
    ("p99 ms", True, lambda s: format_ms(s.p99_ms)),
)


def pipeline_in_out(snapshot: RunSnapshot) -> tuple[int, int]:
    """Items into the pipeline (what producers emitted plus what its entry stages received)
    and out of it (what its terminal stages emitted): summing ``done`` over stages counts an
    item once per stage it passes.

    Examples
    --------
    >>> pipeline_in_out(RunSnapshot.empty())
    (0, 0)
    """
    stages = snapshot.stages
    if not stages:
        return 0, 0
    if snapshot.edges:
        has_in = {t for _, t, _ in snapshot.edges}
        has_out = {s for s, _, _ in snapshot.edges}
    else:  # no graph known: a chain in stage order
        paths = [s.path for s in stages]
        has_in, has_out = set(paths[1:]), set(paths[:-1])
    into = sum(s.items_out if s.is_producer else s.items_in for s in stages
               if s.is_producer or s.path not in has_in)
    out = sum(s.items_out for s in stages if s.path not in has_out)
    return into, out


def _footer(snapshot: RunSnapshot) -> str:
    run = f"run {snapshot.run_id}" if snapshot.run_id else "run"
    if snapshot.status == "pending":
        return f"{run} pending"
    elapsed = format_duration(snapshot.elapsed_s)
    if snapshot.status == "running":
        when = f"running for {elapsed}"
    else:
        when = f"{snapshot.status} in {elapsed}"
    t = snapshot.totals
    into, out = pipeline_in_out(snapshot)
    counts = (
        f"{format_count(into)} in, {format_count(out)} out, {format_count(t.failed)} failed, "
        f"{format_count(t.filtered)} filtered, {format_count(t.cancelled)} cancelled, "
        f"{format_count(t.retried)} retried"
    )
    return f"{run} {when}: {counts}"


def summary_text(snapshot: RunSnapshot) -> str:
    """Return the run as a fixed-width table, a totals line and the bottleneck hint.

    Parameters
    ----------
    snapshot : RunSnapshot
        Usually the final snapshot of a run.

    Returns
    -------
    str
        One row per stage (stage, status, in, out, failed, filtered, busy %, items/s,
        p50 ms, p99 ms); then ``run <id> <status> in <elapsed>: <totals>``; then the hint,
        if there is a bottleneck. Lines are joined with ``\\n``, with no trailing spaces.

    Examples
    --------
    >>> from minigun_nb.observe.snapshot import RunSnapshot
    >>> summary_text(RunSnapshot.empty()).splitlines()[-1]
    'run pending'
    """
    rows = [[header for header, _, _ in _COLUMNS]]
    rows.extend([cell(stage) for _, _, cell in _COLUMNS] for stage in snapshot.stages)
    widths = [max(len(row[i]) for row in rows) for i in range(len(_COLUMNS))]
    lines = []
    for row in rows:
        cells = [
            text.rjust(width) if right else text.ljust(width)
            for text, width, (_, right, _) in zip(row, widths, _COLUMNS, strict=True)
        ]
        lines.append("  ".join(cells).rstrip())
    lines.append(_footer(snapshot))
    if snapshot.hint:
        lines.append(snapshot.hint)
    return "\n".join(lines)
