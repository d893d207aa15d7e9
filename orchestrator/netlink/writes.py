"""Kernel changes as described netlink writes, applied one by one: what a plugin writes, and how a
person reads it (``route add default via 10.3.0.1 dev wlan0 table 1000 metric 0``).

Each write is acknowledged before the next goes, so a refusal stops the run and ``ApplyError`` says
exactly what went through and what did not; reading the kernel again and re-planning converges.
Shared by the routing profiles and the teredo plugin's source routes.  Light imports only, as
``wire``: miredo's client hook runs this in a fresh interpreter.
"""

from __future__ import annotations

import _socket

from . import wire


class Operation:
    """One netlink write, and how to describe it to a person."""

    __slots__ = ("body", "description", "flags", "kind")

    def __init__(self, description: str, kind: int, body: bytes, flags: int) -> None:
        self.description = description
        self.kind = kind
        self.body = body
        self.flags = flags

    def __repr__(self) -> str:
        return self.description


class ApplyError(Exception):
    """An operation failed: ``applied`` went through, ``failed`` did not, ``pending`` never ran."""

    def __init__(self, applied: list[Operation], failed: Operation, error: OSError, pending: list[Operation]):
        self.applied, self.failed, self.error, self.pending = applied, failed, error, pending
        done = "; ".join(map(repr, applied)) or "nothing"
        left = "; ".join(map(repr, pending)) or "nothing"
        super().__init__(
            f"{failed!r} failed: {error.strerror or error}; applied: {done}; not applied: {left}"
        )


def apply(sock: _socket.socket, ops: list[Operation]) -> list[Operation]:
    """Run the operations in order; ApplyError at the first failure.  Returns what was applied."""
    for position, op in enumerate(ops):
        try:
            wire.exchange(sock, op.kind, op.body, op.flags)
        except OSError as error:
            raise ApplyError(ops[:position], op, error, ops[position + 1 :]) from error
    return ops


def rule(
    kind: int, family: int, source: str, length: int, priority: int, table: int, flags: int
) -> Operation:
    """RTM_NEWRULE / RTM_DELRULE of ``from SOURCE/LENGTH lookup TABLE`` at ``priority``."""
    verb = "add" if kind == wire.RTM_NEWRULE else "del"
    return Operation(
        f"rule {verb} from {source}/{length} prio {priority} table {table}",
        kind,
        wire.rule_body(family, source, length, priority, table),
        flags,
    )


def route(
    kind: int,
    family: int,
    dst: str,
    dst_len: int,
    gateway: str | None,
    oif: int,
    device: str,
    table: int,
    metric: int,
    flags: int,
    onlink: bool = False,
) -> Operation:
    """RTM_NEWROUTE / RTM_DELROUTE of one unicast route out of link ``oif`` (named ``device`` in
    the description), via ``gateway`` when given (``onlink``: flagged on-link, for a next hop in
    no prefix of the link).  An added route is marked as ``ip route add`` marks it."""
    protocol = wire.RTPROT_BOOT if kind == wire.RTM_NEWROUTE else 0
    route_flags = wire.RTNH_F_ONLINK if onlink else 0
    body = wire.route_body(family, dst, dst_len, gateway, oif, table, metric, protocol, route_flags)
    verb = "add" if kind == wire.RTM_NEWROUTE else "del"
    name = "default" if dst_len == 0 else f"{dst}/{dst_len}"
    via = f" via {gateway}{' onlink' if onlink else ''}" if gateway else ""
    description = f"route {verb} {name}{via} dev {device} table {table} metric {metric}"
    return Operation(description, kind, body, flags)
