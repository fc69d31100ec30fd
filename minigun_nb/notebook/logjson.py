"""JSON lines for ``minigun-nb run --log-json``: one object per log record, on stderr.

Every record of the ``minigun_nb`` logger becomes one line with the keys ``time`` (ISO 8601,
UTC), ``level``, ``message``, ``run_id`` and ``stage`` (null when the record has none), plus
``traceback`` when it carries an exception. A record made with ``extra={"event": ...,
"fields": {...}}`` also carries ``event`` and the fields at the top level: the runner's
``run_finished`` record of each run is one (:func:`run_finished_fields`).

Examples
--------
>>> import logging
>>> record = logging.LogRecord("minigun_nb", logging.WARNING, __file__, 1,
...                            "item failed in %s", ("load",), None)
>>> record.run_id, record.stage = "ab12", "load"
>>> line = JsonLinesFormatter().format(record)
>>> sorted(json.loads(line))
['level', 'message', 'run_id', 'stage', 'time']
>>> json.loads(line)["message"]
'item failed in load'
"""

from __future__ import annotations

import datetime
import json
import logging
import sys
from typing import IO, Any

__all__ = ["JsonLinesFormatter", "TextFormatter", "install", "run_finished_fields", "uninstall"]

LOGGER = "minigun_nb"


def _iso(created: float) -> str:
    moment = datetime.datetime.fromtimestamp(created, tz=datetime.timezone.utc)
    return moment.isoformat(timespec="milliseconds")


class JsonLinesFormatter(logging.Formatter):
    """A log record as one line of JSON (values that are not JSON become their ``str``)."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": _iso(record.created),
            "level": record.levelname,
            "message": record.getMessage(),
            "run_id": getattr(record, "run_id", None),
            "stage": getattr(record, "stage", None),
        }
        event = getattr(record, "event", None)
        if event is not None:
            data["event"] = event
            fields = getattr(record, "fields", None)
            if isinstance(fields, dict):
                data.update({k: v for k, v in fields.items() if k not in data})
        if record.exc_info:
            data["traceback"] = self.formatException(record.exc_info)
        elif record.exc_text:
            data["traceback"] = record.exc_text
        return json.dumps(data, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """``time level [run stage] message`` for ``-v`` without ``--log-json``."""

    def format(self, record: logging.LogRecord) -> str:
        run_id = getattr(record, "run_id", None)
        stage = getattr(record, "stage", None)
        where = " ".join(str(x) for x in (run_id, stage) if x)
        text = f"{_iso(record.created)} {record.levelname} " + (f"[{where}] " if where else "")
        text += record.getMessage()
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def install(json_lines: bool = True, verbose: bool = False, stream: IO[str] | None = None
            ) -> list[tuple[logging.Logger, logging.Handler, int]]:
    """Send the ``minigun_nb`` logger's records to ``stream`` (stderr) as JSON lines or text.

    INFO and above, DEBUG with ``verbose``. With ``json_lines`` the warnings module's
    messages go the same way (as ``py.warnings`` records), so stderr stays JSON throughout.
    Returns what :func:`uninstall` needs to undo it.
    """
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonLinesFormatter() if json_lines else TextFormatter())
    level = logging.DEBUG if verbose else logging.INFO
    handler.setLevel(level)
    names = [LOGGER, "py.warnings"] if json_lines else [LOGGER]
    undo = []
    for name in names:
        logger = logging.getLogger(name)
        undo.append((logger, handler, logger.level))
        logger.addHandler(handler)
        logger.setLevel(level)
    if json_lines:
        logging.captureWarnings(True)
    return undo


def uninstall(undo: list[tuple[logging.Logger, logging.Handler, int]]) -> None:
    """Undo :func:`install`."""
    for logger, handler, level in undo:
        logger.removeHandler(handler)
        logger.setLevel(level)
    if any(logger.name == "py.warnings" for logger, _, _ in undo):
        logging.captureWarnings(False)


def run_finished_fields(result: Any) -> dict[str, Any]:
    """The fields of a ``run_finished`` record: the run's totals as its summary counts them.

    Examples
    --------
    >>> from types import SimpleNamespace as NS
    >>> totals = NS(done=3, failed=1, filtered=0, cancelled=0)
    >>> snap = NS(pipeline="etl", totals=totals, elapsed_s=0.5)
    >>> run_finished_fields(NS(run_id="ab12", status="done", snapshot=snap))["failed"]
    1
    """
    snap = result.snapshot
    totals = snap.totals
    return {
        "event": "run_finished",
        "run_id": result.run_id,
        "pipeline": getattr(snap, "pipeline", "") or "",
        "status": result.status,
        "done": totals.done,
        "failed": totals.failed,
        "filtered": totals.filtered,
        "cancelled": totals.cancelled,
        "elapsed_s": round(float(snap.elapsed_s), 6),
    }
