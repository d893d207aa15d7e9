"""KernelView: the engine's copy of the kernel objects it watches, and the difference between two.

The view is what lets an overrun be repaired: after ENOBUFS a fresh dump builds a second view, and
``diff`` yields the raw events that turn the old one into it — the changes that were lost.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable, Iterator
from dataclasses import replace
from typing import Any

from .events import AddressEvent, LinkEvent, RawEvent, RouteEvent, RuleEvent


class KernelView:
    """Links by index, addresses, routes (watched tables only) and IPv6 rules, as last reported."""

    def __init__(self) -> None:
        self.links: dict[int, LinkEvent] = {}
        self.addresses: dict[tuple[int, str, int], AddressEvent] = {}
        self.routes: dict[tuple[int, int, str, int, int, int | None], RouteEvent] = {}
        self.rules: dict[tuple[int, int, int, str | None, int], RuleEvent] = {}

    def apply(self, event: RawEvent) -> None:
        """Record one raw event.  Deleting a link drops what hung off it, as the kernel does."""
        if isinstance(event, LinkEvent):
            if event.deleted:
                self.links.pop(event.index, None)
                self._forget_index(event.index)
            else:
                self.links[event.index] = event
        elif isinstance(event, AddressEvent):
            self._put(self.addresses, event.key, event, event.deleted)
        elif isinstance(event, RouteEvent):
            self._put(self.routes, event.key, event, event.deleted)
        else:
            self._put(self.rules, event.key, event, event.deleted)

    @staticmethod
    def _put(table: dict[Any, Any], key: Any, event: Any, deleted: bool) -> None:
        if deleted:
            table.pop(key, None)
        else:
            table[key] = event

    def _forget_index(self, index: int) -> None:
        for address_key in [k for k in self.addresses if k[0] == index]:
            del self.addresses[address_key]
        for route_key in [k for k, r in self.routes.items() if r.oif == index]:
            del self.routes[route_key]

    def link_named(self, name: str) -> LinkEvent | None:
        for link in self.links.values():
            if link.name == name:
                return link
        return None

    def name_of(self, index: int | None) -> str | None:
        link = self.links.get(index) if index is not None else None
        return link.name if link else None

    def addresses_of(self, index: int, family: int) -> Iterator[AddressEvent]:
        return (a for a in self.addresses.values() if a.index == index and a.family == family)

    def diff(self, target: KernelView) -> list[RawEvent]:
        """Raw events that turn this view into ``target``: deletions first, then additions.

        Links are added before and deleted after what refers to them, so a consumer applying the
        list in order never sees an address on a link it does not know.
        """
        added_links = _changed(self.links, target.links)
        gone_links = _gone(self.links, target.links)
        events: list[RawEvent] = []
        for table, other in (
            (self.rules, target.rules),
            (self.routes, target.routes),
            (self.addresses, target.addresses),
        ):
            events.extend(_gone(table, other))
        events.extend(gone_links)
        events.extend(added_links)
        for table, other in (
            (self.addresses, target.addresses),
            (self.routes, target.routes),
            (self.rules, target.rules),
        ):
            events.extend(_changed(table, other))
        return events

    def snapshot(self) -> dict[str, list[str]]:
        """A stable, human-readable picture, comparable with ``ip`` output in tests and status."""
        return {
            "links": sorted(
                f"{link.name} index={link.index} up={int(link.up)} carrier={int(link.carrier)}"
                for link in self.links.values()
            ),
            "addresses": sorted(f"{self.name_of(a.index)} {a.cidr}" for a in self.addresses.values()),
            "routes": sorted(describe_route(r, self.name_of(r.oif)) for r in self.routes.values()),
            "rules": sorted(describe_rule(r) for r in self.rules.values()),
        }


def describe_route(route: RouteEvent, ifname: str | None) -> str:
    family = "inet" if route.family == socket.AF_INET else "inet6"
    via = f" via {route.gateway}" if route.gateway else ""
    return (
        f"{family} table {route.table} {route.dst}/{route.dst_len}{via} dev {ifname} metric {route.priority}"
    )


def describe_rule(rule: RuleEvent) -> str:
    source = f"{rule.src}/{rule.src_len}" if rule.src else "all"
    return f"prio {rule.priority} from {source} table {rule.table}"


def _gone(old: dict[Any, Any], new: dict[Any, Any]) -> Iterable[Any]:
    return [replace(value, deleted=True) for key, value in old.items() if key not in new]


def _changed(old: dict[Any, Any], new: dict[Any, Any]) -> Iterable[Any]:
    return [value for key, value in new.items() if old.get(key) != value]
