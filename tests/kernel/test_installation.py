"""The project installed the way the README installs it: built by pip into a directory of its own,
not editable, so every package must be in the distribution (the editable install of the test
environment would hide a missing one)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from orchestrator_testkit import REPO
from orchestrator_testkit.installation import copy_sources


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``pip install`` of a copy of the sources (setuptools writes build files beside them)."""
    source = copy_sources(tmp_path_factory.mktemp("source"))
    site = tmp_path_factory.mktemp("site")
    pip = [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, "--target", str(site), str(source)], check=True, timeout=300)
    return site


def from_site(site: Path, code: str) -> subprocess.CompletedProcess[str]:
    """``code`` run without this environment's site-packages: only the installation and the
    standard library can be imported."""
    prelude = f"import sys; sys.path[:0] = [{str(site)!r}]; "
    return subprocess.run([sys.executable, "-I", "-S", "-c", prelude + code], capture_output=True, text=True,
                          timeout=60)


def test_the_command_line_finds_every_command_of_the_installation(installed: Path) -> None:
    result = from_site(installed, "from orchestrator.cli import main; sys.exit(main(['--help']))")
    assert result.returncode == 0, result.stderr
    for command in ("run", "status", "hook", "mip6d-conf"):
        assert f"    {command}" in result.stdout, result.stdout


def test_the_client_hook_imports_from_the_installation(installed: Path) -> None:
    code = ("import orchestrator_routing.hook; from orchestrator import wire; "
            "print(all(m.__file__.startswith(sys.path[0]) for m in (wire, orchestrator_routing.hook)))")
    result = from_site(installed, code)
    assert (result.returncode, result.stdout) == (0, "True\n"), result.stderr


def test_the_installation_writes_the_client_hook(installed: Path, tmp_path: Path) -> None:
    """The shell body of the hook is package data: an installation without it could not print one."""
    output = tmp_path / "client-hook"
    argv = ["hook", "--config", str(REPO / "etc" / "orchestrator.toml"), "--print-client-hook", "--output",
            str(output)]
    result = from_site(installed, f"from orchestrator.cli import main; sys.exit(main({argv!r}))")
    assert result.returncode == 0, result.stderr
    assert output.read_text().startswith("#!/bin/sh\n") and "\nprofile_of() {\n" in output.read_text()
    assert output.stat().st_mode & 0o777 == 0o755


def test_every_package_of_the_checkout_is_installed(installed: Path) -> None:
    """A subpackage left out of pyproject's ``packages`` imports in the checkout and fails only once
    installed (``orchestrator.metrics`` did, in the daemon's first import under systemd)."""
    core = [p.parent.relative_to(REPO / "orchestrator") for p in (REPO / "orchestrator").rglob("__init__.py")]
    packages = {f"orchestrator/{d}": installed / "orchestrator" / d for d in core}
    packages |= {f"plugins/{p.parent.name}": installed / f"orchestrator_{p.parent.name}"
                 for p in (REPO / "plugins").glob("*/__init__.py")}
    missing = [name for name, path in packages.items() if not (path / "__init__.py").exists()]
    assert not missing, f"not in the installation: {sorted(missing)}"
