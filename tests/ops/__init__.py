"""Tests for minigun_nb.ops (a package, so test module names cannot clash with tests elsewhere)."""
