"""The rtnetlink wire format, and nothing else: constants, layouts, requests, attribute walking.

Kept free of heavy imports (no socket.py, dataclasses, typing or logging) because miredo's client
hook imports it in a fresh ``python -I -S`` on every tunnel change, where every millisecond of start-up
is on the path of a handover.  ``_socket`` is the C module under ``socket``.
"""

from __future__ import annotations

import _socket
import errno
import itertools
import struct

TYPE_CHECKING = False  # typing itself costs ~25 ms of start-up; mypy reads this name as true
if TYPE_CHECKING:
    from collections.abc import Iterator

# Message types (linux/rtnetlink.h, linux/netlink.h).
NLMSG_NOOP, NLMSG_ERROR, NLMSG_DONE, NLMSG_OVERRUN = 1, 2, 3, 4
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK = 16, 17, 18
RTM_NEWADDR, RTM_DELADDR, RTM_GETADDR = 20, 21, 22
RTM_NEWROUTE, RTM_DELROUTE, RTM_GETROUTE = 24, 25, 26
RTM_NEWNEIGH, RTM_GETNEIGH = 28, 30
RTM_NEWRULE, RTM_DELRULE, RTM_GETRULE = 32, 33, 34

NLM_F_REQUEST, NLM_F_MULTI, NLM_F_ACK, NLM_F_DUMP = 0x1, 0x2, 0x4, 0x300
NLM_F_EXCL, NLM_F_CREATE = 0x200, 0x400
CREATE_NEW = NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL  # add what is not there, acknowledged
SOL_NETLINK = 270
NETLINK_GET_STRICT_CHK = 12
SO_RCVBUFFORCE = 33

# Multicast groups, as the legacy bitmask bind() takes (group n is bit n-1).
RTMGRP_LINK = 0x1
RTMGRP_IPV4_IFADDR = 0x10
RTMGRP_IPV4_ROUTE = 0x40
RTMGRP_IPV6_IFADDR = 0x100
RTMGRP_IPV6_ROUTE = 0x400
RTNLGRP_IPV6_RULE = 19
WATCHED_GROUPS = (
    RTMGRP_LINK
    | RTMGRP_IPV4_IFADDR
    | RTMGRP_IPV4_ROUTE
    | RTMGRP_IPV6_IFADDR
    | RTMGRP_IPV6_ROUTE
    | (1 << (RTNLGRP_IPV6_RULE - 1))
)

RT_TABLE_MAIN = 254
RT_TABLE_COMPAT = 252
RTM_F_CLONED = 0x200
RTN_UNICAST = 1
RTPROT_KERNEL, RTPROT_BOOT = 2, 3  # routes the kernel made, routes ``ip route add`` makes
RT_SCOPE_UNIVERSE = 0
FR_ACT_TO_TBL = 1
RTNH_F_ONLINK = 0x4
IFF_UP = 0x1
IFF_LOWER_UP = 0x10000
IFA_F_DADFAILED, IFA_F_DEPRECATED, IFA_F_TENTATIVE = 0x08, 0x20, 0x40
INFINITY_LIFE_TIME = 0xFFFFFFFF

IFLA_ADDRESS, IFLA_IFNAME, IFLA_IFALIAS, IFLA_CARRIER_CHANGES = 1, 3, 20, 35
IFA_ADDRESS, IFA_LOCAL, IFA_CACHEINFO, IFA_FLAGS = 1, 2, 6, 8
RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_PRIORITY, RTA_PREFSRC, RTA_TABLE = 1, 4, 5, 6, 7, 15
FRA_SRC, FRA_PRIORITY, FRA_TABLE = 2, 6, 15
NDA_DST, NDA_LLADDR = 1, 2

NLMSGHDR = struct.Struct("=IHHII")
IFINFOMSG = struct.Struct("=BxHiII")  # family, type, index, flags, change
IFADDRMSG = struct.Struct("=BBBBi")  # family, prefixlen, flags, scope, index
RTMSG = struct.Struct("=BBBBBBBBI")  # family, dst_len, src_len, tos, table, proto, scope, type, flags
NDMSG = struct.Struct("=BxxxiHBB")  # family, ifindex, state, flags, type
RTATTR = struct.Struct("=HH")
U32 = struct.Struct("=I")
CACHEINFO = struct.Struct("=IIII")  # preferred, valid, cstamp, tstamp

_sequence = itertools.count(1)


class NetlinkRequestError(OSError):
    """The kernel answered a request with an error."""


def align(n: int) -> int:
    return (n + 3) & ~3


def attributes(data: bytes | memoryview, offset: int, end: int) -> dict[int, memoryview]:
    """Walk rtattr TLVs between offset and end; nested-flag bits are masked off the type."""
    view = memoryview(data)
    found: dict[int, memoryview] = {}
    while offset + 4 <= end:
        length, kind = RTATTR.unpack_from(view, offset)
        if length < 4:
            break
        found[kind & 0x3FFF] = view[offset + 4 : offset + length]
        offset += align(length)
    return found


def ip_text(family: int, raw: memoryview | None) -> str | None:
    if raw is None:
        return None
    return _socket.inet_ntop(family, bytes(raw))


def text(raw: memoryview | None) -> str | None:
    """A NUL-terminated string attribute (an interface's name or alias); an empty one is none."""
    value = bytes(raw).rstrip(b"\0").decode("utf-8", "replace") if raw is not None else ""
    return value or None


def u32(raw: memoryview | None, default: int = 0) -> int:
    return default if raw is None else int(U32.unpack_from(raw)[0])


def hwaddr_text(raw: memoryview | None) -> str | None:
    if raw is None or len(raw) == 0:
        return None
    return ":".join(f"{b:02x}" for b in bytes(raw))


def messages(data: bytes | bytearray | memoryview, size: int) -> Iterator[tuple[int, int, int]]:
    """Yield (type, offset, length) of each netlink message in one datagram."""
    offset = 0
    while offset + 16 <= size:
        length, kind = NLMSGHDR.unpack_from(data, offset)[:2]
        if length < 16 or offset + length > size:
            return
        yield kind, offset, length
        offset += align(length)


def sequence_of(data: bytes | bytearray | memoryview, offset: int) -> int:
    return int(NLMSGHDR.unpack_from(data, offset)[3])


def check_error(data: memoryview, offset: int) -> None:
    """Raise for an NLMSG_ERROR carrying a non-zero errno (zero is an acknowledgement)."""
    code = struct.unpack_from("=i", data, offset + 16)[0]
    if code:
        raise NetlinkRequestError(-code, errno.errorcode.get(-code, str(-code)))


def build_request(kind: int, flags: int, body: bytes) -> tuple[int, bytes]:
    seq = next(_sequence)
    return seq, NLMSGHDR.pack(16 + len(body), kind, flags | NLM_F_REQUEST, seq, 0) + body


def attr(kind: int, payload: bytes) -> bytes:
    data = RTATTR.pack(4 + len(payload), kind) + payload
    return data + b"\0" * (align(len(data)) - len(data))


def query(request_kind: int, body: bytes, flags: int = 0) -> list[tuple[int, memoryview, int, int]]:
    """Send one request on a short-lived socket and return its answer messages.

    A separate socket keeps answers out of the event stream.  The kernel answers synchronously, so
    this costs a few tens of microseconds and never waits on the network.
    """
    sock = request_socket()
    try:
        return exchange(sock, request_kind, body, flags)
    finally:
        sock.close()


def request_socket() -> _socket.socket:
    """An rtnetlink socket for requests, with strict checking (the kernel filters dumps)."""
    sock = _socket.socket(_socket.AF_NETLINK, _socket.SOCK_RAW | _socket.SOCK_CLOEXEC, 0)
    sock.setsockopt(SOL_NETLINK, NETLINK_GET_STRICT_CHK, 1)
    sock.bind((0, 0))
    return sock


def exchange(
    sock: _socket.socket, request_kind: int, body: bytes, flags: int = 0
) -> list[tuple[int, memoryview, int, int]]:
    """Send one request and collect its answer: a dump's messages, an object, or an ACK (with
    NLM_F_ACK).  An error answer raises NetlinkRequestError."""
    seq, data = build_request(request_kind, flags, body)
    sock.send(data)
    answers: list[tuple[int, memoryview, int, int]] = []
    while True:
        buf = memoryview(sock.recv(1 << 16))
        for kind, offset, length in messages(buf, len(buf)):
            if sequence_of(buf, offset) != seq:
                continue
            if kind == NLMSG_ERROR:
                check_error(buf, offset)
                return answers
            if kind == NLMSG_DONE:
                return answers
            answers.append((kind, buf, offset, length))
        if not flags & (NLM_F_DUMP | NLM_F_ACK):
            return answers


def ipv6_address_body(address: str, prefixlen: int, index: int) -> bytes:
    """The body of an RTM_NEWADDR / RTM_DELADDR for one IPv6 address, named by value."""
    raw = _socket.inet_pton(_socket.AF_INET6, address)
    body = IFADDRMSG.pack(_socket.AF_INET6, prefixlen, 0, 0, index)
    return body + attr(IFA_LOCAL, raw) + attr(IFA_ADDRESS, raw)


def rule_body(family: int, source: str, src_len: int, priority: int, table: int) -> bytes:
    """The body of an RTM_NEWRULE / RTM_DELRULE for ``from SOURCE/SRC_LEN lookup TABLE`` at
    ``priority``, and nothing else (a table above 255 goes in FRA_TABLE only)."""
    header_table = table if table < 256 else RT_TABLE_COMPAT
    body = RTMSG.pack(family, 0, src_len, 0, header_table, 0, 0, FR_ACT_TO_TBL, 0)
    body += attr(FRA_SRC, _socket.inet_pton(family, source)) + attr(FRA_PRIORITY, U32.pack(priority))
    return body + attr(FRA_TABLE, U32.pack(table))


def route_body(
    family: int,
    dst: str,
    dst_len: int,
    gateway: str | None,
    oif: int,
    table: int,
    metric: int,
    protocol: int = 0,
    flags: int = 0,
) -> bytes:
    """The body of an RTM_NEWROUTE / RTM_DELROUTE for one unicast route of universe scope."""
    header_table = table if table < 256 else RT_TABLE_COMPAT
    body = RTMSG.pack(family, dst_len, 0, 0, header_table, protocol, RT_SCOPE_UNIVERSE, RTN_UNICAST, flags)
    if dst_len:
        body += attr(RTA_DST, _socket.inet_pton(family, dst))
    if gateway:
        body += attr(RTA_GATEWAY, _socket.inet_pton(family, gateway))
    body += attr(RTA_OIF, U32.pack(oif)) + attr(RTA_PRIORITY, U32.pack(metric))
    return body + attr(RTA_TABLE, U32.pack(table))


def route_dump_body(family: int, table: int) -> bytes:
    """Strict checking lets the kernel filter a route dump by table: a storm of routes in a table
    nobody watches then costs nothing to re-dump."""
    return RTMSG.pack(family, 0, 0, 0, 0, 0, 0, 0, 0) + attr(RTA_TABLE, U32.pack(table))


def route_table(data: memoryview, offset: int, length: int) -> int | None:
    """The table of a route message, or None when it is not a route worth decoding at all.

    Reads only the fixed header unless the table id does not fit its byte (RT_TABLE_COMPAT).
    """
    _family, _dl, _sl, _tos, table, _proto, _scope, rtype, flags = RTMSG.unpack_from(data, offset + 16)
    if rtype != RTN_UNICAST or flags & RTM_F_CLONED:
        return None
    if table == RT_TABLE_COMPAT:
        attrs = attributes(data, offset + 16 + RTMSG.size, offset + length)
        return u32(attrs.get(RTA_TABLE), table)
    return int(table)
