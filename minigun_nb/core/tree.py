"""The definition tree a Pipeline records: blocks of stages and nested pipelines.

:class:`PipelineTree` is the state every part of :class:`~minigun_nb.core.pipeline.Pipeline`
shares (its name, options, blocks, parent and hooks), the lookups in that tree and the lock
that a running pipeline holds on its definition. The definition methods (``building.py``,
``hooks.py``), the blocks (``blocks.py``) and the façade (``pipeline.py``) build on it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, cast

from ..errors import DefinitionError, PipelineRunningError
from .options import PIPELINE_ONLY, STAGE_DEFAULTS, check_option, names_tuple, unknown_option
from .stage import Stage

if TYPE_CHECKING:
    from .identity import CallSite
    from .pipeline import Pipeline

HOOKS = ("before_run", "after_run", "before_fork", "after_fork", "on_error")


class Block:
    """A sequential or parallel group of stages, nested pipelines and blocks."""

    __slots__ = ("kind", "children")

    def __init__(self, kind: str) -> None:
        self.kind = kind  # "seq" or "par"
        self.children: list[Stage | Pipeline | Block] = []

    def walk(self) -> Iterator[Stage | Pipeline]:
        for child in self.children:
            if isinstance(child, Block):
                yield from child.walk()
            else:
                yield child

    def replace(self, old: Any, new: Any) -> bool:
        for i, child in enumerate(self.children):
            if child is old:
                self.children[i] = new
                return True
            if isinstance(child, Block) and child.replace(old, new):
                return True
        return False

    def remove(self, old: Any) -> bool:
        for i, child in enumerate(self.children):
            if child is old:
                del self.children[i]
                return True
            if isinstance(child, Block) and child.remove(old):
                return True
        return False

    def next_after(self, old: Any) -> Any:
        """The element right after ``old`` in the block that holds it (None if last)."""
        for i, child in enumerate(self.children):
            if child is old:
                return self.children[i + 1] if i + 1 < len(self.children) else None
            if isinstance(child, Block):
                found = child.next_after(old)
                if found is not None:
                    return found
        return None


class PipelineTree:
    """What a pipeline records, how it is looked up, and the lock a run holds on it."""

    #: inside ``with pipe.pipeline("x")``: the nested pipeline ``x`` that the definition
    #: methods of this one act on (see :func:`minigun_nb.core.building.definition`)
    _redirect: Pipeline | None = None

    def __init__(self, name: Any, **options: Any) -> None:
        if not isinstance(name, str) or not name or "/" in name:
            raise DefinitionError(
                f"Pipeline name {name!r} is not valid; use a non-empty string without '/'."
            )
        self.name: str = name
        where = f"pipeline {name!r}"
        allowed = (*STAGE_DEFAULTS, *PIPELINE_ONLY, "to", "from_")
        for key, value in options.items():
            if key not in allowed:
                raise unknown_option(where, key, allowed)
            if key not in ("to", "from_"):
                check_option(where, key, value)
        #: as a nested pipeline: where its terminal stages send, where its entries receive from
        self.to = names_tuple(where, "to", options.pop("to", None))
        self.from_ = names_tuple(where, "from_", options.pop("from_", None))
        self.options: dict[str, Any] = options
        self.parent: Pipeline | None = None
        self.hooks: dict[str, list[Callable[..., Any]]] = {h: [] for h in HOOKS}
        self._body = Block("seq")
        self._blocks: list[Block] = [self._body]
        self._contexts: list[dict[str, Any]] = []
        #: a plain chain (``a | b``, ``Pipeline([...])``): composing it flattens it, not nests it
        self._composed = False
        self._running = 0
        #: the stage the latest definition in this pipeline replaced in place (a re-run), if any
        self._last_replaced: Stage | None = None
        #: where this pipeline was nested into its parent by user code (tells a re-run apart)
        self.site: CallSite | None = None

    # -- the tree --------------------------------------------------------------------------
    def _root(self) -> Pipeline:
        p: PipelineTree = self
        while p.parent is not None:
            p = p.parent
        return cast("Pipeline", p)

    def _ancestors(self) -> list[Pipeline]:
        out, p = [], self.parent
        while p is not None:
            out.append(p)
            p = p.parent
        return out

    def _path(self) -> str:
        names = [p.name for p in reversed([self, *self._ancestors()])][1:]
        return "/".join(names)

    def _find(self, name: str) -> Stage | Pipeline | None:
        for child in self._body.walk():
            if child.name == name:
                return child
        return None

    def _context(self) -> dict[str, Any]:
        # blocks opened around a nested pipeline's `with` apply inside it too
        merged: dict[str, Any] = self.parent._context() if self.parent is not None else {}
        for ctx in self._contexts:
            merged.update(ctx)
        return merged

    def _default(self, key: str) -> Any:
        """The stage default ``key`` given to this pipeline or its nearest ancestor, or None."""
        p: PipelineTree | None = self
        while p is not None:
            if key in p.options:
                return p.options[key]
            p = p.parent
        return None

    # -- locking ---------------------------------------------------------------------------
    def _check_unlocked(self) -> None:
        p: PipelineTree | None = self
        while p is not None:
            if p._running:
                raise PipelineRunningError(
                    f"pipeline {p.name!r} is running; its definition is locked until the run "
                    f"ends. Wait for it (handle.wait()) or stop it (handle.stop()) first."
                )
            p = p.parent
