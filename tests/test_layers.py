"""The import contracts between the package's layers (docs/architecture.md, "Who imports whom").

Every ``import`` of every module of ``minigun_nb`` is read from its source (``ast``), resolved to
the absolute module it names, and checked against the rules below. An import that runs when the
module loads (module level, including inside ``try`` or ``if``) is a *load-time* import; one
inside a function runs only when that function is called (a *call-time* import). Imports under
``if TYPE_CHECKING:`` never run and are ignored.

The rules, lowest layer first:

- ``stagefn`` (calling a stage function, the chunk runner, the wire format) imports nothing of the
  package outside itself, and no third-party library at load time.
- ``executors`` import only ``stagefn``, ``errors`` and themselves.
- ``observe`` never imports ``runtime``, ``core``, ``executors`` or a display.
- ``runtime`` never imports ``display`` or ``notebook`` at load time; at call time only inside the
  documented façade methods listed in ``FACADES`` (a result's HTML, a handle's widget).
- ``core`` imports ``runtime`` or ``display`` only inside the documented façade methods.
- No module outside ``display`` and ``notebook`` imports ipywidgets, anywidget, IPython, tqdm or
  rich, at any time.

A failure names the file, the line, the import and the rule it breaks.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

import minigun_nb

ROOT = Path(minigun_nb.__file__).resolve().parent
UI_LIBRARIES = ("ipywidgets", "anywidget", "IPython", "tqdm", "rich")

#: call-time imports of a higher layer that are the documented way down into it: (module,
#: function qualname) -> the layers it may reach. Keep this list short and in docs/architecture.md.
FACADES: dict[tuple[str, str], tuple[str, ...]] = {
    ("minigun_nb.core.pipeline", "Pipeline.run"): ("runtime", "display"),
    ("minigun_nb.core.pipeline", "Pipeline.start"): ("runtime", "display"),
    ("minigun_nb.core.pipeline", "Pipeline.to_mermaid"): ("display",),
    ("minigun_nb.core.pipeline", "Pipeline.to_dot"): ("display",),
    ("minigun_nb.core.pipeline", "Pipeline.to_svg"): ("display",),
    ("minigun_nb.core.pipeline", "Pipeline._repr_mimebundle_"): ("display",),
    ("minigun_nb.runtime.result", "RunResult.to_html"): ("display",),
    ("minigun_nb.runtime.result", "RunResult._repr_html_"): ("display",),
    ("minigun_nb.runtime.handle", "RunHandle.show"): ("display",),
    # IPython's hook for showing a definition error without the package's frames
    ("minigun_nb.errors", "DefinitionError._render_traceback_"): ("notebook",),
}


class Import(NamedTuple):
    module: str  # the importing module
    target: str  # the absolute module imported
    line: int
    where: str  # "" at load time, else the enclosing function's qualname
    path: Path


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> list[str]:
    if node.level == 0:
        base = node.module or ""
    else:
        pkg = module.split(".") if is_package else module.split(".")[:-1]
        pkg = pkg[: len(pkg) - (node.level - 1)]
        base = ".".join(pkg + ([node.module] if node.module else []))
    # `from . import x`, `from minigun_nb import display`: each name that is a module is the
    # import's target (else it is a name the module defines, and the module is the target)
    return [f"{base}.{a.name}" if _is_module(f"{base}.{a.name}") else base for a in node.names]


def _is_module(name: str) -> bool:
    path = ROOT.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(path: Path) -> Iterator[Import]:
    module = module_name(path)
    is_package = path.name == "__init__.py"
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))

    def walk(node: ast.AST, scope: list[str], in_def: bool) -> Iterator[Import]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                for sub in child.orelse:
                    yield from walk_one(sub, scope, in_def)
                continue
            yield from walk_one(child, scope, in_def)

    def walk_one(child: ast.AST, scope: list[str], in_def: bool) -> Iterator[Import]:
        where = ".".join(scope) if in_def else ""
        if isinstance(child, ast.Import):
            for alias in child.names:
                yield Import(module, alias.name, child.lineno, where, path)
        elif isinstance(child, ast.ImportFrom):
            for target in _resolve(module, is_package, child):
                yield Import(module, target, child.lineno, where, path)
        elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield from walk(child, [*scope, child.name], True)
        elif isinstance(child, ast.ClassDef):
            yield from walk(child, [*scope, child.name], in_def)
        else:
            yield from walk(child, scope, in_def)

    yield from walk(tree, [], False)


def all_imports() -> list[Import]:
    return [imp for path in sorted(ROOT.rglob("*.py")) for imp in imports_of(path)]


def layer(module: str) -> str | None:
    """``minigun_nb.runtime.run`` -> ``runtime``; top-level modules are their own layer."""
    parts = module.split(".")
    if parts[0] != "minigun_nb":
        return None
    return parts[1] if len(parts) > 1 else "minigun_nb"


def ours(imp: Import) -> bool:
    return layer(imp.target) is not None


def third_party(target: str) -> bool:
    top = target.split(".")[0]
    return top != "minigun_nb" and top not in sys.stdlib_module_names and top != "__future__"


def show(imp: Import, rule: str) -> str:
    at = f" (inside {imp.where})" if imp.where else " (at load time)"
    return f"{imp.path.relative_to(ROOT.parent)}:{imp.line}: imports {imp.target}{at}: {rule}"


IMPORTS = all_imports()


def of_layer(name: str, imports: list[Import] | None = None) -> list[Import]:
    return [imp for imp in (IMPORTS if imports is None else imports) if layer(imp.module) == name]


def test_the_reader_sees_the_imports() -> None:
    # The checks below are only as good as the reader: it must find both kinds of import.
    found = {(imp.module, imp.target, imp.where) for imp in IMPORTS}
    assert ("minigun_nb.core.pipeline", "minigun_nb.runtime.handle", "Pipeline.run") in found
    assert any(imp.module == "minigun_nb.runtime.run" and not imp.where for imp in IMPORTS)
    for layer_name in ("stagefn", "executors", "observe", "runtime", "core", "display"):
        assert of_layer(layer_name), f"no module of minigun_nb/{layer_name}/ was read"


def test_stagefn_imports_nothing_of_the_package_and_no_third_party_at_load() -> None:
    bad = [
        show(imp, "stagefn imports only itself and the standard library")
        for imp in of_layer("stagefn")
        if (ours(imp) and layer(imp.target) != "stagefn")
        or (not imp.where and third_party(imp.target))
    ]
    assert not bad, "\n".join(bad)


def executor_violations(imports: list[Import]) -> list[str]:
    allowed = {"stagefn", "errors", "executors"}
    return [
        show(imp, "executors import only stagefn and errors")
        for imp in of_layer("executors", imports)
        if ours(imp) and layer(imp.target) not in allowed
    ]


def test_executors_import_only_stagefn_and_errors() -> None:
    bad = executor_violations(IMPORTS)
    assert not bad, "\n".join(bad)


def test_a_broken_rule_is_reported_with_its_place() -> None:
    # The rules can fail: an executor reaching into the runtime, even lazily, is named.
    path = ROOT / "executors" / "process.py"
    fake = Import("minigun_nb.executors.process", "minigun_nb.runtime.stagerun", 7, "f", path)
    assert executor_violations([fake]) == [
        "minigun_nb/executors/process.py:7: imports minigun_nb.runtime.stagerun (inside f): "
        "executors import only stagefn and errors"
    ]
    assert not _facade_allows(fake._replace(module="minigun_nb.core.pipeline"), "runtime")
    # `from minigun_nb import display` names the display package, not the package's __init__
    node = ast.parse("from minigun_nb import display, __version__").body[0]
    assert isinstance(node, ast.ImportFrom)
    assert _resolve("minigun_nb.runtime.items", False, node) == ["minigun_nb.display", "minigun_nb"]
    node = ast.parse("from ..display import svg").body[0]
    assert isinstance(node, ast.ImportFrom)
    assert _resolve("minigun_nb.runtime.items", False, node) == ["minigun_nb.display.svg"]
    assert _facade_allows(fake._replace(module="minigun_nb.core.pipeline", where="Pipeline.run"),
                          "runtime")


def test_observe_never_imports_the_runtime_core_executors_or_a_display() -> None:
    banned = {"runtime", "core", "executors", "display", "notebook"}
    bad = [
        show(imp, "observe sits below the runtime and the displays")
        for imp in of_layer("observe")
        if ours(imp) and layer(imp.target) in banned
    ]
    assert not bad, "\n".join(bad)


def _facade_allows(imp: Import, target_layer: str) -> bool:
    if not imp.where:
        return False
    for (module, qualname), layers in FACADES.items():
        if imp.module == module and (imp.where == qualname or imp.where.startswith(qualname + ".")):
            return target_layer in layers
    return False


@pytest.mark.parametrize(
    ("name", "banned"),
    [("runtime", ("display", "notebook")), ("core", ("runtime", "display", "notebook"))],
)
def test_higher_layers_only_through_the_documented_facades(
    name: str, banned: tuple[str, ...]
) -> None:
    bad = [
        show(imp, f"{name} reaches {layer(imp.target)} only inside a documented façade method")
        for imp in of_layer(name)
        if ours(imp)
        and layer(imp.target) in banned
        and not _facade_allows(imp, str(layer(imp.target)))
    ]
    assert not bad, "\n".join(bad)


def test_every_facade_listed_exists() -> None:
    # A stale entry would let a later import through unnoticed.
    for (module, qualname), layers in FACADES.items():
        hits = [imp for imp in IMPORTS if imp.module == module and imp.where == qualname]
        assert any(layer(imp.target) in layers for imp in hits), (module, qualname)


def test_ui_libraries_only_in_display_and_notebook() -> None:
    bad = [
        show(imp, "only display/ and notebook/ may import a UI library")
        for imp in IMPORTS
        if imp.target.split(".")[0] in UI_LIBRARIES
        and layer(imp.module) not in ("display", "notebook")
    ]
    assert not bad, "\n".join(bad)


def test_layers_form_no_cycle_outside_the_facades() -> None:
    # Within a layer modules may import each other lazily; between layers, once the documented
    # façades are set aside, the arrows must go one way (the 21-file cycle of issue 11).
    # The package's own __init__ re-exports every layer and is left out.
    arrows: dict[str, set[str]] = {}
    why: dict[tuple[str, str], Import] = {}
    for imp in IMPORTS:
        src, dst = layer(imp.module), layer(imp.target)
        if src is None or dst is None or src == dst or "minigun_nb" in (src, dst):
            continue
        if _facade_allows(imp, dst):
            continue
        arrows.setdefault(src, set()).add(dst)
        why.setdefault((src, dst), imp)

    def cycle_from(start: str) -> list[str] | None:
        stack = [(start, [start])]
        while stack:
            node, path = stack.pop()
            for nxt in sorted(arrows.get(node, ())):
                if nxt == start:
                    return [*path, start]
                if nxt not in path:
                    stack.append((nxt, [*path, nxt]))
        return None

    for start in sorted(arrows):
        cycle = cycle_from(start)
        assert cycle is None, "layers import in a circle: " + " -> ".join(cycle) + "\n" + "\n".join(
            show(why[(a, b)], f"{a} -> {b}") for a, b in zip(cycle, cycle[1:], strict=False)
        )


def test_the_backend_registry_names_executor_modules_only() -> None:
    # BACKENDS holds "module:Class" strings the reader above cannot see: each is an executor
    # module (so the executors' rules cover it) and names a class that is there.
    import importlib

    from minigun_nb.executors import BACKENDS

    for backend, where in BACKENDS.items():
        module, _, name = where.partition(":")
        assert layer(module) == "executors" and _is_module(module), (backend, where)
        assert isinstance(getattr(importlib.import_module(module), name), type), (backend, where)


def test_every_registered_backend_is_a_valid_backend_option() -> None:
    # A new backend is its module, one registry line, and its name among the option's values
    # (core/options.py, the list SPEC gives); the registry may not name one the option refuses.
    from minigun_nb.core.options import BACKENDS as OPTION_VALUES
    from minigun_nb.executors import BACKENDS
    from minigun_nb.runtime.pooled_prepare import POOLED_BACKENDS

    assert set(BACKENDS) <= set(OPTION_VALUES)
    assert set(POOLED_BACKENDS) == set(BACKENDS)
