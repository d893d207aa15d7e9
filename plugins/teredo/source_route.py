"""The source routing that makes a standby miredo's packets leave by its own uplink.

A standby miredo binds its socket to its uplink's IPv4 address (``BindAddress``), but binding picks
the source address, not the route: without a rule its packets take the main table's default route
through the active uplink and its NAT, and it would qualify (and die) with the active uplink.  A
rule ``from ADDRESS lookup TABLE`` at ``priority`` and a route ``default via GATEWAY dev UPLINK`` in
that table send them out of their own uplink.

One owner for each kernel object: the instance owns every IPv4 rule at its priority into its table
and every IPv4 route of that table.  What differs from the wanted set is deleted, what is missing
is added, and nothing is written when the kernel is already as wanted.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

from orchestrator import Uplink, queries, wire, writes

Rule = tuple[str, int]  # (source, prefix length)
Route = tuple[str, int, "str | None", int, int]  # (destination, length, gateway, output index, metric)


@dataclass(frozen=True)
class SourceRoute:
    table: int
    priority: int

    def converge(self, uplink: Uplink, oif: int) -> list[writes.Operation]:
        """Make the kernel hold exactly this instance's rule and route for ``uplink`` (whose link
        has index ``oif``); returns what was written.  ``OSError`` when the kernel cannot be read,
        ``writes.ApplyError`` when it refuses a change (the caller reports either; converging again
        carries on from what was applied)."""
        rules: set[Rule] = {
            (rule.src, rule.src_len)
            for rule in queries.dump_rules(socket.AF_INET)
            if rule.priority == self.priority and rule.table == self.table and rule.src is not None
        }
        routes: set[Route] = {
            (route.dst, route.dst_len, route.gateway, route.oif or 0, route.priority)
            for route in queries.dump_routes(socket.AF_INET, self.table)
        }
        rule: Rule = (str(uplink.ip), 32)
        route: Route = ("0.0.0.0", 0, uplink.gateway, oif, 0)
        ops = [self._rule(wire.RTM_DELRULE, *stale, wire.NLM_F_ACK) for stale in sorted(rules - {rule})]

        def out_of(index: int) -> str:  # a stale route out of another link is named by its index
            return uplink.interface if index == oif else f"index {index}"

        ops += [
            self._route(wire.RTM_DELROUTE, stale, out_of(stale[3]), wire.NLM_F_ACK)
            for stale in sorted(routes - {route}, key=str)
        ]
        if route not in routes:
            ops.append(self._route(wire.RTM_NEWROUTE, route, uplink.interface, wire.CREATE_NEW))
        if rule not in rules:
            ops.append(self._rule(wire.RTM_NEWRULE, *rule, wire.CREATE_NEW))
        sock = wire.request_socket()
        try:
            return writes.apply(sock, ops)
        finally:
            sock.close()

    def _rule(self, kind: int, source: str, length: int, flags: int) -> writes.Operation:
        return writes.rule(kind, socket.AF_INET, source, length, self.priority, self.table, flags)

    def _route(self, kind: int, route: Route, device: str, flags: int) -> writes.Operation:
        dst, dst_len, gateway, oif, metric = route
        return writes.route(
            kind, socket.AF_INET, dst, dst_len, gateway, oif, device, self.table, metric, flags
        )
