"""Typed events: what the kernel said (raw) and what it means (derived).

Raw events mirror one rtnetlink message each, already decoded into the few fields the engine uses.
Derived events are what plugins see.  All are small frozen dataclasses: they cross lanes and threads
and must never be mutated after the state emitted them.
"""

from __future__ import annotations

import ipaddress
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class LinkEvent:
    """RTM_NEWLINK / RTM_DELLINK."""

    index: int
    name: str
    up: bool
    carrier: bool
    carrier_changes: int
    hwaddr: str | None
    deleted: bool = False
    alias: str | None = None  # IFLA_IFALIAS: miredo's client hook marks its runs with it
    kind = "link"


@dataclass(frozen=True, slots=True)
class AddressEvent:
    """RTM_NEWADDR / RTM_DELADDR.  ``address`` is ours (IFA_LOCAL when present, else IFA_ADDRESS);
    ``peer`` is the other end of a point-to-point link (IFA_ADDRESS when it differs from IFA_LOCAL)."""

    index: int
    family: int
    address: str
    prefixlen: int
    tentative: bool
    deprecated: bool
    valid_lft: int | None = field(compare=False)  # ticks down every second: never a difference
    #: When the kernel created the address (IFA_CACHEINFO cstamp: hundredths of a second since boot).
    #: A renewal keeps it, so it is no difference; an address deleted and made again is one.  Tells
    #: an address made before a move from one made after it.
    created: int | None = None
    deleted: bool = False
    scope: int = 0  # the kernel's own classification: 0 global, 253 link, 254 host
    peer: str | None = None
    kind = "address"

    @property
    def key(self) -> tuple[int, str, int]:
        return (self.index, self.address, self.prefixlen)

    @property
    def cidr(self) -> str:
        return f"{self.address}/{self.prefixlen}"


@dataclass(frozen=True, slots=True)
class RouteEvent:
    """RTM_NEWROUTE / RTM_DELROUTE for a table the engine watches."""

    family: int
    table: int
    dst: str
    dst_len: int
    gateway: str | None
    oif: int | None
    priority: int
    deleted: bool = False
    onlink: bool = False  # the gateway is declared on-link even outside every local subnet
    kind = "route"

    @property
    def key(self) -> tuple[int, int, str, int, int, int | None]:
        """What makes two routes the same kernel object (gateway changes replace, not add)."""
        return (self.family, self.table, self.dst, self.dst_len, self.priority, self.oif)

    @property
    def is_default(self) -> bool:
        return self.dst_len == 0


@dataclass(frozen=True, slots=True)
class RuleEvent:
    """RTM_NEWRULE / RTM_DELRULE (IPv6 policy rules)."""

    family: int
    priority: int
    table: int
    src: str | None
    src_len: int
    deleted: bool = False
    kind = "rule"

    @property
    def key(self) -> tuple[int, int, int, str | None, int]:
        return (self.family, self.priority, self.table, self.src, self.src_len)


@dataclass(frozen=True, slots=True)
class Resync:
    """The socket overran; the state was re-read from a fresh dump and the lost changes replayed."""

    replayed: int
    kind = "resync"


RawEvent = LinkEvent | AddressEvent | RouteEvent | RuleEvent


@dataclass(frozen=True, slots=True)
class Uplink:
    """The identity of the IPv4 access network the node is attached to.

    Two uplinks with equal identity are the same network: a DHCP renewal or a short carrier blip does
    not change it.  ``gateway_lladdr`` is compared only when both sides know it, because it is learned
    by a probe after the uplink is complete and is unknown right after a carrier change.
    """

    interface: str
    address: str  # "a.b.c.d/len"
    gateway: str | None
    gateway_lladdr: str | None = None

    def same_network(self, other: Uplink) -> bool:
        if (self.interface, self.address, self.gateway) != (
            other.interface,
            other.address,
            other.gateway,
        ):
            return False
        if self.gateway_lladdr is None or other.gateway_lladdr is None:
            return True
        return self.gateway_lladdr == other.gateway_lladdr

    @property
    def ip(self) -> ipaddress.IPv4Address:
        return ipaddress.IPv4Interface(self.address).ip

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        """``eth0 10.1.0.100/24 via 10.1.0.1 (MAC)``, as logs and ``orchestrator status`` show it."""
        via = f" via {self.gateway}" if self.gateway else ""
        mac = f" ({self.gateway_lladdr})" if self.gateway_lladdr else ""
        return f"{self.interface} {self.address}{via}{mac}"


@dataclass(frozen=True, slots=True)
class UplinkChanged:
    """The complete uplink changed identity, was lost (``new`` is None) or came back (``old`` None).

    ``move`` is the id of the move this change starts; every later phase of it carries the id.
    """

    old: Uplink | None
    new: Uplink | None
    move: int
    kind = "uplink-changed"


@dataclass(frozen=True, slots=True)
class TunnelAddressChanged:
    """The usable global IPv6 address of a ``tunnel`` interface changed (None: it has none)."""

    interface: str
    old: str | None
    new: str | None
    kind = "tunnel-address-changed"


@dataclass(frozen=True, slots=True)
class StandbyUplinksChanged:
    """The complete uplinks other than the active one changed (``standby``: best default route
    first).  An uplink is complete with carrier, an IPv4 address and a default route through it;
    the active one is ``UplinkChanged``'s."""

    standby: tuple[Uplink, ...]
    kind = "standby-uplinks-changed"


@dataclass(frozen=True, slots=True)
class LinkChanged:
    """Administrative state or carrier of a configured interface changed, or it appeared/vanished."""

    interface: str
    up: bool
    carrier: bool
    present: bool
    kind = "link-changed"


@dataclass(frozen=True, slots=True)
class LinkAliasChanged:
    """The alias (IFLA_IFALIAS) of a configured interface changed: miredo's client hook marks the
    begin and end of its runs there (the routing plugin's ``markers``).  The kernel reports an alias
    only while the link is up."""

    interface: str
    alias: str | None
    kind = "link-alias-changed"


@dataclass(frozen=True, slots=True)
class GatewayLearned:
    """Informational: a probe found the uplink gateway at this link-layer address (learned or
    confirmed after a carrier change; a different one is reported as a move instead)."""

    interface: str
    gateway: str
    lladdr: str
    kind = "gateway"


DerivedEvent = (
    UplinkChanged
    | StandbyUplinksChanged
    | TunnelAddressChanged
    | LinkChanged
    | LinkAliasChanged
    | GatewayLearned
)
AnyEvent = RawEvent | Resync | DerivedEvent


def event_to_json(event: AnyEvent, ifname: str | None = None) -> dict[str, Any]:
    """The JSON shape ``monitor --json`` prints (without ``time``)."""
    out: dict[str, Any] = {"event": event.kind}
    if isinstance(event, UplinkChanged):
        out["move"] = event.move
        out["old"] = event.old.to_json() if event.old else None
        out["new"] = event.new.to_json() if event.new else None
        return out
    out.update(asdict(event))
    if ifname is not None:
        out["interface"] = ifname
    return out
