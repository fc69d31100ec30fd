"""The frozen Graph a Pipeline resolves to: stages by path, edges, senders, scopes.

:func:`resolve` makes one (the rules: :mod:`minigun_nb.core.resolver`); the runtime and the
displays read it and never the Pipeline, so a run never mutates the definition.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from .names import lookup
from .stage import Stage

if TYPE_CHECKING:
    from .pipeline import Pipeline


class Edge(NamedTuple):
    """A resolved edge: ``source`` and ``target`` are stage paths.

    ``kind`` is ``"default"`` (definition order), ``"explicit"`` (``to=``/``from_=``),
    ``"parallel"`` (into or out of a ``parallel()`` block) or ``"nested"`` (across a nested
    pipeline's boundary).

    Examples
    --------
    >>> import minigun_nb as mg
    >>> mg.Edge("a", "b", "default") == ("a", "b", "default")
    True
    """

    source: str
    target: str
    kind: str


@dataclass(frozen=True, eq=True)
class StageSpec:
    """One stage of a resolved graph, with every option filled in."""

    path: str
    name: str
    kind: str
    pipeline: str  # path of the pipeline that owns it ("" for the root)
    stage: Stage = field(compare=True, repr=False)
    options: Mapping[str, Any] = field(repr=False)
    params: Mapping[str, Any] = field(repr=False)
    dynamic: bool = False
    routes: tuple[str, ...] = ()

    @property
    def fn(self) -> Callable[..., Any] | None:
        return self.stage.fn

    @property
    def function(self) -> Callable[..., Any]:
        """The stage function (worker stages and accumulators always have one)."""
        fn = self.stage.fn
        if fn is None:
            raise TypeError(f"stage {self.path!r} is an operator and has no function")
        return fn


@dataclass(frozen=True, eq=True)
class Graph:
    """A resolved pipeline: stages by path, edges, senders, entries and terminals.

    Examples
    --------
    >>> import minigun_nb as mg
    >>> pipe = mg.Pipeline([mg.producer(lambda: [1], name="gen"),
    ...                     mg.processor(lambda x: x, name="f")])
    >>> g = pipe.graph()
    >>> g.producers, g.terminals, g.upstreams["f"]
    (('gen',), ('f',), ('gen',))
    """

    name: str
    stages: Mapping[str, StageSpec]
    edges: tuple[Edge, ...]
    pipelines: tuple[str, ...]
    #: every stage that can send to a stage: static upstreams, routes= declarers, and for a
    #: dynamic stage every stage that is not its descendant
    senders: Mapping[str, tuple[str, ...]]
    hooks: Mapping[str, tuple[tuple[str, Callable[..., Any]], ...]]
    options: Mapping[str, Any]
    #: pipeline path -> {name: ("stage"|"pipeline", path)} for resolving names at run time
    scopes: Mapping[str, Mapping[str, tuple[str, str]]] = field(repr=False)
    #: nested pipeline path -> (entry stage paths, terminal stage paths)
    ports: Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]] = field(repr=False)
    upstreams: Mapping[str, tuple[str, ...]] = field(repr=False)
    downstreams: Mapping[str, tuple[str, ...]] = field(repr=False)
    prefix: str = ""  # "" for a root graph; the pipeline path for relative_to() views

    @property
    def producers(self) -> tuple[str, ...]:
        return tuple(p for p, s in self.stages.items() if s.kind == "producer")

    @property
    def entries(self) -> tuple[str, ...]:
        """Non-producer, non-dynamic stages with no upstream: they receive ``run(items=...)``."""
        return tuple(
            p
            for p, s in self.stages.items()
            if s.kind != "producer" and not s.dynamic and not self.upstreams[p]
        )

    @property
    def terminals(self) -> tuple[str, ...]:
        """Stages with no downstream: what they emit is the run's output."""
        return tuple(p for p in self.stages if not self.downstreams[p])

    def descendants(self, path: str) -> set[str]:
        """Every stage reachable from ``path`` by static edges (not including itself)."""
        return descendants(path, self.downstreams)

    def full_path(self, path: str) -> str:
        return f"{self.name}/{path}"

    def lookup(self, name: str, origin: str) -> tuple[str, str]:
        """Resolve ``name`` as seen from pipeline ``origin`` to ``(kind, path)``.

        Raises UnknownStageError or AmbiguousStageError.
        """
        return lookup(self.name, self.scopes, name, origin)

    def targets(self, name: str, origin: str) -> tuple[str, ...]:
        """The stage paths an item routed to ``name`` from pipeline ``origin`` goes to."""
        kind, path = self.lookup(name, origin)
        return (path,) if kind == "stage" else self.ports[path][0]

    def relative_to(self, pipeline: str) -> Graph:
        """The part of the graph inside nested pipeline ``pipeline``, paths relative to it."""
        if not pipeline:
            return self
        pre = pipeline + "/"

        def inside(p: str) -> bool:
            return p.startswith(pre)

        def cut(p: str) -> str:
            return p[len(pre):]

        def cut_all(ps: Iterable[str]) -> tuple[str, ...]:
            return tuple(cut(p) for p in ps if inside(p))

        stages = {
            cut(p): StageSpec(
                cut(p), s.name, s.kind, cut(s.pipeline + "/")[:-1] if s.pipeline != pipeline
                else "", s.stage, s.options, s.params, s.dynamic, cut_all(s.routes),
            )
            for p, s in self.stages.items()
            if inside(p)
        }
        return Graph(
            name=pipeline.rsplit("/", 1)[-1],
            stages=stages,
            edges=tuple(
                Edge(cut(e.source), cut(e.target), e.kind)
                for e in self.edges
                if inside(e.source) and inside(e.target)
            ),
            pipelines=cut_all(self.pipelines),
            senders={cut(p): cut_all(v) for p, v in self.senders.items() if inside(p)},
            hooks=self.hooks,
            options=self.options,
            scopes={cut(p + "/")[:-1] if p != pipeline else "": v
                    for p, v in self.scopes.items() if p == pipeline or inside(p)},
            ports={cut(p): (cut_all(v[0]), cut_all(v[1]))
                   for p, v in self.ports.items() if inside(p)},
            upstreams={cut(p): cut_all(v) for p, v in self.upstreams.items() if inside(p)},
            downstreams={cut(p): cut_all(v) for p, v in self.downstreams.items() if inside(p)},
            prefix=pipeline,
        )


def descendants(path: str, downs: Mapping[str, Iterable[str]]) -> set[str]:
    """Every stage reachable from ``path`` along ``downs`` (not including itself)."""
    seen: set[str] = set()
    todo = list(downs[path])
    while todo:
        p = todo.pop()
        if p not in seen:
            seen.add(p)
            todo.extend(downs[p])
    return seen


def resolve(pipe: Pipeline, *, lenient: bool = False) -> Graph:
    """Resolve ``pipe`` (a root pipeline) into a frozen :class:`Graph`.

    ``lenient=True`` is the check made after each definition, while a pipeline is still being
    defined: it skips names that do not resolve yet (forward references) and does not report a
    routing to a nested pipeline without entry stages (it may get some later). It still raises
    on cycles, except those through a name bound outside the declaring stage's own pipeline,
    which a later definition in that pipeline could rebind (SPEC 2.2 and 11: a forward ``to=``
    must not bind to a same-named stage elsewhere). The final resolution checks every cycle.
    """
    from .resolver import Resolver

    return Resolver(pipe, lenient).resolve()
