"""Hooks: functions a pipeline calls around its runs (``@pipe.before_run``, ...).

A hook registered again from a re-run cell replaces its old registration
(:func:`minigun_nb.core.identity.same_hook`). The resolved graph lists them by pipeline path
(``Graph.hooks``) and the runtime calls them from there.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import DefinitionError
from .building import definition
from .identity import same_hook
from .tree import PipelineTree


class Hooks(PipelineTree):
    """Registering ``before_run``, ``after_run``, ``before_fork``, ``after_fork``, ``on_error``."""

    def _hook(self, kind: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        if not callable(fn):
            raise DefinitionError(f"pipeline {self.name!r}: @{kind} needs a function.")
        self._check_unlocked()
        hooks = self.hooks[kind]
        for i, old in enumerate(hooks):
            if old is fn:
                return fn  # registered already: it still fires once
            if same_hook(old, fn):
                hooks[i] = fn  # a re-run cell: the new definition replaces the old one
                return fn
        hooks.append(fn)
        return fn

    @definition
    def before_run(self, fn: Callable[[], Any]) -> Callable[[], Any]:
        """Register ``fn()`` to run once before each run starts.

        Examples
        --------
        >>> import minigun_nb as mg
        >>> pipe = mg.Pipeline()
        >>> @pipe.before_run
        ... def hello():
        ...     pass
        """
        return self._hook("before_run", fn)

    @definition
    def after_run(self, fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
        """Register ``fn(result)`` to run once after each run (also a failed or stopped one).

        Examples
        --------
        >>> import minigun_nb as mg
        >>> pipe = mg.Pipeline()
        >>> @pipe.after_run
        ... def bye(result):
        ...     pass
        """
        return self._hook("after_run", fn)

    @definition
    def before_fork(self, fn: Callable[[], Any]) -> Callable[[], Any]:
        """Register ``fn()`` to run in the kernel before a run's first process or fork stage.

        Examples
        --------
        >>> import minigun_nb as mg
        >>> pipe = mg.Pipeline()
        >>> _ = pipe.before_fork(lambda: None)
        """
        return self._hook("before_fork", fn)

    @definition
    def after_fork(self, fn: Callable[[], Any]) -> Callable[[], Any]:
        """Register ``fn()`` to run in every worker process and fork child before its first item.

        Examples
        --------
        >>> import minigun_nb as mg
        >>> pipe = mg.Pipeline()
        >>> _ = pipe.after_fork(lambda: None)
        """
        return self._hook("after_fork", fn)

    @definition
    def on_error(self, fn: Callable[[BaseException, Any, str], Any]) -> Callable[..., Any]:
        """Register ``fn(exc, item, stage)`` called for every item error (stage is a path).

        Examples
        --------
        >>> import minigun_nb as mg
        >>> pipe = mg.Pipeline()
        >>> _ = pipe.on_error(lambda exc, item, stage: None)
        """
        return self._hook("on_error", fn)
