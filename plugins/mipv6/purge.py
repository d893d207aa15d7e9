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
from dataclasses import dataclass

from orchestrator import LinkEvent, NetworkState, wire

ALREADY_GONE = (errno.EADDRNOTAVAIL, errno.ENODEV, errno.ENOENT)


@dataclass(frozen=True)
class Recorded:
    interface: str
    index: int
    address: str
    prefixlen: int


def record(state: NetworkState, links: list[LinkEvent]) -> list[Recorded]:
    """The global IPv6 addresses on ``links`` now (tentative ones included: they are dead too)."""
    return [
        Recorded(link.name, link.index, a.address, a.prefixlen)
        for link in links
        for a in state.global_ipv6(link.index, usable=False)
    ]


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
