"""The project as the README installs it: what pip needs from a checkout, and the wheels of what it
depends on, for an installation on a machine without network (the systemd container).

Why from a copy: pip's build (setuptools) writes build files beside the sources, and a test must not
write into the checkout.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from orchestrator.config import tomllib  # tomli on 3.10

from . import REPO

#: What ``pip install /path/to/netlink-orchestrator`` reads from a checkout.
SOURCES = ("pyproject.toml", "README.md", "orchestrator", "plugins")


def copy_sources(destination: Path, *extra: str) -> Path:
    """``SOURCES`` (and ``extra`` paths of the checkout, e.g. ``etc``) copied into ``destination``."""
    destination.mkdir(parents=True, exist_ok=True)
    for name in (*SOURCES, *extra):
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, destination / name)
        else:
            shutil.copy2(REPO / name, destination / name)
    return destination


def wheelhouse(destination: Path) -> Path:
    """The project's run-time dependencies and its build back-end, downloaded (or taken from pip's
    cache) into ``destination`` as PyPI has them (sdnotify as a source archive, which the build
    back-end then builds): with ``PIP_NO_INDEX=1 PIP_FIND_LINKS=destination`` an offline ``pip
    install`` of the sources finds everything it needs."""
    with (REPO / "pyproject.toml").open("rb") as file:
        project = tomllib.load(file)
    requirements = [*project["project"]["dependencies"], *project["build-system"]["requires"]]
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check",
                    "--dest", str(destination), *requirements], check=True, timeout=300)
    return destination
