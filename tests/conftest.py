"""Fixtures shared by the real-kernel tests."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from lab import Lab


@pytest.fixture
def lab() -> Iterator[Lab]:
    """A private lab (namespaces named after this run, removed even when the test fails)."""
    if os.geteuid() != 0:
        pytest.skip("needs root for network namespaces")
    with Lab() as the_lab:
        yield the_lab
