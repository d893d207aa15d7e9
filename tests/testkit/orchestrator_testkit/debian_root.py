"""A Debian 12 root file system with systemd, built by debootstrap and cached outside the checkout,
for booting under systemd-nspawn (:mod:`systemd_container`).

Why a cache: debootstrap takes ~45 s and ~60 MB of downloads, and the root is the same for every
run; the project is installed into each booted container afresh (``--volatile=overlay``: the cached
tree is never written).  The root is rebuilt when it is missing, when its recipe (suite, packages,
the steps below) changed, or when it is older than ``MAX_AGE_S`` (security updates).

Host safety:
  * the first stage (``debootstrap --foreign``) only downloads and unpacks; the packages' scripts
    run in the second stage, chrooted, as root (as any debootstrap runs them), but in private
    network, PID, mount, UTS and IPC namespaces (``unshare --kill-child``), while debootstrap's own
    ``policy-rc.d`` forbids every service start: no package script sees the host's interfaces or
    processes, its mounts (/proc, /sys) vanish with it, and it cannot outlive the build;
  * each step runs in a session of its own, killed as a whole when it overruns its time;
  * the build happens in a directory of its own beside the cache and replaces the old root only
    once complete, under an exclusive lock; a run that uses the root holds a shared one, so a
    rebuild (another checkout's recipe) waits until no container runs on it.

API
---
``CACHE`` (``/var/cache/netlink-orchestrator``, or ``$ORCHESTRATOR_TEST_CACHE``), ``MIRROR``
(``http://deb.debian.org/debian``, or ``$ORCHESTRATOR_TEST_MIRROR``), ``SUITE``, ``PACKAGES``
``debian_root(cache=CACHE)``  context manager: the root (a Path), built first when missing or
stale, and not rebuilt by another run while the ``with`` block uses it
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CACHE = Path(os.environ.get("ORCHESTRATOR_TEST_CACHE") or "/var/cache/netlink-orchestrator")
MIRROR = os.environ.get("ORCHESTRATOR_TEST_MIRROR") or "http://deb.debian.org/debian"
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


@contextmanager
def debian_root(cache: Path = CACHE) -> Iterator[Path]:
    """The cached root, built first when missing, of another recipe, or too old; kept (a shared
    lock) until the block ends."""
    cache.mkdir(parents=True, exist_ok=True)
    root = cache / f"{SUITE}-systemd"
    stamp = cache / f"{SUITE}-systemd.recipe"
    with (cache / ".lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _fresh(root, stamp):
            _build(root, stamp)
        fcntl.flock(lock, fcntl.LOCK_SH)
        yield root


def _fresh(root: Path, stamp: Path) -> bool:
    try:
        return (root.is_dir() and stamp.read_text() == recipe()
                and time.time() - stamp.stat().st_mtime < MAX_AGE_S)
    except FileNotFoundError:
        return False


def _build(root: Path, stamp: Path) -> None:
    building = root.with_name(root.name + ".building")
    shutil.rmtree(building, ignore_errors=True)  # an interrupted build (we hold the lock)
    stamp.unlink(missing_ok=True)
    _run(["debootstrap", "--foreign", "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE,
          str(building), MIRROR])
    _run(["unshare", "--net", "--pid", "--fork", "--kill-child", "--mount", "--uts", "--ipc", "--mount-proc",
          "chroot", str(building), "/debootstrap/debootstrap", "--second-stage"])
    # miredo's package enables its service; the tests configure and enable it as a user does.
    _run(["systemctl", f"--root={building}", "disable", "miredo.service"])
    for deb in (building / "var/cache/apt/archives").glob("*.deb"):
        deb.unlink()
    shutil.rmtree(root, ignore_errors=True)
    building.rename(root)
    stamp.write_text(recipe())


def _run(argv: list[str], timeout: float = 900) -> None:
    """Run a build step in a session of its own (killed whole if it overruns); its output only
    when it fails (debootstrap is verbose)."""
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          start_new_session=True) as step:
        try:
            output, _ = step.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(step.pid, signal.SIGKILL)
            step.communicate()
            raise RuntimeError(f"{' '.join(argv[:3])} ... took more than {timeout:g} s") from None
    if step.returncode != 0:
        lines = output.strip().splitlines()[-20:]
        raise RuntimeError(f"{' '.join(argv[:3])} ... failed ({step.returncode}):\n" + "\n".join(lines))
