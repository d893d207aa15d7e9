"""Reach an end state by difference: read the interface from the kernel, change only what differs.

Nothing here removes what it would add back: an address, route or rule that is already as wanted
is left alone, so a re-applied profile causes no netlink write at all.  The operations go one by one,
each acknowledged, so a failure stops the run and says exactly what was and was not applied;
applying again converges.  Light imports only (the client hook runs this in a fresh interpreter).
"""

from __future__ import annotations

import _socket
import errno

from orchestrator import wire, writes

from .endstate import EndState
from .profile import Profile, is_link_local

AF_INET6 = _socket.AF_INET6
FRA_SUPPRESS_IFGROUP, FRA_SUPPRESS_PREFIXLEN, FRA_PROTOCOL = 13, 14, 21
UNSET = 0xFFFFFFFF  # how the kernel reports a suppress_* selector nobody set
IFLA_MTU = 4
DIRECT = ""  # the gateway of a route straight into the interface (sorts with the addresses)


class InterfaceMissing(LookupError):
    """The interface named by the hook does not exist."""


class Current:
    """The interface as the kernel has it now (the same shape as ``EndState``, plus the index)."""

    __slots__ = (
        "addresses",
        "alias",
        "foreign_rules",
        "index",
        "link_up",
        "mtu",
        "routes",
        "rules",
        "table_routes",
    )

    def __init__(self, index: int, link_up: bool, mtu: int) -> None:
        self.index = index
        self.link_up = link_up
        self.mtu = mtu
        self.addresses: set[tuple[str, int]] = set()
        self.alias = ""  # IFLA_IFALIAS: the last run's end marker, when a hook run left it
        # (dst, dst_len, metric, gateway or DIRECT), not counting the kernel's prefix routes
        self.routes: set[tuple[str, int, int, str]] = set()
        self.table_routes: set[tuple[str, int, int, str, int]] = set()  # with the outgoing interface
        self.rules: set[tuple[str, int]] = set()  # ``from SOURCE lookup TABLE``, nothing more
        self.foreign_rules: list[bytes] = []  # any other rule at the priority into the table, as dumped


def _ip(text: str) -> bytes:
    return _socket.inet_pton(AF_INET6, text)


def read(sock: _socket.socket, interface: str, profile: Profile) -> Current:
    """The interface's link state, MTU, IPv6 addresses, its main-table IPv6 routes, and (when the
    profile has a table) that table's routes and the rules at the profile's priority into it."""
    try:
        links = wire.exchange(
            sock,
            wire.RTM_GETLINK,
            wire.IFINFOMSG.pack(0, 0, 0, 0, 0) + wire.attr(wire.IFLA_IFNAME, interface.encode() + b"\0"),
        )
    except wire.NetlinkRequestError as error:
        if error.errno != errno.ENODEV:
            raise
        raise InterfaceMissing(interface) from error
    _kind, buf, offset, length = links[0]
    _family, _type, index, flags, _change = wire.IFINFOMSG.unpack_from(buf, offset + 16)
    attrs = wire.attributes(buf, offset + 16 + wire.IFINFOMSG.size, offset + length)
    current = Current(index, bool(flags & wire.IFF_UP), wire.u32(attrs.get(IFLA_MTU)))
    current.alias = wire.text(attrs.get(wire.IFLA_IFALIAS)) or ""

    for _kind, buf, offset, length in wire.exchange(
        sock, wire.RTM_GETADDR, wire.IFADDRMSG.pack(AF_INET6, 0, 0, 0, index), wire.NLM_F_DUMP
    ):
        _f, prefixlen, _fl, _scope, owner = wire.IFADDRMSG.unpack_from(buf, offset + 16)
        attrs = wire.attributes(buf, offset + 16 + wire.IFADDRMSG.size, offset + length)
        # On a point-to-point address IFA_LOCAL is ours and IFA_ADDRESS the peer's.
        address = wire.ip_text(AF_INET6, attrs.get(wire.IFA_LOCAL) or attrs.get(wire.IFA_ADDRESS))
        if owner == index and address is not None:
            current.addresses.add((address, prefixlen))

    for dst, dst_len, metric, gateway, oif, protocol in _routes(sock, wire.RT_TABLE_MAIN):
        # The kernel's routes follow the addresses.  A followed tunnel's other routes (a PPP link's
        # router advertisements) are its own plugin's: only the ones a profile writes are the profile's.
        ours = protocol == wire.RTPROT_BOOT if profile.follow_address else protocol != wire.RTPROT_KERNEL
        if oif == index and ours:
            current.routes.add((dst, dst_len, metric, gateway))
    if profile.table is not None:
        for dst, dst_len, metric, gateway, oif, _protocol in _routes(sock, profile.table):
            current.table_routes.add((dst, dst_len, metric, gateway, oif))
        current.rules, current.foreign_rules = _rules(sock, profile)
    return current


def _routes(sock: _socket.socket, table: int) -> list[tuple[str, int, int, str, int, int]]:
    """(dst, dst_len, metric, gateway or DIRECT, oif, protocol) of the table's unicast IPv6 routes."""
    found: list[tuple[str, int, int, str, int, int]] = []
    try:
        answers = wire.exchange(
            sock, wire.RTM_GETROUTE, wire.route_dump_body(AF_INET6, table), wire.NLM_F_DUMP
        )
    except wire.NetlinkRequestError as error:
        if error.errno == errno.ENOENT:  # a table with no route does not exist yet
            return found
        raise
    for _kind, buf, offset, length in answers:
        if wire.route_table(buf, offset, length) != table:
            continue
        _family, dst_len, _s, _t, _tb, protocol = wire.RTMSG.unpack_from(buf, offset + 16)[:6]
        attrs = wire.attributes(buf, offset + 16 + wire.RTMSG.size, offset + length)
        dst = wire.ip_text(AF_INET6, attrs.get(wire.RTA_DST)) or "::"
        metric, oif = wire.u32(attrs.get(wire.RTA_PRIORITY)), wire.u32(attrs.get(wire.RTA_OIF))
        gateway = wire.ip_text(AF_INET6, attrs.get(wire.RTA_GATEWAY)) or DIRECT
        found.append((dst, dst_len, metric, gateway, oif, protocol))
    return found


def _rules(sock: _socket.socket, profile: Profile) -> tuple[set[tuple[str, int]], list[bytes]]:
    """The rules at the profile's priority into its table, all of them the profile's: the plain
    ``from SOURCE lookup TABLE`` ones as (source, prefix length), any other (``from all``, ``not``,
    a destination, a mark, an interface, a port...) as its dumped message, which deletes exactly
    that rule."""
    plain, foreign = set(), []
    body = wire.RTMSG.pack(AF_INET6, 0, 0, 0, 0, 0, 0, 0, 0)
    for _kind, buf, offset, length in wire.exchange(sock, wire.RTM_GETRULE, body, wire.NLM_F_DUMP):
        header = wire.RTMSG.unpack_from(buf, offset + 16)
        dst_len, src_len, tos, table_byte, action, flags = header[1:5] + header[7:9]
        attrs = wire.attributes(buf, offset + 16 + wire.RTMSG.size, offset + length)
        if wire.u32(attrs.get(wire.FRA_PRIORITY)) != profile.rule_priority or action != wire.FR_ACT_TO_TBL:
            continue
        if wire.u32(attrs.get(wire.FRA_TABLE), table_byte) != profile.table:
            continue
        source = wire.ip_text(AF_INET6, attrs.get(wire.FRA_SRC))
        if source is None or dst_len or tos or flags or not _only_source(attrs):
            foreign.append(bytes(buf[offset + 16 : offset + length]))
        else:
            plain.add((source, src_len))
    return plain, foreign


def _only_source(attrs: dict[int, memoryview]) -> bool:
    """Whether a rule selects by its source alone (as ``ip rule`` prints ``from SOURCE lookup N``)."""
    for kind, value in attrs.items():
        if kind in (FRA_SUPPRESS_IFGROUP, FRA_SUPPRESS_PREFIXLEN) and wire.u32(value) == UNSET:
            continue
        if kind not in (wire.FRA_SRC, wire.FRA_PRIORITY, wire.FRA_TABLE, FRA_PROTOCOL):
            return False
    return True


def plan(current: Current, end: EndState, profile: Profile, interface: str) -> list[writes.Operation]:
    """The writes that turn ``current`` into ``end``: removals first, link state and MTU, then
    additions (an IPv6 route needs its link up).  A route through another gateway than the end
    state's is a different route: it is removed and the wanted one added.  Routes the end state
    leaves alone (None: ``destroy``, whose link goes with its routes) are neither."""
    index = current.index
    routes = set(current.routes) if end.routes is None else _via(end.routes, end.gateway)
    present = {route[:4] for route in current.table_routes if route[4] == index}  # through the tunnel
    table_routes = present if end.table_routes is None else _via(end.table_routes, end.gateway)
    ops: list[writes.Operation] = []
    if profile.table is not None:
        table = profile.table
        for source, prefixlen in sorted(current.rules - end.rules):
            ops.append(_rule(wire.RTM_DELRULE, source, prefixlen, profile, wire.NLM_F_ACK))
        for body in current.foreign_rules:
            description = f"rule del (another rule at prio {profile.rule_priority} into table {table})"
            ops.append(writes.Operation(description, wire.RTM_DELRULE, body, wire.NLM_F_ACK))
        wanted = current.table_routes if end.table_routes is None else {(*r, index) for r in table_routes}
        for dst, dst_len, metric, via, oif in sorted(current.table_routes - wanted):
            device = interface if oif == index else f"index {oif}"
            ops.append(
                _route(wire.RTM_DELROUTE, dst, dst_len, metric, via, oif, table, wire.NLM_F_ACK, device)
            )
    for dst, dst_len, metric, via in sorted(current.routes - routes):
        ops.append(
            _route(
                wire.RTM_DELROUTE, dst, dst_len, metric, via, index, wire.RT_TABLE_MAIN, wire.NLM_F_ACK,
                interface,
            )
        )
    wanted_addresses = current.addresses if end.addresses is None else end.addresses  # None: leave them
    stale = {entry for entry in current.addresses - wanted_addresses if not _left_alone(entry, end)}
    for address, prefixlen in sorted(stale):
        ops.append(_address(wire.RTM_DELADDR, address, prefixlen, index, wire.NLM_F_ACK, interface))
    if end.link_up is not None and end.link_up != current.link_up:
        ops.append(_link(index, interface, up=end.link_up, mtu=None))
    if end.mtu is not None and end.mtu != current.mtu:
        ops.append(_link(index, interface, up=None, mtu=end.mtu))
    for address, prefixlen in sorted(wanted_addresses - current.addresses):
        ops.append(_address(wire.RTM_NEWADDR, address, prefixlen, index, wire.CREATE_NEW, interface))
    for dst, dst_len, metric, via in sorted(routes - current.routes):
        ops.append(
            _route(
                wire.RTM_NEWROUTE, dst, dst_len, metric, via, index, wire.RT_TABLE_MAIN, wire.CREATE_NEW,
                interface,
            )
        )
    if profile.table is not None:
        for dst, dst_len, metric, via in sorted(table_routes - present):
            ops.append(
                _route(
                    wire.RTM_NEWROUTE, dst, dst_len, metric, via, index, profile.table, wire.CREATE_NEW,
                    interface,
                )
            )
        for source, prefixlen in sorted(end.rules - current.rules):
            ops.append(_rule(wire.RTM_NEWRULE, source, prefixlen, profile, wire.CREATE_NEW))
    return ops


def _left_alone(entry: tuple[str, int], end: EndState) -> bool:
    """On ``up``, a link-local address other than the step's (the kernel's own, made when the link
    came up) is not the profile's; ``down`` and ``destroy`` flush every address."""
    address = entry[0]
    if not end.link_up or end.addresses is None or not is_link_local(_ip(address)):
        return False
    return all(address != wanted for wanted, _length in end.addresses)


def _via(routes: frozenset[tuple[str, int, int]], gateway: str | None) -> set[tuple[str, int, int, str]]:
    """An end state's routes in the shape ``read`` reports them, with their gateway."""
    return {(dst, dst_len, metric, gateway or DIRECT) for dst, dst_len, metric in routes}


def _address(
    kind: int, address: str, prefixlen: int, index: int, flags: int, interface: str
) -> writes.Operation:
    body = wire.ipv6_address_body(address, prefixlen, index)
    verb = "add" if kind == wire.RTM_NEWADDR else "del"
    return writes.Operation(f"address {verb} {address}/{prefixlen} dev {interface}", kind, body, flags)


def _route(
    kind: int,
    dst: str,
    dst_len: int,
    metric: int,
    gateway: str,
    oif: int,
    table: int,
    flags: int,
    interface: str,
) -> writes.Operation:
    """A route straight into the interface, or via ``gateway`` flagged on-link: the next hop of a
    tunnel (6to4's ``::192.88.99.1``) is in no prefix of the interface, and needs none."""
    return writes.route(
        kind, AF_INET6, dst, dst_len, gateway, oif, interface, table, metric, flags, onlink=bool(gateway)
    )


def _rule(kind: int, source: str, prefixlen: int, profile: Profile, flags: int) -> writes.Operation:
    assert profile.table is not None
    return writes.rule(kind, AF_INET6, source, prefixlen, profile.rule_priority, profile.table, flags)


def _alias(index: int, interface: str, text: str) -> writes.Operation:
    body = wire.IFINFOMSG.pack(0, 0, index, 0, 0) + wire.attr(wire.IFLA_IFALIAS, text.encode())
    description = f"link set dev {interface} alias {text!r}"
    return writes.Operation(description, wire.RTM_NEWLINK, body, wire.NLM_F_ACK)


def _link(index: int, interface: str, up: bool | None, mtu: int | None) -> writes.Operation:
    change = wire.IFF_UP if up is not None else 0
    body = wire.IFINFOMSG.pack(0, 0, index, wire.IFF_UP if up else 0, change)
    if mtu is not None:
        body += wire.attr(IFLA_MTU, wire.U32.pack(mtu))
        return writes.Operation(f"link set dev {interface} mtu {mtu}", wire.RTM_NEWLINK, body, wire.NLM_F_ACK)
    return writes.Operation(
        f"link set dev {interface} {'up' if up else 'down'}", wire.RTM_NEWLINK, body, wire.NLM_F_ACK
    )


RACES = (errno.EEXIST, errno.ESRCH, errno.ENOENT, errno.EADDRNOTAVAIL)
ATTEMPTS = 3


def withdraw_rules(profile: Profile, source: str) -> list[writes.Operation]:
    """Remove the profile's ``from SOURCE`` rule after its interface has gone: a rule names no
    device, so it outlives the tunnel (a PPP unit vanishes when pppd hangs up)."""
    if profile.table is None:
        return []
    sock = wire.request_socket()
    try:
        plain, _others = _rules(sock, profile)
        present = sorted(rule for rule in plain if rule[0] == source)
        ops = [_rule(wire.RTM_DELRULE, *rule, profile, wire.NLM_F_ACK) for rule in present]
        return writes.apply(sock, ops)
    finally:
        sock.close()


def converge(
    interface: str, profile: Profile, end: EndState, markers: tuple[str, str, str] | None = None
) -> list[writes.Operation]:
    """Read, plan and apply on a fresh socket; returns the operations applied (none: already there).

    ``markers``, for a client hook's run: the aliases written before the first change, after the
    last and, when the kernel refused one, instead (see ``markers``), so the daemon can tell the
    run's changes from anyone else's.  A tunnel already as wanted but not marked so gets its mark.

    Someone else may change the interface between the read and a write (the daemon restoring a
    route while miredo's hook runs): an operation refused because its object already exists or is
    already gone is a stale plan, not a failure, so the kernel is read again and the rest re-planned.
    """
    sock = wire.request_socket()
    applied: list[writes.Operation] = []
    try:
        for attempt in range(ATTEMPTS):
            current = read(sock, interface, profile)
            ops = plan(current, end, profile, interface)
            if markers is not None:
                begin, done, _failed = (_alias(current.index, interface, text) for text in markers)
                ops = [begin, *ops, done] if ops else [done] if current.alias != markers[1] else []
            try:
                return applied + writes.apply(sock, ops)
            except writes.ApplyError as error:
                applied += error.applied
                if error.error.errno not in RACES or attempt == ATTEMPTS - 1:
                    if markers is not None:
                        _mark_failed(sock, current.index, interface, markers[2])
                    raise writes.ApplyError(applied, error.failed, error.error, error.pending) from error
        return applied
    finally:
        sock.close()


def _mark_failed(sock: _socket.socket, index: int, interface: str, text: str) -> None:
    """Say the run failed (best effort: the failure itself is what the caller reports)."""
    try:  # noqa: SIM105 - contextlib costs start-up time in the full hook
        writes.apply(sock, [_alias(index, interface, text)])
    except writes.ApplyError:
        pass
