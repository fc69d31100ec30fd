"""Reliability tests leave no worker process behind."""

from __future__ import annotations

import pytest

import minigun_nb as mg


@pytest.fixture(autouse=True, scope="module")
def _close_pools_after_module():
    yield
    mg.shutdown()
