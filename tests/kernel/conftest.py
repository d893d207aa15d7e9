"""Fixtures shared by the real-kernel tests."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from orchestrator_testkit import REPO
from orchestrator_testkit.lab import Lab
from orchestrator_testkit.teredo_rig import Rig, rig_for

EXAMPLES = REPO / "examples"


@pytest.fixture
def lab() -> Iterator[Lab]:
    """A private lab (namespaces named after this run, removed even when the test fails)."""
    if os.geteuid() != 0:
        pytest.skip("needs root for network namespaces")
    with Lab() as the_lab:
        yield the_lab


@pytest.fixture(scope="session")
def examples_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example plugin distributions (``examples/*``), installed by pip into a private
    directory exactly as a third party installs a plugin: built from their own pyproject.toml,
    found only through their entry points.  Put it on PYTHONPATH with ``plugin_site.environment``."""
    site, sources = tmp_path_factory.mktemp("examples-site"), tmp_path_factory.mktemp("examples-src")
    # Built from copies: setuptools writes build/ and *.egg-info next to the sources it builds.
    examples = sorted(p.parent for p in EXAMPLES.glob("*/pyproject.toml"))
    projects = [str(shutil.copytree(example, sources / example.name)) for example in examples]
    command = [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-deps"]
    subprocess.run([*command, "--target", str(site), *projects], check=True)
    return site


@pytest.fixture
def rig(request: pytest.FixtureRequest) -> Iterator[Rig]:
    """The daemon (routing + teredo) in a TeredoLab node whose miredo qualified first; the
    daemon must stop cleanly at the end.  Parametrize indirectly with ``renew_after`` / ``grace``."""
    yield from rig_for(request)
