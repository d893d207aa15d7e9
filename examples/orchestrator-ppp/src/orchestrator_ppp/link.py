"""What the kernel shows of one PPP interface, read from the daemon's network state.

pppd's unit has carrier while pppd holds it and vanishes when pppd hangs up; its IPv4 address is a
point-to-point one (IFA_LOCAL ours, IFA_ADDRESS the peer), and with IPV6CP it gets a link-local
address and, from the peer's router advertisements, a global one.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Any

from orchestrator import NetworkState


@dataclass(frozen=True, slots=True)
class PppLink:
    """One PPP interface now; ``index`` None when it does not exist (pppd is not running)."""

    index: int | None
    up: bool  # present, administratively up and with carrier: a dialled link
    local: str | None
    peer: str | None
    ipv6: str | None

    def to_status(self, dials: int) -> dict[str, Any]:
        return {
            "state": "up" if self.up else "down",
            "local": self.local,
            "peer": self.peer,
            "dials": dials,
            "ipv6": self.ipv6,
        }


def observe(state: NetworkState, name: str) -> PppLink:
    """Read ``name`` from ``state`` (on the event loop only: the state belongs to it)."""
    link = state.view.link_named(name)
    if link is None:
        return PppLink(None, False, None, None, None)
    ipv4 = next(iter(state.view.addresses_of(link.index, socket.AF_INET)), None)
    return PppLink(
        index=link.index,
        up=link.up and link.carrier,
        local=ipv4.address if ipv4 else None,
        peer=ipv4.peer if ipv4 else None,
        ipv6=state.tunnel_address(name),
    )
