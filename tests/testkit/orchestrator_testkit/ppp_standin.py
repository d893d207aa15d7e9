"""A pppd stand-in: a process in a lab namespace that holds a point-to-point unit like pppd's.

Run as a script (``python ppp_standin.py IFNAME LOCAL PEER [--via-peer] [--ipv6 ADDRESS/LEN]``)
it opens /dev/net/tun
with ``IFF_TUN | IFF_NO_PI`` under the name IFNAME (a POINTOPOINT, NOARP link with no hardware
address, as pppd's unit is) and sets what pppd's ``ipcp_up`` sets: ``LOCAL peer PEER/32``, the link
up, ``default dev IFNAME`` (no gateway; ``--via-peer``: ``default via PEER``, as some dialers
set it).  Like a ppp unit, which the kernel never gives a
link-local address of its own, the link gets no IPv6 address unless IPV6 is given: then it gets
what IPV6CP brings, pppd's link-local ``LL_LOCAL peer LL_PEER/128`` (nodad, as pppd sets it through
rtnetlink), and the global address the peer's router advertisement would bring.  It then holds
the unit: the link has carrier while the process runs and vanishes when it ends, as pppd's does on
hang-up.

``PppStandin(ns)`` drives it from a test: ``dial`` spawns it through ``ns.spawn`` (the Lab tracks
it and kills it by PID) and returns once the kernel shows the whole link; ``hang_up`` stops it and
returns once the unit is gone.  A redial is ``hang_up`` then ``dial`` with a new LOCAL.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import signal
import struct
import subprocess
import sys

from .netns import Namespace, TrackedProcess, wait_for

TUNSETIFF = 0x400454CA
IFF_TUN, IFF_NO_PI = 0x0001, 0x1000
LL_LOCAL, LL_PEER = "fe80::7", "fe80::1"  # IPV6CP's interface identifiers, as pppd makes them


def hold_unit(interface: str, local: str, peer: str, via_peer: bool, ipv6: str | None) -> None:
    tun = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(tun, TUNSETIFF, struct.pack("16sH", interface.encode(), IFF_TUN | IFF_NO_PI))
    steps = [
        ["link", "set", interface, "addrgenmode", "none"],  # no kernel link-local, as on a ppp unit
        ["addr", "add", local, "peer", f"{peer}/32", "dev", interface],
        ["link", "set", interface, "up"],
        ["route", "add", "default", *(["via", peer] if via_peer else []), "dev", interface],
    ]
    if ipv6 is not None:
        steps.append(["-6", "addr", "add", LL_LOCAL, "peer", f"{LL_PEER}/128", "dev", interface, "nodad"])
        steps.append(["-6", "addr", "add", ipv6, "dev", interface, "nodad"])
    for step in steps:
        subprocess.run(["ip", *step], check=True)
    signal.pause()  # holds ``tun`` until SIGTERM ends the process: the kernel then deletes the unit


class PppStandin:
    """One PPP interface in ``ns``, dialled and hung up by a stand-in process."""

    def __init__(self, ns: Namespace, interface: str = "ppp0") -> None:
        self.ns = ns
        self.interface = interface
        self.proc: TrackedProcess | None = None

    def dial(self, local: str, peer: str, ipv6: str | None = None, via_peer: bool = False) -> None:
        """Bring the unit up with ``local``; return once its default route (and ``ipv6``) are in."""
        argv = [sys.executable, "-m", __spec__.name, self.interface, local, peer]
        argv += [*(["--via-peer"] if via_peer else []), *(["--ipv6", ipv6] if ipv6 else [])]
        self.proc = proc = self.ns.spawn(argv)

        def complete() -> bool:
            proc.check_alive("the pppd stand-in")
            routes = self.ns.ip_json("-4", "route", "show", "default")
            if not any(r.get("dev") == self.interface for r in routes):
                return False
            return ipv6 is None or ipv6 in self.ns.addresses(self.interface, 6)

        wait_for(complete, 10, f"{self.interface} dialled with {local}")

    def hang_up(self) -> None:
        """End the stand-in; return once the kernel has deleted the unit."""
        assert self.proc is not None
        self.ns.lab.stop_process(self.proc)
        wait_for(lambda: not self.present(), 10, f"{self.interface} gone")

    def present(self) -> bool:
        return self.ns.ip("link", "show", "dev", self.interface, check=False).returncode == 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="hold a PPP-like unit until SIGTERM")
    parser.add_argument("interface")
    parser.add_argument("local")
    parser.add_argument("peer")
    parser.add_argument("--via-peer", action="store_true")
    parser.add_argument("--ipv6")
    args = parser.parse_args()
    hold_unit(args.interface, args.local, args.peer, args.via_peer, args.ipv6)
