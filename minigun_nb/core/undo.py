"""Undo: a definition that raises leaves the pipeline as it was.

Each change is checked by a lenient resolution right after it is made (cycles fail in the cell
that creates them) and undone when that raises; a block whose body raises puts back the
snapshot taken when it opened.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import DefinitionError
from .tree import Block, PipelineTree

if TYPE_CHECKING:
    from .pipeline import Pipeline


def validate_after(pipe: PipelineTree, undo: Callable[[], object]) -> None:
    """Resolve ``pipe``'s root leniently after a change; call ``undo`` and re-raise on error."""
    from .graph import resolve

    try:
        resolve(pipe._root(), lenient=True)
    except DefinitionError:
        undo()
        raise


def snapshot(pipe: PipelineTree) -> Callable[[], None]:
    """A function that puts ``pipe`` back as it is now: its blocks and stages, its nested
    pipelines (recursively), routing, options and hooks."""
    blocks: list[tuple[Block, list[Any]]] = []
    nested: list[tuple[Pipeline, Callable[[], None]]] = []

    def save(block: Block) -> None:
        blocks.append((block, list(block.children)))
        for child in block.children:
            if isinstance(child, Block):
                save(child)
            elif isinstance(child, PipelineTree):
                nested.append((child, snapshot(child)))

    save(pipe._body)
    routing, site, last = (pipe.to, pipe.from_), pipe.site, pipe._last_replaced
    options = dict(pipe.options)
    hooks = {k: list(v) for k, v in pipe.hooks.items()}

    def restore() -> None:
        kept = {id(p) for p, _ in nested}
        for child in pipe._body.walk():
            if isinstance(child, PipelineTree) and id(child) not in kept:
                child.parent = None  # nested by the undone definition
        for block, children in blocks:
            block.children[:] = children
        for sub, restore_sub in nested:
            sub.parent = pipe  # type: ignore[assignment]  # pipe is a Pipeline
            restore_sub()
        (pipe.to, pipe.from_), pipe.site, pipe._last_replaced = routing, site, last
        pipe.options.clear()
        pipe.options.update(options)
        for k, fns in hooks.items():
            pipe.hooks[k][:] = fns

    return restore


def drop(pipe: PipelineTree, sub: Pipeline) -> None:
    """Remove nested pipeline ``sub`` from ``pipe`` again (its definition failed)."""
    pipe._body.remove(sub)
    sub.parent = None
    pipe._last_replaced = None
