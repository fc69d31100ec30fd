"""Pipeline: the user-facing builder of stages, blocks and nested pipelines.

A Pipeline records *what* was defined and in which block; :func:`minigun_nb.core.graph.resolve`
turns it into a frozen graph. Running and displaying are delegated to ``runtime/`` and
``display/`` through imports inside the methods, so this module stays pure description.

The class is put together from one module per job: ``tree.py`` (the recorded tree, lookups,
the lock a run holds), ``building.py`` (the definition methods and how they are routed into a
nested pipeline), ``hooks.py``, ``blocks.py`` (``parallel()``, the backend blocks,
``pipeline()``), ``identity.py`` (when a re-run cell replaces a definition) and ``undo.py``
(a failed definition leaves the pipeline as it was). This module adds composition
(``a | b``), introspection and the run/display façade.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .blocks import Blocks
from .hooks import Hooks
from .stage import Stage
from .tree import Block

if TYPE_CHECKING:
    from .graph import Edge, Graph

class Pipeline(Blocks, Hooks):
    """A pipeline of stages, defined with decorators and run with :meth:`run`.

    Parameters
    ----------
    name : str or list of stages, optional
        The pipeline's name (``"pipeline"`` by default), or a list of stages to chain.
    stages : list, optional
        Stages (or pipelines) to add in order.
    **options
        Defaults for every stage (``workers``, ``queue_size``, ``retries``, ``backend``, ...)
        and pipeline options ``max_threads``, ``max_processes``, ``dask_client``,
        ``max_outputs``.

    Notes
    -----
    Re-running a notebook cell re-defines what it defined, in place (same position, same
    edges): a stage of the same name and function name; an operator named by default
    (``batch``, ``debatch``, ``rebatch``), see :mod:`minigun_nb.core.identity`; a nested pipeline
    (``pipe.add(mg.Pipeline("inner", ...))`` again, or ``with pipe.pipeline("inner", ...)``,
    which then gets exactly the routing and options of the new call). A definition that
    raises leaves the pipeline as it was: a ``with pipe.pipeline(...)`` (or ``parallel()``,
    ``sequential()``, ``threads()``, ...) block whose body raises is undone as a whole (a
    nested pipeline it created is removed again).

    Examples
    --------
    >>> import minigun_nb as mg
    >>> pipe = mg.Pipeline("etl")
    >>> @pipe.producer
    ... def numbers():
    ...     yield from range(3)
    >>> @pipe.processor(workers=2)
    ... def double(x):
    ...     return 2 * x
    >>> [tuple(e) for e in pipe.edges]
    [('numbers', 'double', 'default')]
    """

    def __init__(self, name: Any = None, stages: Any = None, **options: Any) -> None:
        if isinstance(name, (list, tuple)):
            name, stages = None, name
        super().__init__("pipeline" if name is None else name, **options)
        # an unnamed pipeline made from a list is a plain chain, like `a | b | c`: composing it
        # further flattens it instead of nesting it
        self._composed = name is None and stages is not None
        for item in stages or ():
            self._add(item, rerun=False)

    # -- composition -----------------------------------------------------------------------
    @classmethod
    def _compose(cls, left: Any, right: Any) -> Pipeline:
        """``a | b``: a new anonymous pipeline chaining both sides (flattening compositions)."""
        new = cls()
        new._composed = True
        for side in (left, right):
            if isinstance(side, Pipeline):
                side = side._copy()  # never re-parent the user's pipeline
                if side._composed:  # (a | b) | c chains three stages, not a nested pipeline
                    for child in side._body.children:
                        if isinstance(child, Pipeline):
                            child.parent = None
                        new._add(child, rerun=False)
                    continue
            new._add(side, rerun=False)
        return new

    def _copy(self) -> Pipeline:
        """A structural copy: same blocks, copied stages and nested pipelines, no parent."""
        new = Pipeline(self.name, **self.options)
        new.to, new.from_, new._composed = self.to, self.from_, self._composed
        new.hooks = {k: list(v) for k, v in self.hooks.items()}

        def fill(src: Block, dst: Block) -> None:
            for child in src.children:
                if isinstance(child, Block):
                    block = Block(child.kind)
                    fill(child, block)
                    dst.children.append(block)
                elif isinstance(child, Pipeline):
                    sub = child._copy()
                    sub.parent = new
                    dst.children.append(sub)
                else:
                    dst.children.append(child.copy())

        fill(self._body, new._body)
        return new

    def __or__(self, other: Any) -> Pipeline:
        return Pipeline._compose(self, other)

    def __ror__(self, other: Any) -> Pipeline:
        return Pipeline._compose(other, self)

    # -- introspection ---------------------------------------------------------------------
    @property
    def stages(self) -> list[Stage]:
        """This pipeline's own stages in definition order (nested pipelines: see ``pipelines``)."""
        return [c for c in self._body.walk() if isinstance(c, Stage)]

    @property
    def pipelines(self) -> list[Pipeline]:
        """The pipelines nested directly in this one, in definition order."""
        return [c for c in self._body.walk() if isinstance(c, Pipeline)]

    def __getitem__(self, name: str) -> Stage | Pipeline:
        node: Pipeline = self
        parts = name.split("/")
        if parts[0] == self.name and len(parts) > 1 and self._find(parts[0]) is None:
            parts = parts[1:]
        for i, part in enumerate(parts):
            found = node._find(part)
            if found is None or (i < len(parts) - 1 and not isinstance(found, Pipeline)):
                known = ", ".join(repr(c.name) for c in node._body.walk()) or "none"
                raise KeyError(f"no stage {name!r} in pipeline {self.name!r}; known: {known}")
            if i == len(parts) - 1:
                return found
            assert isinstance(found, Pipeline)
            node = found
        raise KeyError(name)

    def __contains__(self, name: object) -> bool:
        try:
            self[name]  # type: ignore[index]
        except (KeyError, TypeError, AttributeError):
            return False
        return True

    def __len__(self) -> int:
        return len(self.stages)

    def graph(self) -> Graph:
        """Resolve the definition into a frozen :class:`~minigun_nb.core.graph.Graph`.

        Raises the DefinitionError a run would raise (unknown names, ambiguity, cycles).
        """
        from .graph import resolve

        return resolve(self._root()).relative_to(self._path())

    @property
    def edges(self) -> list[Edge]:
        """The resolved edges as ``mg.Edge(source, target, kind)``, paths relative to this one."""
        return list(self.graph().edges)

    def to_mermaid(self) -> str:
        """The DAG as a mermaid ``flowchart`` definition."""
        from ..display.diagram import to_mermaid

        return to_mermaid(self.graph())

    def to_dot(self) -> str:
        """The DAG as a Graphviz ``dot`` digraph."""
        from ..display.diagram import to_dot

        return to_dot(self.graph())

    def to_svg(self) -> str:
        """The DAG as a standalone SVG string (presentation attributes only, text escaped).

        The same layout the live dashboard and ``result.to_html()`` draw.

        Examples
        --------
        >>> import minigun_nb as mg
        >>> pipe = mg.Pipeline([mg.producer(lambda: [1], name="gen"),
        ...                     mg.processor(lambda x: x, name="f")])
        >>> pipe.to_svg().startswith('<svg xmlns="http://www.w3.org/2000/svg"')
        True
        """
        from ..display.layout import graph_trait
        from ..display.svg import render_svg

        graph = self.graph()
        return render_svg(graph_trait(graph), title=f"Pipeline {graph.name!r}")

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        from ..display.diagram import mimebundle

        return mimebundle(self)

    def __repr__(self) -> str:
        n = sum(1 for _ in self._body.walk())
        return f"<Pipeline {self.name!r}: {n} stage{'s' if n != 1 else ''}>"

    # -- running ---------------------------------------------------------------------------
    def run(self, items: Any = None, display: str = "auto", *, peek: bool = True) -> Any:
        """Run the pipeline to the end and return a ``RunResult``.

        ``items`` feeds the entry stages (an iterable, or a DataFrame in row chunks).
        ``display`` is ``"auto"`` (the live widget in a notebook, progress bars in a
        terminal, text otherwise), ``"widget"``, ``"progress"``, ``"hud"``, ``"text"`` or
        ``"none"``; ``peek=False`` keeps displays from showing a repr of the outputs. The
        first Ctrl-C drains the run and returns the partial result (``stopped=True``); a
        second one cancels.

        Examples
        --------
        >>> import minigun_nb as mg
        >>> pipe = mg.Pipeline([mg.processor(lambda x: -x, name="neg")])
        >>> pipe.run(items=[1, 2], display="none").outputs_by_stage["neg"] in ([-1, -2], [-2, -1])
        True
        """
        from ..display import displays_for
        from ..runtime.handle import run

        return run(self, items=items, displays=displays_for(display), peek=peek)

    def start(self, items: Any = None, display: str = "auto", *, peek: bool = True) -> Any:
        """Start a run in the background and return a ``RunHandle`` at once.

        ``display`` and ``peek`` as for :meth:`run`; ``handle.show()`` shows a live dashboard
        of the run later, whatever ``display`` was.

        Examples
        --------
        >>> import minigun_nb as mg
        >>> pipe = mg.Pipeline([mg.processor(lambda x: x, name="same")])
        >>> handle = pipe.start(items=[1], display="none")
        >>> handle.wait().outputs
        [1]
        """
        from ..display import displays_for
        from ..runtime.handle import start

        return start(self, items=items, displays=displays_for(display), peek=peek)
