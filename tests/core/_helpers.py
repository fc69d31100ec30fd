"""Tiny builders shared by the definition tests."""

from __future__ import annotations


def edges(pipe):
    """``pipe.edges`` as plain ``(source, target, kind)`` tuples."""
    return [tuple(e) for e in pipe.edges]


def prod(pipe, name, **options):
    """A producer named ``name`` (its items do not matter here)."""
    return pipe.producer(lambda: [1], name=name, **options)


def proc(pipe, name, **options):
    """A pass-through processor named ``name``."""
    return pipe.processor(lambda item: item, name=name, **options)


def run_cell(namespace, source, *, per_statement=False):
    """Run ``source`` like a notebook cell: compiled again on every run, under a file name
    made from its text the way ipykernel names cells (an edited cell gets a new name).

    ``per_statement=True`` compiles each top-level statement on its own, as IPython does.
    """
    import ast
    import hashlib
    import textwrap

    source = textwrap.dedent(source)
    filename = f"/tmp/ipykernel_4242/{hashlib.sha1(source.encode()).hexdigest()[:10]}.py"
    if not per_statement:
        exec(compile(source, filename, "exec"), namespace)
        return
    for node in ast.parse(source, filename).body:
        exec(compile(ast.Module([node], type_ignores=[]), filename, "exec"), namespace)
