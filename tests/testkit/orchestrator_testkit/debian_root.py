"""A Debian 12 root file system with systemd, built by debootstrap and cached outside the checkout,
for booting under systemd-nspawn (:mod:`systemd_container`).

Why a cache: debootstrap takes ~45 s and ~60 MB of downloads, and the root is the same for every
run; the project is installed into each booted container afresh (``--volatile=overlay``: the cached
tree is never written).  The root is rebuilt when it is missing, when its recipe (suite, packages,
the steps below) changed, or when it is older than ``MAX_AGE_S`` (security updates).

Host safety:
  * the first stage (``debootstrap --foreign``) only downloads and unpacks; the packages' scripts
    run in the second stage, chrooted, in private network, PID, mount, UTS and IPC namespaces
    (``unshare``), while debootstrap's own ``policy-rc.d`` forbids every service start: nothing a
    package does can reach the host's interfaces or outlive the build;
  * the build happens in a directory of its own beside the cache and replaces the old root only
    once complete, under a lock (two runs never build at once, an interrupted build is discarded).

API
---
``CACHE`` (``/var/cache/netlink-orchestrator``, or ``$ORCHESTRATOR_TEST_CACHE``), ``MIRROR``
(``http://deb.debian.org/debian``, or ``$ORCHESTRATOR_TEST_MIRROR``), ``SUITE``, ``PACKAGES``
``debian_root(cache=CACHE) -> Path``  the root, built first when missing or stale
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CACHE = Path(os.environ.get("ORCHESTRATOR_TEST_CACHE", "/var/cache/netlink-orchestrator"))
MIRROR = os.environ.get("ORCHESTRATOR_TEST_MIRROR", "http://deb.debian.org/debian")
SUITE = "bookworm"
# systemd as PID 1 and the bus systemctl talks over; ip for the lab; the interpreter and venv the
# README installs the daemon with; miredo for the main and the standby Teredo tunnels.
PACKAGES = ("systemd", "dbus", "iproute2", "python3", "python3-venv", "miredo")
MAX_AGE_S = 30 * 86400
# Part of the recipe: change it when a build step changes, so that cached roots are rebuilt.
STEPS_VERSION = 1


def recipe() -> str:
    """What the root is made of, as stored beside it: a different recipe means a rebuild."""
    return f"suite={SUITE} variant=minbase packages={','.join(PACKAGES)} steps={STEPS_VERSION}\n"


def debian_root(cache: Path = CACHE) -> Path:
    """The cached root, built first (under a lock) when missing, of another recipe, or too old."""
    cache.mkdir(parents=True, exist_ok=True)
    root = cache / f"{SUITE}-systemd"
    stamp = cache / f"{SUITE}-systemd.recipe"
    with _locked(cache / ".lock"):
        if not _fresh(root, stamp):
            _build(root, stamp)
    return root


def _fresh(root: Path, stamp: Path) -> bool:
    try:
        return (root.is_dir() and stamp.read_text() == recipe()
                and time.time() - stamp.stat().st_mtime < MAX_AGE_S)
    except FileNotFoundError:
        return False


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _build(root: Path, stamp: Path) -> None:
    building = root.with_name(root.name + ".building")
    shutil.rmtree(building, ignore_errors=True)  # an interrupted build (we hold the lock)
    stamp.unlink(missing_ok=True)
    _run(["debootstrap", "--foreign", "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE,
          str(building), MIRROR])
    _run(["unshare", "--net", "--pid", "--fork", "--mount", "--uts", "--ipc", "--mount-proc",
          "chroot", str(building), "/debootstrap/debootstrap", "--second-stage"])
    # miredo's package enables its service; the tests configure and enable it as a user does.
    _run(["systemctl", f"--root={building}", "disable", "miredo.service"])
    for deb in (building / "var/cache/apt/archives").glob("*.deb"):
        deb.unlink()
    shutil.rmtree(root, ignore_errors=True)
    building.rename(root)
    stamp.write_text(recipe())


def _run(argv: list[str]) -> None:
    """Run a build step; its output only when it fails (debootstrap is verbose)."""
    result = subprocess.run(argv, capture_output=True, text=True, timeout=900)
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip().splitlines()[-20:]
        raise RuntimeError(f"{' '.join(argv[:3])} ... failed ({result.returncode}):\n" + "\n".join(output))
