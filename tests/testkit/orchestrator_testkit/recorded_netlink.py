"""Netlink messages as the kernel sends them, encoded by pyroute2 (an encoder independent of ours).

Unit tests feed these through ``RawDecoder`` into ``NetworkState`` to replay the sequences that
FIELD-NOTES records for dhclient, udhcpc and miredo.
"""

from __future__ import annotations

import socket
from typing import Any

from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg
from pyroute2.netlink.rtnl.rtmsg import rtmsg

from orchestrator.config import Config
from orchestrator.events import RawEvent
from orchestrator.netlink import wire
from orchestrator.netlink.decode import RawDecoder
from orchestrator.state import NetworkState, RouteLookup


def _finish(msg: object, kind: int) -> bytes:
    msg["header"]["type"] = kind  # type: ignore[index]
    msg.encode()  # type: ignore[attr-defined]
    return bytes(msg.data)  # type: ignore[attr-defined]


def link(index: int, name: str, carrier: bool = True, up: bool = True, deleted: bool = False,
         mac: str = "02:00:00:00:00:01", carrier_changes: int = 0, alias: str | None = None) -> bytes:
    m = ifinfmsg()
    m["index"] = index
    m["flags"] = (0x1 if up else 0) | (0x10000 if carrier else 0)
    m["attrs"] = [("IFLA_IFNAME", name), ("IFLA_ADDRESS", mac),
                  ("IFLA_CARRIER_CHANGES", carrier_changes)]
    if alias is not None:
        m["attrs"].append(("IFLA_IFALIAS", alias))
    return _finish(m, wire.RTM_DELLINK if deleted else wire.RTM_NEWLINK)


def address(index: int, cidr: str, deleted: bool = False, tentative: bool = False,
            peer: str | None = None, created: int | None = None) -> bytes:
    """``created``: the kernel's creation stamp (IFA_CACHEINFO cstamp, 1/100 s since boot)."""
    ip, prefix = cidr.split("/")
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    m = ifaddrmsg()
    m["family"] = family
    m["prefixlen"] = int(prefix)
    m["index"] = index
    m["flags"] = wire.IFA_F_TENTATIVE if tentative else 0
    m["scope"] = 253 if ip.startswith("fe80:") else 0  # the kernel scopes link-local addresses
    m["attrs"] = [("IFA_ADDRESS", peer or ip), ("IFA_LOCAL", ip)] if family == socket.AF_INET \
        else [("IFA_ADDRESS", ip)]
    if created is not None:
        forever = wire.INFINITY_LIFE_TIME
        m["attrs"].append(("IFA_CACHEINFO", {"ifa_preferred": forever, "ifa_valid": forever,
                                             "cstamp": created, "tstamp": created}))
    return _finish(m, wire.RTM_DELADDR if deleted else wire.RTM_NEWADDR)


def route(dst: str, oif: int, gateway: str | None = None, table: int = 254, metric: int = 0,
          deleted: bool = False) -> bytes:
    net, length = dst.split("/")
    family = socket.AF_INET6 if ":" in net else socket.AF_INET
    m = rtmsg()
    m["family"] = family
    m["dst_len"] = int(length)
    m["table"] = table if table < 256 else wire.RT_TABLE_COMPAT
    m["type"] = wire.RTN_UNICAST
    attrs: list[tuple[str, object]] = [("RTA_TABLE", table), ("RTA_OIF", oif), ("RTA_PRIORITY", metric)]
    if int(length):
        attrs.append(("RTA_DST", net))
    if gateway:
        attrs.append(("RTA_GATEWAY", gateway))
    m["attrs"] = attrs
    return _finish(m, wire.RTM_DELROUTE if deleted else wire.RTM_NEWROUTE)


# Two uplinks as a first dump shows them: eth0 the active one, eth1 a standby (main table, metric 200).
ETH0, ETH1 = 2, 3
ACTIVE_DEFAULT: tuple[Any, ...] = ("0.0.0.0/0", ETH0, "10.1.0.1")
STANDBY_DEFAULT: tuple[Any, ...] = ("0.0.0.0/0", ETH1, "10.3.0.1", 254, 200)
TWO_UPLINKS = (
    link(ETH0, "eth0"),
    address(ETH0, "10.1.0.100/24"),
    route(*ACTIVE_DEFAULT),
    link(ETH1, "eth1"),
    address(ETH1, "10.3.0.100/24"),
    route(*STANDBY_DEFAULT),
)


def decode(*datagrams: bytes, tables: set[int] | None = None) -> list[RawEvent]:
    decoder = RawDecoder(tables if tables is not None else {wire.RT_TABLE_MAIN})
    events: list[RawEvent] = []
    for data in datagrams:
        view = memoryview(data)
        for kind, offset, length in wire.messages(view, len(data)):
            event = decoder.decode(view, kind, offset, length)
            if event is not None:
                events.append(event)
    return events


def primed_state(
    config: Config, *dump: bytes, reference: str | None = None, lookup: RouteLookup = lambda _dst: None
) -> NetworkState:
    """A state primed on ``dump`` (its first dump: no change) and a kernel that removed nothing
    behind its back (a re-read returns exactly the routes the view has).  By default there is no
    reference: the uplink comes from the main table's default route."""
    state = NetworkState(config, reference, lookup=lookup)
    state._reread = lambda family, table: [
        route for route in state.view.routes.values() if (route.family, route.table) == (family, table)
    ]
    for event in decode(*dump):
        state.apply(event)
    state.prime()
    return state


def feed(state: NetworkState, *datagrams: bytes, now: float = 1.0) -> list[object]:
    """Apply ``datagrams`` to ``state``, then settle it at ``now``: the derived events, in that order."""
    derived: list[object] = []
    for event in decode(*datagrams):
        derived.extend(state.apply(event))
    derived.extend(state.settle(now))
    return derived
