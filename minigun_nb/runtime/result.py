"""RunResult: what a finished (or stopped) run leaves behind."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from ..core.graph import Graph
    from ..observe.snapshot import RunSnapshot
    from .error_records import ErrorRecord

ERROR_COLUMNS = ["stage", "item", "item_repr", "exc_type", "message", "traceback", "attempts",
                 "worker", "time"]


class RunResult:
    """The outcome of a run: outputs, per-stage stats, the error table.

    Attributes
    ----------
    outputs : list
        Everything emitted by terminal stages, in completion order (capped by
        ``max_outputs``).
    outputs_by_stage : dict
        The same, keyed by terminal stage path.
    cancelled_items : list
        Items that were not processed because the run was cancelled.
    ok : bool
        False when the run failed (``on_error="raise"``, or an internal error).
    stopped : bool
        True after ``handle.stop()`` or a notebook interrupt.

    Examples
    --------
    >>> import minigun_nb as mg
    >>> pipe = mg.Pipeline([mg.processor(lambda x: x * 2, name="double")])
    >>> result = pipe.run(items=[1, 2, 3], display="none")
    >>> sorted(result.outputs), result.ok, int(result.stats.loc["double", "done"])
    ([2, 4, 6], True, 3)
    """

    #: the resolved graph the run executed (set by the runtime; None for a result built by
    #: hand): the static dashboard draws it with the same layout as the live one
    graph: Graph | None = None

    def __init__(
        self, *, run_id: str, snapshot: RunSnapshot, outputs: list[Any],
        outputs_by_stage: dict[str, list[Any]], errors: list[ErrorRecord],
        cancelled_items: list[Any], status: str, outputs_dropped: int = 0,
    ) -> None:
        self.run_id = run_id
        self.snapshot = snapshot
        self.outputs = outputs
        self.outputs_by_stage = outputs_by_stage
        self._errors = errors
        self.cancelled_items = cancelled_items
        self.status = status
        self.outputs_dropped = outputs_dropped
        #: the StageError of a failed run (``on_error="raise"``), else None
        self.error: Exception | None = None

    @property
    def ok(self) -> bool:
        return self.status not in ("failed", "cancelled")

    @property
    def stopped(self) -> bool:
        return self.status in ("stopped", "cancelled")

    @property
    def elapsed_s(self) -> float:
        return self.snapshot.elapsed_s

    @property
    def bottleneck(self) -> str | None:
        return self.snapshot.bottleneck

    @property
    def hint(self) -> str:
        return self.snapshot.hint

    @property
    def stats(self) -> pd.DataFrame:
        """One row per stage (index = stage path); columns as in SPEC section 12."""
        return self.snapshot.to_frame()

    @property
    def errors(self) -> pd.DataFrame:
        """The error table: one row per failed item."""
        import pandas as pd

        frame = pd.DataFrame([e.row() for e in self._errors], columns=ERROR_COLUMNS)
        # the items themselves, untouched: no int -> numpy scalar, no None -> NaN; one
        # whose repr raises is held by a stand-in, so the table always displays (SPEC §14)
        from .error_records import renderable

        frame["item"] = pd.Series([renderable(e.item) for e in self._errors], index=frame.index,
                                  dtype=object)
        return frame

    def failed_items(self, stage: str | None = None) -> list[Any]:
        """The items that failed (in ``stage``, a path or a name), to re-drive them.

        Examples
        --------
        >>> # pipe.run(items=result.failed_items("load"))
        """
        return [
            e.item for e in self._errors
            if e.has_item
            and (stage is None or e.stage == stage or e.stage.rsplit("/", 1)[-1] == stage)
        ]

    def to_frame(self) -> pd.DataFrame:
        """The outputs as a DataFrame: frames concatenated, dicts/Series as rows, else one
        ``output`` column."""
        import pandas as pd

        outs = self.outputs
        if outs and all(isinstance(o, pd.DataFrame) for o in outs):
            return pd.concat(outs)
        if outs and all(isinstance(o, pd.Series) for o in outs):
            return pd.DataFrame(outs)
        if outs and all(isinstance(o, dict) for o in outs):
            return pd.DataFrame.from_records(outs)
        return pd.DataFrame({"output": outs})

    def summary(self) -> str:
        """A clean text table of the run (one row per stage, then totals and the hint)."""
        from ..observe.summary import summary_text

        text = summary_text(self.snapshot)
        if self._errors:
            text += f"\n{len(self._errors)} error(s): see result.errors"
        return text

    def to_dict(self) -> dict[str, Any]:
        data = self.snapshot.to_dict()
        data.update(
            run_id=self.run_id, status=self.status, ok=self.ok, stopped=self.stopped,
            outputs=len(self.outputs), errors=[
                {k: v for k, v in e.row().items() if k not in ("item", "time")}
                | {"time": e.row()["time"].isoformat()}
                for e in self._errors
            ],
        )
        return data

    def to_json(self, **kwargs: Any) -> str:
        """The stats, totals and errors as JSON (items themselves as their repr)."""
        return json.dumps(self.to_dict(), default=str, **kwargs)

    def __repr__(self) -> str:
        return (f"<RunResult {self.status}: {len(self.outputs)} outputs, "
                f"{len(self._errors)} errors, {self.elapsed_s:.2f} s>")

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(self.summary())

    def to_html(self) -> str:
        """The static dashboard: header, the DAG with final stats, stage table, error rows.

        Self-contained HTML (inline styles, the DAG as a data-URI SVG ``<img>``, all
        untrusted text escaped): it shows without a kernel in a saved notebook, nbconvert
        and GitHub.

        Examples
        --------
        >>> import minigun_nb as mg
        >>> result = mg.Pipeline([mg.processor(abs, name="abs")]).run(items=[-1], display="none")
        >>> "<table" in result.to_html()
        True
        """
        from ..display.static import render_html  # runtime/ itself never imports a display

        return render_html(self)

    def _repr_html_(self) -> str | None:
        from ..display.static import render_html

        try:
            return render_html(self)
        except Exception:  # noqa: BLE001 - a repr must not raise: the text summary still shows
            import logging

            logging.getLogger("minigun_nb").warning("result._repr_html_ failed", exc_info=True)
            return None
