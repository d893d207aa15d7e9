"""The ``[6to4]`` section: its schema, and its values as one typed object."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from orchestrator import Key, Section

# Where a 6to4 router cannot be reached from the IPv4 internet: RFC 1918, carrier-grade NAT
# (RFC 6598) and link-local.  Python's ``is_global`` is not the rule: it also calls the
# documentation ranges non-global, and those are public addresses for this plugin.
NAT_RANGES = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16"]


def _ranges_problem(values: list[str]) -> str | None:
    for value in values:
        try:
            ipaddress.IPv4Network(value)
        except ValueError:
            return f"{value!r} is not an IPv4 network (a.b.c.d/len, host bits zero)"
    return None


def _interface_problem(value: str) -> str | None:
    if not 0 < len(value) <= 15 or not value.isprintable() or any(c in value for c in "/: *?["):
        return f"{value!r} is not an interface name (1-15 characters, no '/', ':', space or pattern)"
    return None


def _interface_id_problem(value: str) -> str | None:
    if int(ipaddress.IPv6Address(value)) >> 64:
        return f"{value!r} has bits above the low 64: an interface identifier is written like '::1'"
    return None


SECTION = Section(
    {
        "interface": Key("str", "the 6to4 tunnel interface", "tun6to4", check=_interface_problem),
        "create": Key(
            "bool", "create the sit device (local = the uplink address); false: someone else makes it", True
        ),
        "subnet": Key("int", "the subnet ID within the 2002:WWXX:YYZZ::/48 site prefix", 0, 0, 0xFFFF),
        "interface_id": Key(
            "ipv6", "the low 64 bits of the tunnel's address", "::1", check=_interface_id_problem
        ),
        "address_prefixlen": Key(
            "int", "prefix length of the tunnel's address (16: 2002::/16 on-link)", 16, 16, 128
        ),
        "routing_profile": Key("str", "the [routing.profiles.<name>] for the tunnel's routes; absent: none"),
        "mip6_preference": Key(
            "int", "MnIfPreference of the tunnel for Mobile IPv6; absent: not used", None, 1, 1000
        ),
        "nat_ranges": Key(
            "list[str]",
            "IPv4 networks whose uplink address means 'behind NAT'",
            NAT_RANGES,
            check=_ranges_problem,
        ),
    },
    doc="6to4: the tunnel's 2002::/16 address follows the IPv4 uplink",
)


@dataclass(frozen=True)
class Settings:
    """What the plugin needs of its section, parsed once."""

    interface: str
    create: bool
    subnet: int
    interface_id: int
    address_prefixlen: int
    nat_ranges: tuple[ipaddress.IPv4Network, ...]

    @classmethod
    def from_section(cls, section: Mapping[str, Any]) -> Settings:
        return cls(
            interface=section["interface"],
            create=section["create"],
            subnet=section["subnet"],
            interface_id=int(ipaddress.IPv6Address(section["interface_id"])),
            address_prefixlen=section["address_prefixlen"],
            nat_ranges=tuple(ipaddress.IPv4Network(value) for value in section["nat_ranges"]),
        )
