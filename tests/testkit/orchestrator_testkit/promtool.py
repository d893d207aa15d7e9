"""Prometheus's own ``promtool`` (Debian's prometheus package, which scripts/install-deps installs)."""

from __future__ import annotations

import shutil

import pytest


def find_promtool() -> str:
    """The ``promtool`` command; the test fails (not skips) when it is missing."""
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("promtool not found: scripts/install-deps installs it (Debian package prometheus)")
    return found
