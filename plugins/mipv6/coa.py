"""Which care-of address mip6d should use now: UMIP's rule, applied to the kernel's state.

UMIP takes, among the interfaces its configuration names, the one with the lowest
``MnIfPreference`` that has a usable care-of address: a global address, not tentative, not
deprecated.  An interface marked ``Tunnel enabled`` needs no router (its address is configured by
someone else, miredo's hook here); any other interface needs one, which on Linux shows as an IPv6
default route through it.  ``[[interfaces]]`` is that configuration: ``mip6_preference`` is
``MnIfPreference``, role ``tunnel`` is "Tunnel enabled", role ``lan`` is never a care-of address.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

from orchestrator import Config, NetworkState, wire


@dataclass(frozen=True, order=True)
class Candidate:
    preference: int
    index: int
    interface: str
    address: str
    tunnel: bool


def candidates(config: Config, state: NetworkState, exclude: frozenset[str] = frozenset()) -> list[Candidate]:
    """Every usable care-of address, best first (preference, then interface index)."""
    view = state.view
    routed = {
        route.oif
        for route in view.routes.values()
        if route.family == socket.AF_INET6 and route.dst_len == 0 and route.table == wire.RT_TABLE_MAIN
    }
    found: list[Candidate] = []
    for link in view.links.values():
        spec = config.interface(link.name)
        if spec is None or spec.mip6_preference is None or spec.role == "lan" or not link.up:
            continue
        tunnel = spec.is_tunnel
        if not tunnel and link.index not in routed:
            continue  # no router: mip6d would not use it
        found += [
            Candidate(spec.mip6_preference, link.index, link.name, address.address, tunnel)
            for address in state.global_ipv6(link.index)
            if address.address not in exclude
        ]
    return sorted(found)


def expected(config: Config, state: NetworkState, exclude: frozenset[str] = frozenset()) -> Candidate | None:
    found = candidates(config, state, exclude)
    return found[0] if found else None
