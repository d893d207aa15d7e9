"""A Debian root booted by systemd-nspawn, systemd as its PID 1, inside one of a lab's network
namespaces: the service tested under the init system it is written for.

Why: the unit's claims (Type=notify, STATUS=, the watchdog, ExecReload=, the sandbox) can only be
checked by a real systemd, which is not PID 1 on the test hosts.  ``--network-namespace-path`` puts
the container in the lab's node namespace, so the lab's routers, DHCP servers and NATs move it like
any other node; ``--volatile=overlay`` keeps every write in memory (the cached root,
:mod:`debian_root`, is never changed); ``--register=no --keep-unit`` needs no machined or system
bus on the host; ``--capability=CAP_NET_ADMIN`` gives the container's root the power over its
network that ``--private-network`` would (nspawn grants it only then), over the lab's namespace only.

Host safety: nspawn runs in its own session; :meth:`SystemdContainer.close` shuts the container
down (SIGTERM to nspawn: an orderly poweroff), else SIGKILLs its PID 1 (which ends every process of
its PID namespace) and nspawn, by PID.  The machine is named after the lab's prefix (the run's PID).

API
---
``BootFailed``: nspawn ended before the container's systemd started (the reason and nspawn's output
in the message): this host cannot boot a container.  A boot that fails later raises
``AssertionError``.
``SystemdContainer(lab, root, netns, binds=(), read_only_binds=())`` (context manager; ``binds``:
``(host path, container path)`` pairs)
    ``.boot(timeout=90)``  returns once ``systemctl is-system-running --wait`` says running or
        degraded
    ``.run(*argv, check=True, input=None, timeout=120) -> CompletedProcess[str]``  in the container,
        as root with a clean environment (``nsenter --all``)
    ``.sh(script, ...)``  ``/bin/sh -e -c script``; ``.systemctl(*args, check=True)``
    ``.show(unit, prop) -> str``  ``systemctl show -P``
    ``.path(path) -> Path``  a container path seen from the host (``/proc/PID/root``)
    ``.cursor() -> str``, ``.journal(unit, after=None) -> str``  the unit's journal since a cursor
    ``.close()``
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path

from .netns import Namespace, children, tail, wait_for

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .lab import Lab

# What a root shell in the container starts with: nothing of the test run's environment.
ENVIRONMENT = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8",
               "HOME=/root", "SYSTEMD_PAGER=", "SYSTEMD_COLORS=0"]


class BootFailed(Exception):
    """systemd-nspawn could not boot the root on this host."""


class SystemdContainer:
    """One booted container (see the module's docstring)."""

    def __init__(self, lab: Lab, root: Path, netns: Namespace, *, binds: Sequence[tuple[Path, str]] = (),
                 read_only_binds: Sequence[tuple[Path, str]] = ()) -> None:
        self.root = root
        self.netns = netns
        self.name = f"{lab.prefix}systemd"
        self.log = lab.tmp / "nspawn.log"
        self.binds = [f"--bind={host}:{inside}" for host, inside in binds]
        self.binds += [f"--bind-ro={host}:{inside}" for host, inside in read_only_binds]
        self.nspawn: subprocess.Popen[bytes] | None = None
        self.init_pid = 0  # the container's systemd, as the host numbers it

    def __enter__(self) -> SystemdContainer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def boot(self, timeout: float = 90.0) -> None:
        argv = ["systemd-nspawn", "--quiet", "--register=no", "--keep-unit", "--boot",
                f"--directory={self.root}", "--volatile=overlay", f"--machine={self.name}",
                f"--network-namespace-path=/run/netns/{self.netns.name}", "--capability=CAP_NET_ADMIN",
                "--console=read-only",
                *self.binds]
        with self.log.open("wb") as log:
            self.nspawn = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                           stderr=subprocess.STDOUT, start_new_session=True)
        self.init_pid = wait_for(self._init, 30, "the container's systemd to start")
        # systemctl needs systemd's private socket, which exists once it runs as the manager.
        wait_for(self.path("/run/systemd/private").exists, 30, "the container's systemd to listen")
        state = self.run("systemctl", "is-system-running", "--wait", check=False, timeout=timeout)
        if state.stdout.strip() not in ("running", "degraded"):
            raise AssertionError(f"the container's systemd says {(state.stdout + state.stderr).strip()!r}:\n"
                                 f"{tail(self.log)}")

    def _init(self) -> int | None:
        """nspawn's child that runs systemd, once it does.  nspawn ending first is the one failure
        that means this host cannot boot a container (``BootFailed``); anything after it is a bug."""
        assert self.nspawn is not None
        if self.nspawn.poll() is not None:
            raise BootFailed(f"systemd-nspawn exited with status {self.nspawn.returncode}:\n{tail(self.log)}")
        for pid in children(self.nspawn.pid):
            try:
                if Path(f"/proc/{pid}/comm").read_text().strip() == "systemd":
                    return pid
            except OSError:
                continue
        return None

    def run(self, *argv: str, check: bool = True, input: str | None = None,
            timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        command = ["nsenter", f"--target={self.init_pid}", "--all", "env", "-i", *ENVIRONMENT, *argv]
        result = subprocess.run(command, input=input, capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"in the container: {' '.join(argv)} exited with {result.returncode}:\n"
                                 f"{result.stdout}{result.stderr}")
        return result

    def sh(self, script: str, check: bool = True, timeout: float = 300.0) -> subprocess.CompletedProcess[str]:
        return self.run("/bin/sh", "-e", "-c", script, check=check, timeout=timeout)

    def systemctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run("systemctl", *args, check=check)

    def show(self, unit: str, prop: str) -> str:
        return self.systemctl("show", "-P", prop, unit).stdout.strip()

    def path(self, inside: str) -> Path:
        return Path(f"/proc/{self.init_pid}/root") / inside.lstrip("/")

    def cursor(self) -> str:
        """Where the journal ends now (for :meth:`journal` ``after``)."""
        lines = self.run("journalctl", "--show-cursor", "-n", "0", "--no-pager").stdout.splitlines()
        return next(line.split("cursor: ", 1)[1] for line in lines if line.startswith("-- cursor: "))

    def journal(self, unit: str, after: str | None = None) -> str:
        """The journal of ``unit`` (messages of the unit and systemd's about it), after ``after``."""
        since = [f"--after-cursor={after}"] if after else []
        return self.run("journalctl", "--no-pager", "-o", "cat", "-u", unit, *since).stdout

    def close(self) -> None:
        if self.nspawn is None:
            return
        if self.nspawn.poll() is None:
            self.nspawn.send_signal(signal.SIGTERM)  # nspawn asks the container's systemd to power off
            try:
                self.nspawn.wait(30)
            except subprocess.TimeoutExpired:
                for pid in children(self.nspawn.pid):  # the container's PID 1, while nspawn lives
                    os.kill(pid, signal.SIGKILL)  # ends its whole PID namespace
                self.nspawn.kill()
                self.nspawn.wait(10)
        # nspawn removes its directory for mounts into the container only from a tmpfs /run.
        with contextlib.suppress(OSError):
            Path(f"/run/systemd/nspawn/propagate/{self.name}").rmdir()

