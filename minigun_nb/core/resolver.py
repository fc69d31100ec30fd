"""Resolving a Pipeline into a frozen Graph: a pure function, Pipeline -> Graph.

The rules (SPEC sections 2 and 12) in the order they are applied:

1. Every stage and nested pipeline gets a path relative to the root (``"inner/load"``).
2. Every name in ``to=``/``from_=``/``routes=`` is resolved: the declaring stage's own pipeline,
   then pipelines nested below it (nearest level first), then its ancestors; a path with ``/``
   resolves from the root (with or without the root's name) or from the declaring pipeline.
3. Default chaining, block by block: an element's dangling exits connect to the entries of the
   next element that has any, skipping fan-out siblings. A stage's exit is itself unless it has
   ``to=`` or is dynamic; its entry is itself unless it is a producer, is dynamic or has
   ``from_=``. A parallel block's entries/exits are the union over its branches; a nested
   pipeline's are its entry/terminal stages judged by its own internal edges.
4. Explicit edges are expanded (a pipeline name stands for its entries as a target and for its
   terminal stages as a source), then cycles are searched for.

Nothing here mutates the Pipeline, so resolving twice gives equal graphs.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ..errors import AmbiguousStageError, CycleError, DefinitionError, UnknownStageError
from .functions import check_async_backend, check_picklable, instance_hooks
from .graph import Edge, Graph, StageSpec, descendants
from .names import ancestry, join, lookup_settled, parent
from .options import PIPELINE_ONLY, STAGE_DEFAULTS
from .stage import KERNEL_KINDS, Stage
from .tree import Block

if TYPE_CHECKING:
    from .pipeline import Pipeline


class Resolver:
    """The working state of one resolution (discarded afterwards)."""

    def __init__(self, root: Pipeline, lenient: bool) -> None:
        from .pipeline import Pipeline

        self.root = root
        self.lenient = lenient
        self.pipes: dict[str, Pipeline] = {"": root}
        self.stage_objs: dict[str, Stage] = {}
        self.owner: dict[str, str] = {}  # stage path -> pipeline path
        self.scopes: dict[str, dict[str, tuple[str, str]]] = {}
        self.subtree: dict[str, list[str]] = {}  # pipeline path -> stage paths in its subtree
        self.order: list[str] = []
        self._walk(root, "")
        self.pipeline_cls = Pipeline
        self._ports: dict[str, tuple[list[str], list[str]]] = {}
        self.chain: dict[str, list[Edge]] = {}

    def _walk(self, pipe: Pipeline, pp: str) -> None:
        from .pipeline import Pipeline

        scope: dict[str, tuple[str, str]] = {}
        self.scopes[pp] = scope
        self.subtree[pp] = []
        for child in pipe._body.walk():
            path = join(pp, child.name)
            if isinstance(child, Pipeline):
                scope[child.name] = ("pipeline", path)
                self.pipes[path] = child
                self._walk(child, path)
                self.subtree[pp].extend(self.subtree[path])
            else:
                scope[child.name] = ("stage", path)
                self.stage_objs[path] = child
                self.owner[path] = pp
                self.order.append(path)
                self.subtree[pp].append(path)

    # -- names -------------------------------------------------------------------------------
    def ref(self, name: str, origin: str) -> tuple[tuple[str, str], bool] | None:
        """The binding of ``name`` seen from ``origin`` and whether it is settled (see
        :func:`_lookup_settled`); None for an unknown name while resolving leniently."""
        try:
            return lookup_settled(self.root.name, self.scopes, name, origin)
        except (UnknownStageError, AmbiguousStageError) as exc:
            if self.lenient:
                return None
            raise type(exc)(f"{exc}") from None

    def settled_refs(self, names: Iterable[str] | None, origin: str, who: str
                     ) -> list[tuple[tuple[str, str], bool]]:
        out = []
        for n in names or ():
            try:
                r = self.ref(n, origin)
            except DefinitionError as exc:
                raise type(exc)(f"{who}: {exc}") from None
            if r is not None:
                out.append(r)
        return out

    def refs(self, names: Iterable[str] | None, origin: str, who: str) -> list[tuple[str, str]]:
        return [r for r, _ in self.settled_refs(names, origin, who)]

    # -- ports -------------------------------------------------------------------------------
    def accepts_default_in(self, path: str) -> bool:
        s = self.stage_objs[path]
        return s.kind != "producer" and not s.dynamic and s.from_ is None

    def emits_default_out(self, path: str) -> bool:
        s = self.stage_objs[path]
        return not s.dynamic and s.to is None

    def ports(self, pp: str) -> tuple[list[str], list[str]]:
        """Entry and terminal stages of nested pipeline ``pp``, judged by its internal edges."""
        if pp in self._ports:
            return self._ports[pp]
        inside = set(self.subtree[pp])
        edges = self.internal_edges(pp)
        has_in = {e.target for e in edges}
        has_out = {e.source for e in edges}
        entries = [p for p in self.subtree[pp] if self.accepts_default_in(p) and p not in has_in]
        exits = [p for p in self.subtree[pp] if self.emits_default_out(p) and p not in has_out]
        assert all(p in inside for p in entries + exits)
        self._ports[pp] = (entries, exits)
        return entries, exits

    def internal_edges(self, pp: str) -> list[Edge]:
        """Edges with both ends inside pipeline ``pp`` (chaining plus explicit)."""
        inside = set(self.subtree[pp])
        sub_pipes = [q for q in self.pipes if q.startswith(pp + "/") or (pp == "" and q)]
        edges = list(self.chain_edges(pp))
        for q in sub_pipes:
            edges.extend(self.chain_edges(q))
        members = [p for p in self.subtree[pp]]
        for decl in self.declarations(members, sub_pipes, within=pp):
            edges.extend(e for e in self.expand_declared(*decl) if e.source in inside
                         and e.target in inside)
        return edges

    def contains(self, pp: str, ref: tuple[str, str]) -> bool:
        """True when ``ref`` lies strictly inside pipeline ``pp``."""
        kind, path = ref
        if kind == "stage":
            return path in set(self.subtree[pp])
        return path != pp and (pp == "" or path.startswith(pp + "/"))

    def declarations(
        self, stages: Iterable[str], pipes: Iterable[str], within: str | None = None
    ) -> list[tuple[tuple[str, str], tuple[str, str], str, bool]]:
        """(source ref, target ref, who, settled) for every to=/from_= declared by these members.

        ``settled`` tells whether the name's binding is final (see :func:`_lookup_settled`).
        With ``within``, only declarations whose both ends lie strictly inside it.
        """
        out = []
        for path in stages:
            s = self.stage_objs[path]
            me = ("stage", path)
            who = f"stage {path!r}"
            for r, settled in self.settled_refs(s.to, self.owner[path], who):
                out.append((me, r, who, settled))
            for r, settled in self.settled_refs(s.from_, self.owner[path], who):
                out.append((r, me, who, settled))
        for q in pipes:
            pipe = self.pipes[q]
            me = ("pipeline", q)
            who = f"pipeline {q!r}"
            origin = parent(q) or ""
            for r, settled in self.settled_refs(pipe.to, origin, who):
                out.append((me, r, who, settled))
            for r, settled in self.settled_refs(pipe.from_, origin, who):
                out.append((r, me, who, settled))
        if within is not None:
            out = [d for d in out if self.contains(within, d[0]) and self.contains(within, d[1])]
        return out

    def expand(self, src: tuple[str, str], dst: tuple[str, str]) -> list[Edge]:
        if src[0] == "pipeline" and dst[0] == "pipeline" and src[1] == dst[1]:
            raise CycleError(f"pipeline {src[1]!r} routes to itself; remove that to=/from_=.")
        for ref, other in ((src, dst), (dst, src)):
            if ref[0] == "pipeline" and self.contains(ref[1], other):
                raise CycleError(
                    f"{other[0]} {other[1]!r} routes to its own pipeline {ref[1]!r}, which "
                    f"would feed it back to itself; route to a stage inside instead."
                )
        sources = [src[1]] if src[0] == "stage" else self.ports(src[1])[1]
        targets = [dst[1]] if dst[0] == "stage" else self.ports(dst[1])[0]
        if not targets and not self.lenient:  # (leniently: it may get stages later)
            self._no_entry(dst[1])
        return [Edge(s, t, "explicit") for s in sources for t in targets]

    def _no_entry(self, q: str) -> None:
        """Items routed to nested pipeline ``q``, which has no entry stage, would be lost."""
        stages = self.subtree[q]
        if not stages:
            why, fix = "it is empty", "give it a stage"
        else:
            why = ("every stage in it is dynamic=True, a producer, or fed from inside it "
                   "(from_= or an upstream)")
            fix = (f"route to one of its stages by path (to={stages[0]!r}), or give it a "
                   f"stage that is not dynamic=True")
        raise DefinitionError(
            f"routes to nested pipeline {q!r}, which has no entry stage to receive the items "
            f"({why}), so they would be lost; {fix}."
        )

    def expand_declared(self, src: tuple[str, str], dst: tuple[str, str], who: str,
                        settled: bool) -> list[Edge]:
        """:meth:`expand` one declaration, its errors prefixed with who declared it.

        Leniently, a cycle through a binding that is not settled is not raised: the name may
        still be bound elsewhere by a later definition (a forward reference).
        """
        try:
            return self.expand(src, dst)
        except DefinitionError as exc:
            if isinstance(exc, CycleError) and self.lenient and not settled:
                return []
            raise type(exc)(f"{who}: {exc}") from None

    # -- default chaining --------------------------------------------------------------------
    def explicit_sources(self) -> dict[str, set[str]]:
        """Who declares an explicit edge into each stage or nested pipeline (by path).

        Enough to tell fan-out siblings apart without expanding pipelines into their ports
        (which needs the default chaining being computed).
        """
        sources: dict[str, set[str]] = {}
        for src, dst, _, _ in self.declarations(self.order, [q for q in self.pipes if q]):
            sources.setdefault(dst[1], set()).add(src[1])
        return sources

    def _sources(self, path: str, pp: str) -> set[str]:
        """Explicit sources of stage ``path`` seen at the chaining level of pipeline ``pp``:
        its own, plus those of every nested pipeline between it and ``pp``."""
        out = set(self._xsrc.get(path, ()))
        q = self.owner[path]
        top = path  # the element of pp's block that holds the stage
        while q != pp:
            out |= self._xsrc.get(q, set())
            top = q
            q = parent(q) or ""
        if top != path:
            # a source inside the same nested pipeline is that pipeline's own business: at
            # pp's level the pipeline chains like a stage (SPEC §12), so `inner/work(to=
            # ["tail", "report"])` does not make inner's exit `tail` a sibling of `report`
            out = {s for s in out if not s.startswith(top + "/")}
        return out

    def siblings(self, a: str, b: str, pp: str) -> bool:
        """Fan-out siblings share an upstream through explicit edges (never default ones)."""
        return bool(self._sources(a, pp) & self._sources(b, pp))

    def chain_edges(self, pp: str) -> list[Edge]:
        if pp in self.chain:
            return self.chain[pp]
        if not hasattr(self, "_xsrc"):
            self._xsrc = self.explicit_sources()
        edges: list[Edge] = []
        self.chain[pp] = edges  # guards against re-entry while computing
        self._link_seq(self.pipes[pp]._body.children, pp, edges)
        return edges

    def _element(self, child: Any, pp: str, edges: list[Edge]) -> tuple[list[str], list[str], str]:
        """(entries, dangling exits, tag) of one element of a block."""
        if isinstance(child, Stage):
            path = join(pp, child.name)
            ins = [path] if self.accepts_default_in(path) else []
            outs = [path] if self.emits_default_out(path) else []
            return ins, outs, "stage"
        if isinstance(child, self.pipeline_cls):
            q = join(pp, child.name)
            entries, exits = self.ports(q)
            has_producer = any(self.stage_objs[p].kind == "producer" for p in self.subtree[q])
            ins = [] if has_producer or child.from_ is not None else list(entries)
            outs = [] if child.to is not None else list(exits)
            return ins, outs, "nested"
        assert isinstance(child, Block)
        if child.kind == "seq":
            ins, outs = self._link_seq(child.children, pp, edges)
            return ins, outs, "seq"
        ins, outs = [], []
        for branch in child.children:
            b_ins, b_outs, _ = self._element(branch, pp, edges)
            ins.extend(b_ins)
            outs.extend(b_outs)
        return ins, outs, "par"

    def _link_seq(self, children: list[Any], pp: str, edges: list[Edge]
                  ) -> tuple[list[str], list[str]]:
        first_ins: list[str] | None = None
        pending: list[tuple[str, str]] = []  # (dangling exit, tag of its element)
        for child in children:
            ins, outs, tag = self._element(child, pp, edges)
            if ins:
                if first_ins is None:
                    first_ins = ins
                still = []
                for out, out_tag in pending:
                    targets = [t for t in ins if not self.siblings(out, t, pp)]
                    if not targets:
                        still.append((out, out_tag))  # only siblings here: look further on
                        continue
                    tags = {out_tag, tag}
                    kind = ("nested" if "nested" in tags
                            else "parallel" if "par" in tags else "default")
                    edges.extend(Edge(out, t, kind) for t in targets)
                pending = still
            pending.extend((o, tag) for o in outs)
        return first_ins or [], [o for o, _ in pending]

    # -- the whole graph ----------------------------------------------------------------------
    def resolve(self) -> Graph:
        edges: list[Edge] = []
        for pp in self.pipes:
            edges.extend(self.chain_edges(pp))
        nested = [q for q in self.pipes if q]
        settled_pairs: set[tuple[str, str]] = {(e.source, e.target) for e in edges}
        unsettled_pairs: set[tuple[str, str]] = set()
        for decl in self.declarations(self.order, nested):
            expanded = self.expand_declared(*decl)
            edges.extend(expanded)
            pairs = settled_pairs if decl[3] else unsettled_pairs
            pairs.update((e.source, e.target) for e in expanded)
        seen: dict[tuple[str, str], Edge] = {}
        for e in edges:
            seen.setdefault((e.source, e.target), e)
        rank = {p: i for i, p in enumerate(self.order)}
        edges = sorted(seen.values(), key=lambda e: (rank[e.source], rank[e.target]))
        ups: dict[str, list[str]] = {p: [] for p in self.order}
        downs: dict[str, list[str]] = {p: [] for p in self.order}
        for e in edges:
            downs[e.source].append(e.target)
            ups[e.target].append(e.source)
        if not self.lenient:
            self._check_producer_inputs(edges)  # before cycles: the clearer message
        if self.lenient:
            # a cycle through a binding a later definition can still change is not one yet;
            # the final resolution (run, pipe.edges) sees the settled names and checks again
            tentative = unsettled_pairs - settled_pairs
            self._check_cycles({p: [q for q in v if (p, q) not in tentative]
                                for p, v in downs.items()})
        else:
            self._check_cycles(downs)
        specs = {p: self._spec(p) for p in self.order}
        graph_ups = {p: tuple(v) for p, v in ups.items()}
        graph_downs = {p: tuple(v) for p, v in downs.items()}
        senders = self._senders(specs, graph_ups, graph_downs)
        ports = {q: (tuple(self.ports(q)[0]), tuple(self.ports(q)[1])) for q in nested}
        hooks: dict[str, list[tuple[str, Callable[..., Any]]]] = {}
        for q, pipe in self.pipes.items():
            for kind, fns in pipe.hooks.items():
                hooks.setdefault(kind, []).extend((q, f) for f in fns)
        options = {k: self.root.options.get(k, v) for k, v in PIPELINE_ONLY.items()}
        if not self.lenient:
            self._validate(specs, graph_downs)
        return Graph(
            name=self.root.name,
            stages=types.MappingProxyType(specs),
            edges=tuple(edges),
            pipelines=tuple(nested),
            senders=types.MappingProxyType(senders),
            hooks=types.MappingProxyType({k: tuple(v) for k, v in hooks.items()}),
            options=types.MappingProxyType(options),
            scopes=types.MappingProxyType(
                {k: types.MappingProxyType(v) for k, v in self.scopes.items()}
            ),
            ports=types.MappingProxyType(ports),
            upstreams=types.MappingProxyType(graph_ups),
            downstreams=types.MappingProxyType(graph_downs),
        )

    def _spec(self, path: str) -> StageSpec:
        s = self.stage_objs[path]
        pp = self.owner[path]
        chain = [self.pipes[q] for q in ancestry(pp)]
        opts: dict[str, Any] = dict(STAGE_DEFAULTS)
        for pipe in chain:
            opts.update({k: v for k, v in pipe.options.items() if k in STAGE_DEFAULTS})
        opts.update(s.options)
        for hook, method in instance_hooks(s.fn).items():  # a stateful stage object's own hooks
            if opts[hook] is None:
                opts[hook] = method
        if s.kind in KERNEL_KINDS:
            opts.update(workers=1, backend="inline")  # one thread in the kernel
        elif s.kind == "producer":
            opts["workers"] = 1
        if opts["retry_on"] is None:
            opts["retry_on"] = (Exception,)
        elif not isinstance(opts["retry_on"], tuple):
            opts["retry_on"] = (opts["retry_on"],)
        routes = tuple(
            p for _, p in self.refs(s.routes, pp, f"stage {path!r}")
        )
        return StageSpec(
            path=path, name=s.name, kind=s.kind, pipeline=pp, stage=s,
            options=types.MappingProxyType(opts), params=types.MappingProxyType(dict(s.params)),
            dynamic=s.dynamic, routes=routes,
        )

    def _check_cycles(self, downs: Mapping[str, list[str]]) -> None:
        state: dict[str, int] = {}
        stack: list[str] = []

        def visit(p: str) -> None:
            state[p] = 1
            stack.append(p)
            for q in downs[p]:
                if state.get(q) == 1:
                    cycle = stack[stack.index(q):] + [q]
                    raise CycleError(
                        f"the pipeline has a cycle: {' -> '.join(cycle)}. Items would circle "
                        f"forever; remove one of these to=/from_= edges (use output.to(...) "
                        f"for a deliberate loop-back)."
                    )
                if q not in state:
                    visit(q)
            stack.pop()
            state[p] = 2

        for p in self.order:
            if p not in state:
                visit(p)

    def _senders(self, specs: Mapping[str, StageSpec], ups: Mapping[str, tuple[str, ...]],
                 downs: Mapping[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        senders: dict[str, list[str]] = {p: list(ups[p]) for p in self.order}
        for p, spec in specs.items():
            for target in spec.routes:
                if p not in senders[target]:
                    senders[target].append(p)
        for p, spec in specs.items():
            if spec.dynamic:
                desc = descendants(p, downs)
                senders[p] = [q for q in self.order if q != p and q not in desc]
        return {p: tuple(v) for p, v in senders.items()}

    def _check_producer_inputs(self, edges: Iterable[Edge]) -> None:
        """A producer takes no input: ``to=``/``from_=`` into one would make its items
        vanish (SPEC §14), so it is a definition error (``routes=``: :meth:`_validate`)."""
        for e in edges:
            target = self.stage_objs[e.target]
            if target.kind == "producer":
                raise DefinitionError(
                    f"stage {e.source!r} sends to {e.target!r} (a to=/from_= edge), but "
                    f"{e.target!r} is a producer, which takes no input; send to a processor "
                    f"instead, or give {target.name!r} an item parameter to make it one."
                )

    def _validate(self, specs: Mapping[str, StageSpec], downs: Mapping[str, tuple[str, ...]]
                  ) -> None:
        for path, spec in specs.items():
            for target in spec.routes:
                if target in specs and specs[target].kind == "producer":
                    raise DefinitionError(
                        f"stage {path!r}: routes= names {target!r}, a producer, which takes "
                        f"no input; route to a processor instead."
                    )
        for path, spec in specs.items():
            route = spec.options.get("route")
            if isinstance(route, Mapping):
                for name in route:
                    # a weight may name a stage or a nested pipeline (its entry stages)
                    for kind, target in self.refs([name], spec.pipeline, f"stage {path!r}"):
                        targets = [target] if kind == "stage" else self.ports(target)[0]
                        if not targets or not set(targets) <= set(downs[path]):
                            known = ", ".join(map(repr, downs[path])) or "none"
                            raise DefinitionError(
                                f"stage {path!r}: route weight {name!r} is not one of its "
                                f"downstream stages ({known}); weights must name the stages "
                                f"it feeds (add {name!r} to its to=)."
                            )
            backend = spec.options["backend"]
            fn = spec.fn
            if fn is None:
                continue
            check_async_backend(f"stage {path!r}", spec.name, fn, backend)
            if backend in ("process", "dask") and "backend" not in spec.stage.options:
                check_picklable(f"stage {path!r}", fn, backend)
