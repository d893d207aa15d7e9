"""What the 6to4 tunnel should carry for an IPv4 uplink (RFC 3056): pure, so it is tested alone."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from .settings import Settings

SIX_TO_FOUR = ipaddress.IPv6Network("2002::/16")


@dataclass(frozen=True)
class Target:
    """The tunnel's end state, and how ``orchestrator status`` explains it.

    state: ``up`` (a global uplink: the address is configured), ``behind-nat`` (a private uplink
    address: 6to4 cannot work) or ``down`` (no IPv4 uplink).  ``address`` is set only when up.
    """

    state: str
    uplink: str | None = None
    address: ipaddress.IPv6Interface | None = None
    reason: str | None = None

    @property
    def prefix(self) -> str | None:
        """The site's 2002:WWXX:YYZZ::/48."""
        if self.address is None:
            return None
        return str(ipaddress.IPv6Network((int(self.address.ip), 48), strict=False))


def six_to_four_address(ipv4: ipaddress.IPv4Address, settings: Settings) -> ipaddress.IPv6Interface:
    """2002:WWXX:YYZZ:<subnet>:<interface id> for W.X.Y.Z, with the configured prefix length."""
    value = (0x2002 << 112) | (int(ipv4) << 80) | (settings.subnet << 64) | settings.interface_id
    return ipaddress.IPv6Interface((value, settings.address_prefixlen))


def behind_nat(ipv4: ipaddress.IPv4Address, settings: Settings) -> bool:
    return any(ipv4 in network for network in settings.nat_ranges)


def target(ipv4: ipaddress.IPv4Address | None, settings: Settings) -> Target:
    if ipv4 is None:
        return Target("down", reason="no IPv4 uplink")
    if behind_nat(ipv4, settings):
        reason = f"the uplink address {ipv4} is private (behind NAT): 6to4 needs a global IPv4 address"
        return Target("behind-nat", str(ipv4), reason=reason)
    return Target("up", str(ipv4), six_to_four_address(ipv4, settings))
