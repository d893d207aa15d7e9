"""rtnetlink messages as the engine's events: the event socket, dumps, and header-first decoding.

Why not decode every message with pyroute2: a message costs ~45-60 us there, which caps ingest near
20 k events/s and loses a 40 k-route storm.  Here the 16-byte header and the fixed family header are
read with ``struct`` first, so an irrelevant route (another table, a cloned entry) costs about a
microsecond; only relevant messages have their attributes walked, and only the attributes the engine
uses are converted.
"""

from __future__ import annotations

import logging
import socket
from typing import NamedTuple

from .events import AddressEvent, LinkEvent, RawEvent, RouteEvent, RuleEvent
from .wire import (
    CACHEINFO,
    FRA_PRIORITY,
    FRA_SRC,
    FRA_TABLE,
    IFA_ADDRESS,
    IFA_CACHEINFO,
    IFA_F_DADFAILED,
    IFA_F_DEPRECATED,
    IFA_F_TENTATIVE,
    IFA_FLAGS,
    IFA_LOCAL,
    IFADDRMSG,
    IFF_LOWER_UP,
    IFF_UP,
    IFINFOMSG,
    IFLA_ADDRESS,
    IFLA_CARRIER_CHANGES,
    IFLA_IFNAME,
    INFINITY_LIFE_TIME,
    NDA_DST,
    NDA_LLADDR,
    NDMSG,
    NETLINK_GET_STRICT_CHK,
    NLM_F_DUMP,
    RTA_DST,
    RTA_GATEWAY,
    RTA_OIF,
    RTA_PREFSRC,
    RTA_PRIORITY,
    RTM_DELADDR,
    RTM_DELLINK,
    RTM_DELROUTE,
    RTM_DELRULE,
    RTM_GETADDR,
    RTM_GETLINK,
    RTM_GETNEIGH,
    RTM_GETROUTE,
    RTM_GETRULE,
    RTM_NEWADDR,
    RTM_NEWLINK,
    RTM_NEWNEIGH,
    RTM_NEWROUTE,
    RTM_NEWRULE,
    RTMSG,
    RTNH_F_ONLINK,
    SO_RCVBUFFORCE,
    SOL_NETLINK,
    NetlinkRequestError,
    attr,
    attributes,
    hwaddr_text,
    ip_text,
    query,
    route_dump_body,
    route_table,
    u32,
)

log = logging.getLogger(__name__)


class NetlinkOverrun(Exception):
    """The kernel dropped notifications (ENOBUFS): the socket's view is no longer complete."""


def decode_link(data: memoryview, offset: int, length: int, kind: int) -> LinkEvent | None:
    family, _type, index, flags, _change = IFINFOMSG.unpack_from(data, offset + 16)
    if family != socket.AF_UNSPEC:  # bridge-port (AF_BRIDGE) views of the same link
        return None
    attrs = attributes(data, offset + 16 + IFINFOMSG.size, offset + length)
    name = attrs.get(IFLA_IFNAME)
    if name is None:
        return None
    return LinkEvent(
        index=index,
        name=bytes(name).rstrip(b"\0").decode("utf-8", "replace"),
        up=bool(flags & IFF_UP),
        carrier=bool(flags & IFF_LOWER_UP),
        carrier_changes=u32(attrs.get(IFLA_CARRIER_CHANGES)),
        hwaddr=hwaddr_text(attrs.get(IFLA_ADDRESS)),
        deleted=kind == RTM_DELLINK,
    )


def decode_address(data: memoryview, offset: int, length: int, kind: int) -> AddressEvent | None:
    family, prefixlen, flags, scope, index = IFADDRMSG.unpack_from(data, offset + 16)
    if family not in (socket.AF_INET, socket.AF_INET6):
        return None
    attrs = attributes(data, offset + 16 + IFADDRMSG.size, offset + length)
    # On point-to-point links IFA_ADDRESS is the peer and IFA_LOCAL is ours.
    raw_local, raw_remote = attrs.get(IFA_LOCAL), attrs.get(IFA_ADDRESS)
    address = ip_text(family, raw_local or raw_remote)
    if address is None:
        return None
    # Compared raw: an ordinary address has both attributes equal and needs one conversion only.
    point_to_point = raw_local is not None and raw_remote is not None and raw_local != raw_remote
    flags = u32(attrs.get(IFA_FLAGS), flags)
    valid: int | None = None
    cacheinfo = attrs.get(IFA_CACHEINFO)
    if cacheinfo is not None:
        _preferred, valid_raw, _c, _t = CACHEINFO.unpack_from(cacheinfo)
        valid = None if valid_raw == INFINITY_LIFE_TIME else valid_raw
    return AddressEvent(
        index=index,
        family=family,
        address=address,
        prefixlen=prefixlen,
        tentative=bool(flags & (IFA_F_TENTATIVE | IFA_F_DADFAILED)),
        deprecated=bool(flags & IFA_F_DEPRECATED),
        valid_lft=valid,
        deleted=kind == RTM_DELADDR,
        scope=scope,
        peer=ip_text(family, raw_remote) if point_to_point else None,
    )


def decode_route(data: memoryview, offset: int, length: int, kind: int, table: int) -> RouteEvent:
    family, dst_len, *_, flags = RTMSG.unpack_from(data, offset + 16)
    attrs = attributes(data, offset + 16 + RTMSG.size, offset + length)
    dst = ip_text(family, attrs.get(RTA_DST)) or ("0.0.0.0" if family == socket.AF_INET else "::")
    oif = attrs.get(RTA_OIF)
    return RouteEvent(
        family=family,
        table=table,
        dst=dst,
        dst_len=dst_len,
        gateway=ip_text(family, attrs.get(RTA_GATEWAY)),
        oif=None if oif is None else u32(oif),
        priority=u32(attrs.get(RTA_PRIORITY)),
        deleted=kind == RTM_DELROUTE,
        onlink=bool(flags & RTNH_F_ONLINK),
    )


def decode_rule(data: memoryview, offset: int, length: int, kind: int) -> RuleEvent:
    family, _dl, src_len, _tos, table = RTMSG.unpack_from(data, offset + 16)[:5]
    attrs = attributes(data, offset + 16 + RTMSG.size, offset + length)
    return RuleEvent(
        family=family,
        priority=u32(attrs.get(FRA_PRIORITY)),
        table=u32(attrs.get(FRA_TABLE), table),
        src=ip_text(family, attrs.get(FRA_SRC)),
        src_len=src_len,
        deleted=kind == RTM_DELRULE,
    )


class RawDecoder:
    """Turns datagrams into raw events, dropping what the engine does not watch before decoding.

    ``tables`` is the set of routing tables whose routes matter (the main table, for now).
    """

    def __init__(self, tables: set[int]) -> None:
        self.tables = tables

    def decode(self, data: memoryview, kind: int, offset: int, length: int) -> RawEvent | None:
        if kind in (RTM_NEWROUTE, RTM_DELROUTE):
            table = route_table(data, offset, length)
            if table is None or table not in self.tables:
                return None
            return decode_route(data, offset, length, kind, table)
        if kind in (RTM_NEWADDR, RTM_DELADDR):
            return decode_address(data, offset, length, kind)
        if kind in (RTM_NEWLINK, RTM_DELLINK):
            return decode_link(data, offset, length, kind)
        if kind in (RTM_NEWRULE, RTM_DELRULE):
            return decode_rule(data, offset, length, kind)
        return None


def open_socket(groups: int, rcvbuf_bytes: int) -> socket.socket:
    """A non-blocking rtnetlink socket bound to ``groups`` with a forced receive buffer.

    SO_RCVBUFFORCE needs CAP_NET_ADMIN; without it the buffer is capped by net.core.rmem_max, which
    is the best an unprivileged monitor can do.
    """
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, 0)
    try:
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, rcvbuf_bytes)
        except PermissionError:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf_bytes)
            granted = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) // 2  # the kernel doubles it
            if granted < rcvbuf_bytes:
                log.warning(
                    "netlink buffer capped at %d KiB by net.core.rmem_max (no CAP_NET_ADMIN)", granted // 1024
                )
        sock.setsockopt(SOL_NETLINK, NETLINK_GET_STRICT_CHK, 1)
        sock.bind((0, groups))
    except BaseException:
        sock.close()
        raise
    return sock


def dump_requests(tables: set[int]) -> list[tuple[int, bytes]]:
    """Dump requests in the order the state needs them: links before what refers to them."""
    requests = [
        (RTM_GETLINK, IFINFOMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0)),
        (RTM_GETADDR, IFADDRMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0)),
        (RTM_GETRULE, RTMSG.pack(socket.AF_INET6, 0, 0, 0, 0, 0, 0, 0, 0)),
    ]
    for family in (socket.AF_INET, socket.AF_INET6):
        for table in sorted(tables):
            requests.append((RTM_GETROUTE, route_dump_body(family, table)))
    return requests


def dump_routes(family: int, table: int) -> list[RouteEvent]:
    """Every unicast route of one family in one table, as the kernel has it now.

    Needed because the kernel deletes routes silently: when an IPv4 address goes, routes through a
    gateway that is no longer on-link vanish with no RTM_DELROUTE.
    """
    decoder = RawDecoder({table})
    found: list[RouteEvent] = []
    for kind, buf, offset, length in query(RTM_GETROUTE, route_dump_body(family, table), NLM_F_DUMP):
        event = decoder.decode(buf, kind, offset, length)
        if isinstance(event, RouteEvent):
            found.append(event)
    return found


class RouteLookup(NamedTuple):
    """The kernel's answer to "how would you reach X": interface, next hop, source address."""

    oif: int
    gateway: str | None
    source: str | None
    onlink: bool = False


def route_get(destination: str) -> RouteLookup | None:
    """The route the kernel itself would use towards an IPv4 destination (``ip route get``)."""
    body = RTMSG.pack(socket.AF_INET, 32, 0, 0, 0, 0, 0, 0, 0) + attr(RTA_DST, socket.inet_aton(destination))
    try:
        answers = query(RTM_GETROUTE, body)
    except NetlinkRequestError:
        return None  # unreachable: no route at all
    for kind, buf, offset, length in answers:
        if kind != RTM_NEWROUTE:
            continue
        attrs = attributes(buf, offset + 16 + RTMSG.size, offset + length)
        oif = attrs.get(RTA_OIF)
        if oif is None:
            return None
        flags = RTMSG.unpack_from(buf, offset + 16)[8]
        return RouteLookup(
            u32(oif),
            ip_text(socket.AF_INET, attrs.get(RTA_GATEWAY)),
            ip_text(socket.AF_INET, attrs.get(RTA_PREFSRC)),
            bool(flags & RTNH_F_ONLINK),
        )
    return None


def neighbour_lladdr(index: int, address: str) -> str | None:
    """The link-layer address the kernel has for an IPv4 neighbour, if it has a valid one."""
    body = NDMSG.pack(socket.AF_INET, index, 0, 0, 0) + attr(NDA_DST, socket.inet_aton(address))
    try:
        answers = query(RTM_GETNEIGH, body)
    except NetlinkRequestError:
        return None
    nud_valid = 0x02 | 0x04 | 0x08 | 0x10 | 0x40 | 0x80  # reachable stale delay probe noarp perm
    for kind, buf, offset, length in answers:
        if kind != RTM_NEWNEIGH:
            continue
        state = NDMSG.unpack_from(buf, offset + 16)[2]
        if state & nud_valid:
            attrs = attributes(buf, offset + 16 + NDMSG.size, offset + length)
            return hwaddr_text(attrs.get(NDA_LLADDR))
    return None
