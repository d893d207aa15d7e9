"""The stale care-of address purge: delete, by value, exactly the addresses recorded at the loss.

When IPv4 goes, the Teredo address stays on the interface (miredo keeps it up to 30 s, 100 s more
after a failed refresh) and mip6d keeps refreshing its binding from it: UMIP does not move while
its care-of address is still there.  Deleting that address makes mip6d drop it and fall back to
the next interface with a usable address.  Only the recorded addresses go, each named by value:
never the link (toggling it removes every IPv6 address and restores none), never the link-local
address, never an address that appeared after the loss.
"""

from __future__ import annotations

import errno
import socket
from dataclasses import dataclass

from orchestrator import wire
from orchestrator.state import NetworkState

RT_SCOPE_UNIVERSE = 0
ALREADY_GONE = (errno.EADDRNOTAVAIL, errno.ENODEV, errno.ENOENT)


@dataclass(frozen=True)
class Recorded:
    interface: str
    index: int
    address: str
    prefixlen: int


def record(state: NetworkState, interfaces: list[str]) -> list[Recorded]:
    """The global IPv6 addresses on ``interfaces`` now (tentative ones included: they are dead too)."""
    found: list[Recorded] = []
    for name in interfaces:
        link = state.view.link_named(name)
        if link is None:
            continue
        found += [
            Recorded(name, link.index, a.address, a.prefixlen)
            for a in state.view.addresses_of(link.index, socket.AF_INET6)
            if a.scope == RT_SCOPE_UNIVERSE
        ]
    return found


def delete(recorded: list[Recorded]) -> list[str]:
    """Delete each recorded address; returns what went wrong (an address already gone is fine)."""
    problems: list[str] = []
    sock = wire.request_socket()
    try:
        for entry in recorded:
            body = wire.ipv6_address_body(entry.address, entry.prefixlen, entry.index)
            try:
                wire.exchange(sock, wire.RTM_DELADDR, body, wire.NLM_F_ACK)
            except OSError as error:
                if error.errno not in ALREADY_GONE:
                    problems.append(f"cannot delete {entry.address} from {entry.interface}: {error.strerror}")
    finally:
        sock.close()
    return problems
