"""Stage and pipeline options: their defaults and their validation.

One table says what every option means, so a value is checked the same way whether it is given
to a stage, to a context block or to ``mg.Pipeline(...)`` as a default for its stages.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import DefinitionError

BACKENDS = ("thread", "process", "fork", "async", "inline", "dask")
ROUTE_POLICIES = ("broadcast", "round_robin", "least_loaded")
PROCESS_BACKENDS = ("process", "fork")  # counted by max_processes
#: backends whose stage runs on the run's own worker threads ("inline": one, in order)
THREAD_BACKENDS = ("thread", "inline")

#: Options of a worker stage with their defaults (None = "not set / automatic").
STAGE_DEFAULTS: dict[str, Any] = {
    "workers": 1,
    "backend": "thread",
    "queue_size": 1000,
    "chunk_size": None,
    "ordered": False,
    "retries": 0,
    "retry_on": None,
    "backoff": 0.0,
    "timeout": None,
    "on_error": "collect",
    "crash_retries": 2,
    "worker_idle_timeout": 300.0,
    "track_latency": True,
    "setup": None,
    "teardown": None,
    "route": "broadcast",
    "copy": False,
}

#: Options that only make sense on one stage (never as pipeline defaults).
ROUTING_OPTIONS = ("name", "to", "from_", "routes", "dynamic")

#: Options of ``mg.Pipeline`` that are not stage defaults.
PIPELINE_ONLY: dict[str, Any] = {
    "max_threads": None,
    "max_processes": None,
    "dask_client": None,
    "max_outputs": 100_000,
}

#: What operator stages (batch/debatch/rebatch) accept besides their own parameters: they run
#: in the kernel process on one thread, so worker and error options do not apply to them.
OPERATOR_OPTIONS = ("queue_size", "route", "copy", "track_latency", "ordered")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _positive_int(value: Any) -> bool:
    return _is_int(value) and value >= 1


def _non_negative_int(value: Any) -> bool:
    return _is_int(value) and value >= 0


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _exc_types(value: Any) -> bool:
    items = value if isinstance(value, tuple) else (value,)
    return all(isinstance(t, type) and issubclass(t, BaseException) for t in items)


def _route(value: Any) -> bool:
    if value in ROUTE_POLICIES or callable(value):
        return True
    if isinstance(value, Mapping):
        return bool(value) and all(
            isinstance(k, str) and _number(w) and w > 0 for k, w in value.items()
        )
    return False


# option -> (check, what a good value looks like)
_CHECKS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "workers": (_positive_int, "an int >= 1, e.g. workers=4"),
    "backend": (lambda v: v in BACKENDS, "one of " + ", ".join(repr(b) for b in BACKENDS)),
    "queue_size": (_positive_int, "an int >= 1 (items), e.g. queue_size=1000"),
    "chunk_size": (lambda v: v is None or _positive_int(v), "None (automatic) or an int >= 1"),
    "ordered": (lambda v: isinstance(v, bool), "True or False"),
    "retries": (_non_negative_int, "an int >= 0, e.g. retries=3"),
    "retry_on": (
        lambda v: v is None or _exc_types(v),
        "an exception class or a tuple of them, e.g. retry_on=(IOError,)",
    ),
    "backoff": (lambda v: _number(v) and v >= 0, "seconds >= 0, e.g. backoff=0.5"),
    "timeout": (lambda v: v is None or (_number(v) and v > 0), "None or seconds > 0"),
    "on_error": (lambda v: v in ("collect", "raise"), "'collect' or 'raise'"),
    "crash_retries": (_non_negative_int, "an int >= 0"),
    "worker_idle_timeout": (lambda v: _number(v) and v > 0, "seconds > 0"),
    "track_latency": (lambda v: isinstance(v, bool), "True or False"),
    "setup": (lambda v: v is None or callable(v), "a function returning a dict of resources"),
    "teardown": (lambda v: v is None or callable(v), "a function taking the resources"),
    "route": (
        _route,
        "'broadcast', 'round_robin', 'least_loaded', a dict of positive weights "
        "{'a': 3, 'b': 1}, or a function item -> stage name",
    ),
    "copy": (lambda v: isinstance(v, bool), "True or False"),
    "dynamic": (lambda v: isinstance(v, bool), "True or False"),
    "max_threads": (lambda v: v is None or _positive_int(v), "None or an int >= 1"),
    "max_processes": (lambda v: v is None or _positive_int(v), "None or an int >= 1"),
    "max_outputs": (
        lambda v: v is None or _non_negative_int(v),
        "None (keep everything) or an int >= 0",
    ),
    "dask_client": (lambda v: True, ""),
}


def check_option(where: str, key: str, value: Any) -> None:
    """Raise DefinitionError when ``value`` is not a valid value of option ``key``.

    ``where`` names the stage or pipeline for the message.
    """
    check, good = _CHECKS[key]
    if not check(value):
        raise DefinitionError(f"{where}: {key}={value!r} is not valid; use {good}.")


def unknown_option(where: str, key: str, allowed: tuple[str, ...] | list[str]) -> DefinitionError:
    """The error for an option name nobody knows, with the closest known names."""
    import difflib

    close = difflib.get_close_matches(key, list(allowed), n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    return DefinitionError(
        f"{where}: unknown option {key!r}.{hint} Known options: {', '.join(sorted(allowed))}."
    )


def names_tuple(where: str, key: str, value: Any) -> tuple[str, ...] | None:
    """Normalise a ``to=``/``from_=``/``routes=`` value to a tuple of names (or None)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = (value,)
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) and v for v in value):
        return tuple(value)
    raise DefinitionError(
        f"{where}: {key}={value!r} is not valid; use a stage name or a list of names, "
        f'e.g. {key}="save" or {key}=["a", "b"].'
    )
