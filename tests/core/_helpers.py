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
