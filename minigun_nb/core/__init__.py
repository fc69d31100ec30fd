"""Describing a pipeline: pure data, no threads, no I/O."""
