"""Asking the kernel: the event socket, the start-up dump requests, and one-off queries (the routes
of a table, the route towards an address, a neighbour's link-layer address), answered as events.

Kept apart from ``decode`` because these open sockets and wait for the kernel, while decoding is
pure: the state re-reads routes the kernel deletes silently, the uplink tracker asks which route
the kernel would take, the gateway's identity is its neighbour entry.
"""

from __future__ import annotations

import errno
import logging
import socket
from typing import NamedTuple

from ..events import RouteEvent, RuleEvent
from .decode import RawDecoder, decode_rule
from .wire import (
    IFADDRMSG,
    IFINFOMSG,
    NDA_DST,
    NDA_LLADDR,
    NDMSG,
    NETLINK_GET_STRICT_CHK,
    NLM_F_DUMP,
    RTA_DST,
    RTA_GATEWAY,
    RTA_OIF,
    RTA_PREFSRC,
    RTM_GETADDR,
    RTM_GETLINK,
    RTM_GETNEIGH,
    RTM_GETROUTE,
    RTM_GETRULE,
    RTM_NEWNEIGH,
    RTM_NEWROUTE,
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
    u32,
)

log = logging.getLogger(__name__)


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
    """Every unicast route of one family in one table, as the kernel has it now (none: a table
    nobody has written to does not exist).

    Needed because the kernel deletes routes silently: when an IPv4 address goes, routes through a
    gateway that is no longer on-link vanish with no RTM_DELROUTE.
    """
    decoder = RawDecoder({table})
    found: list[RouteEvent] = []
    try:
        answers = query(RTM_GETROUTE, route_dump_body(family, table), NLM_F_DUMP)
    except NetlinkRequestError as error:
        if error.errno == errno.ENOENT:
            return found
        raise
    for kind, buf, offset, length in answers:
        event = decoder.decode(buf, kind, offset, length)
        if isinstance(event, RouteEvent):
            found.append(event)
    return found


def dump_rules(family: int) -> list[RuleEvent]:
    """Every policy rule of one family, as the kernel has it now."""
    body = RTMSG.pack(family, 0, 0, 0, 0, 0, 0, 0, 0)
    return [
        decode_rule(buf, offset, length, kind)
        for kind, buf, offset, length in query(RTM_GETRULE, body, NLM_F_DUMP)
    ]


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
