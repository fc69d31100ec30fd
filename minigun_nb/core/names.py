"""Names and paths: how a name seen from a pipeline finds a stage or nested pipeline.

A path is ``"inner/load"`` relative to the root pipeline (``""`` is the root). A name is
looked up from the pipeline that declares it (SPEC 2.2): its own pipeline, then the pipelines
nested below it (nearest level first), then its ancestors; a name with ``/`` is a path from
the root (with or without the root's name) or from the declaring pipeline.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..errors import AmbiguousStageError, UnknownStageError


def join(prefix: str, name: str) -> str:
    return f"{prefix}/{name}" if prefix else name


def full(root_name: str, path: str) -> str:
    """The full path of a stage or pipeline, root name included (``"etl/inner/f"``)."""
    return f"{root_name}/{path}" if path else root_name


def parent(pp: str) -> str | None:
    if not pp:
        return None
    return pp.rsplit("/", 1)[0] if "/" in pp else ""


def ancestry(pp: str) -> list[str]:
    """Pipeline ``pp`` and its ancestors, root first."""
    out = [pp]
    p = parent(pp)
    while p is not None:
        out.append(p)
        p = parent(p)
    return list(reversed(out))


def known(root_name: str, scopes: Mapping[str, Mapping[str, tuple[str, str]]]) -> str:
    names = sorted({path for scope in scopes.values() for _, path in scope.values()})
    return ", ".join(repr(n) for n in names) or "none"


def lookup(
    root_name: str, scopes: Mapping[str, Mapping[str, tuple[str, str]]], name: str, origin: str
) -> tuple[str, str]:
    return lookup_settled(root_name, scopes, name, origin)[0]


def lookup_settled(
    root_name: str, scopes: Mapping[str, Mapping[str, tuple[str, str]]], name: str, origin: str
) -> tuple[tuple[str, str], bool]:
    """``(kind, path)`` of ``name`` seen from pipeline ``origin``, and whether it is *settled*.

    A binding is settled when no later definition can change it: a name found in ``origin``'s
    own pipeline (names are unique there), a full path from the root, or the name of an
    enclosing pipeline. A name found below or above ``origin`` is not: a stage of that name
    defined later in ``origin`` itself (a forward reference) would take precedence.
    """
    if not isinstance(name, str) or not name:
        raise UnknownStageError(f"stage name {name!r} is not valid; names are strings.")
    by_path = {path: (kind, path) for scope in scopes.values() for kind, path in scope.values()}
    if "/" in name:
        parts = name.split("/")
        tries = [name, join(origin, name)]
        if parts[0] == root_name:
            tries.insert(1, "/".join(parts[1:]))  # "etl/x/save" as well as "x/save"
        for i, t in enumerate(tries):
            if t in by_path:
                # relative to origin only because no such path from the root exists (yet)
                relative = i == len(tries) - 1 and t not in tries[:-1]
                return by_path[t], not relative
        raise UnknownStageError(
            f"no stage or pipeline at path {name!r} (seen from {full(root_name, origin)!r}); "
            f"known paths: {known(root_name, scopes)}."
        )
    if name in scopes[origin]:
        return scopes[origin][name], True
    # pipelines nested below the origin, nearest level first
    level = [p for _, p in (v for v in scopes[origin].values()) if p in scopes]
    while level:
        hits = [scopes[p][name] for p in level if name in scopes[p]]
        if len(hits) > 1:
            listed = ", ".join(repr(full(root_name, h[1])) for h in hits)
            raise AmbiguousStageError(
                f"stage name {name!r} (seen from {full(root_name, origin)!r}) matches several "
                f"stages at the same level: {listed}; use the full path instead."
            )
        if hits:
            return hits[0], False
        level = [p for pp in level for _, p in scopes[pp].values() if p in scopes]
    # then the ancestors, nearest first
    anc = parent(origin)
    while anc is not None:
        if name in scopes[anc]:
            kind, path = scopes[anc][name]
            enclosing = kind == "pipeline" and (origin == path or origin.startswith(path + "/"))
            return (kind, path), enclosing
        anc = parent(anc)
    raise UnknownStageError(
        f"no stage or pipeline named {name!r} (seen from {full(root_name, origin)!r}); "
        f"known: {known(root_name, scopes)}. Check the spelling, or use a full path."
    )
