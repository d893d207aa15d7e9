"""The daemon with the Teredo plugin in a ``TeredoLab`` node, and what to ask of it: ``Rig``.

The daemon runs plugins routing + teredo, miredo runs the project's client hook.  Kicks are counted
where they land: the "Reloading configuration" lines miredo's supervisor writes on every SIGHUP.
``Rig.sync`` proves that the daemon has seen and handled everything before it (a marker address,
then idle lanes), so "nothing happened" is never a sleep.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .configs import write_teredo
from .netns import TrackedProcess, wait_for
from .orchestrator_processes import DaemonProcess, client_hook
from .teredo_lab import (
    NATS,
    SERVER_ADDRESS,
    TEREDO_IF,
    TeredoLab,
    teredo_client_ipv4,
    teredo_requirements_problem,
)

RELOADED = "Reloading configuration"
MARKER = "192.0.2.254/32"


def miredo_reloads(lab: TeredoLab, iface: str = TEREDO_IF) -> int:
    """SIGHUPs the miredo of tunnel ``iface`` got in this lab so far, counted where they land: its
    supervisor's "Reloading configuration" lines (the log is appended across miredo's restarts, so
    compare two counts).  Why a function: a bench counts them with or without a daemon running."""
    return lab.miredo_client(iface)[1].read_text(errors="replace").count(RELOADED)


@dataclass
class Rig:
    lab: TeredoLab
    daemon: DaemonProcess
    hook: Path
    config: Path

    # -- what the daemon says --------------------------------------------------------------------
    def teredo(self) -> dict[str, Any]:
        plugin = next(p for p in self.daemon.status()["plugins"] if p["name"] == "teredo")
        return dict(plugin["status"])

    def counter(self, name: str) -> int:
        return int(self.daemon.status()["counters"][name])

    def wait_state(self, state: str, what: str) -> dict[str, Any]:
        found: dict[str, Any] = wait_for(lambda: s if (s := self.teredo())["state"] == state else None,
                                         30, f"teredo state {state!r}: {what}")
        return found

    def sync(self) -> None:
        """Everything the kernel said before now has been seen and handled by the daemon: a marker
        address must show up in its state, and then every lane must be idle."""
        node = self.lab.node
        node.ip("addr", "add", MARKER, "dev", "lo")
        try:
            wait_for(lambda: f"lo {MARKER}" in self.daemon.status()["state"]["addresses"], 15,
                     "the daemon to see the marker")
        finally:
            node.ip("addr", "del", MARKER, "dev", "lo")
        self.daemon.wait_idle()

    # -- what miredo and the kernel say -----------------------------------------------------------
    def reloads(self) -> int:
        return miredo_reloads(self.lab)

    def routed(self, exclude: set[str], behind: str) -> str:
        """Wait for a routed Teredo address (global 2001:0::/32 on ``teredo`` and a default route
        through it) other than ``exclude``; its mapped IPv4 must be router ``behind``'s NAT."""
        def found() -> str | None:
            addresses = [a for a in self.lab.teredo_addresses() if a not in exclude]
            routes = self.lab.node.ip_json("-6", "route", "show", "default", "dev", "teredo") \
                if addresses else []
            return addresses[0] if addresses and routes else None

        address: str = wait_for(found, 30, f"a routed Teredo address other than {sorted(exclude)}")
        assert teredo_client_ipv4(address) == NATS[behind].wan
        return address

    def start_miredo(self) -> TrackedProcess:
        return self.lab.start_miredo(self.hook)

    def restart(self) -> None:
        """A new daemon in the node, on the same configuration and runtime directory (the last one
        stopped or killed first)."""
        self.daemon = DaemonProcess(self.lab.node, self.config, self.daemon.socket)


@contextmanager
def teredo_rig(renew_after: int | None = None, grace: int = 2000) -> Iterator[Rig]:
    """A TeredoLab whose miredo (with the project's hook) qualified, then the daemon, up; the
    daemon must stop cleanly at the end."""
    with TeredoLab(renew_after=renew_after) as lab:
        config = write_teredo(lab.tmp, lab.miredo_pidfile, SERVER_ADDRESS, grace=grace)
        hook = client_hook(lab.tmp, config)
        lab.start_miredo(hook)
        lab.wait_teredo_address()
        rig = Rig(lab, DaemonProcess(lab.node, config, config.parent / "control.sock"), hook, config)
        rig.wait_state("up", "miredo qualified before the daemon started")
        yield rig
        assert rig.daemon.stop() == 0


def rig_for(request: pytest.FixtureRequest) -> Iterator[Rig]:
    """``teredo_rig`` for a fixture, parametrized indirectly with its arguments; skipped where the
    lab cannot run."""
    problem = teredo_requirements_problem()
    if problem:
        pytest.skip(problem)
    with teredo_rig(**getattr(request, "param", {})) as rig:
        yield rig
