"""Executing a resolved graph: the only package that owns threads and queues.

It never imports a display: it publishes events to a :mod:`minigun_nb.observe` collector.
"""
