"""NetworkState: the current picture of the kernel and what its changes mean.

It is the only place that remembers.  Raw events update the ``KernelView``; the state then derives
the events plugins care about: ``UplinkChanged`` (through ``UplinkTracker``), ``TunnelAddressChanged``
and ``LinkChanged``.  Interfaces are matched by name, never by index: miredo re-creates ``teredo``
with a new index on every restart.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass, replace

from .config import Config
from .events import (
    AddressEvent,
    DerivedEvent,
    GatewayLearned,
    LinkAliasChanged,
    LinkChanged,
    LinkEvent,
    RawEvent,
    RouteEvent,
    StandbyUplinksChanged,
    TunnelAddressChanged,
    Uplink,
    UplinkChanged,
)
from .netlink import queries, wire
from .uplink import Observation, UplinkTracker
from .view import KernelView

RouteLookup = Callable[[str], "queries.RouteLookup | None"]
RouteReread = Callable[[int, int], "list[RouteEvent]"]


@dataclass(frozen=True, slots=True)
class LinkStatus:
    present: bool
    up: bool
    carrier: bool


ABSENT = LinkStatus(False, False, False)


def _status(link: LinkEvent | None) -> LinkStatus:
    return ABSENT if link is None else LinkStatus(True, link.up, link.carrier)


class NetworkState:
    """Applies raw events, derives meaning.  ``lookup`` asks the kernel for its route to an IPv4
    address and ``reread`` for one table's routes; unit tests pass recorded answers instead.
    ``reference`` is the address the uplink is judged towards (None: the best default route)."""

    def __init__(
        self,
        config: Config,
        reference: str | None = None,
        lookup: RouteLookup = queries.route_get,
        reread: RouteReread = queries.dump_routes,
    ) -> None:
        self.config = config
        self.view = KernelView()
        self.tracker = UplinkTracker(config.uplinks.carrier_grace_ms / 1000, config.uplinks.settle_ms / 1000)
        self.reference = reference
        self._lookup = lookup
        self._reread = reread
        self._routes_stale = False
        self._tunnel_address: dict[str, str | None] = {}
        self._link_status: dict[str, LinkStatus] = {}
        self._link_alias: dict[str, str | None] = {}
        self._standby: tuple[Uplink, ...] = ()
        self._uplink_dirty = False
        self.primed = False

    def reconfigure(self, config: Config, reference: str | None) -> None:
        """A reloaded policy: roles, reference and timings change; what the kernel said stays.
        The uplink is judged again at the next batch."""
        self.config = config
        self.reference = reference
        self.tracker.carrier_grace_s = config.uplinks.carrier_grace_ms / 1000
        self.tracker.settle_s = config.uplinks.settle_ms / 1000
        self._uplink_dirty = True

    # -- raw events -------------------------------------------------------------------------

    def apply(self, event: RawEvent) -> list[DerivedEvent]:
        """Record one raw event; return what it means at once (uplink changes wait for ``settle``)."""
        names = self._names_touched(event)
        self.view.apply(event)
        if not self.primed:
            return []
        derived: list[DerivedEvent] = []
        for name in names:
            derived.extend(self._derive_interface(name))
        if self._touches_uplink(event, names):
            self._uplink_dirty = True
            self._routes_stale = self._routes_stale or event.deleted or isinstance(event, LinkEvent)
        return derived

    def settle(self, now: float) -> list[RouteEvent | UplinkChanged | StandbyUplinksChanged]:
        """Re-judge the uplink after a batch of raw events: one verdict per burst, not per message.

        Returns the routes the kernel removed without saying so (first), then the verdict, then
        the standby uplinks when they changed.
        """
        if not self._uplink_dirty:
            return []
        self._uplink_dirty = False
        vanished = self._forget_vanished_routes() if self._routes_stale else []
        self._routes_stale = False
        defaults = self._ipv4_defaults()
        moved = self.tracker.observe(self.observe_uplink(defaults), now)
        return [*vanished, *moved, *self._standby_changed(defaults)]

    def expire(self, now: float) -> list[UplinkChanged | StandbyUplinksChanged]:
        """The active uplink's loss once its grace has run out (at ``tracker.loss_deadline``)."""
        return [*self.tracker.expire(now), *self._standby_changed(self._ipv4_defaults())]

    @property
    def standby(self) -> tuple[Uplink, ...]:
        """The complete uplinks but the active one (``tracker.current``), best default route first,
        as of the last batch of events."""
        return self._standby

    def complete_uplinks(self, defaults: list[RouteEvent]) -> list[Uplink]:
        """Every complete uplink: an interface with role "uplink", up with carrier, an IPv4 default
        route in the main table through it (of ``defaults``) and an address for that route; best
        route first."""
        found: dict[str, Uplink] = {}
        for route in defaults:
            link = self.view.links.get(route.oif) if route.oif is not None else None
            if link is None or link.name in found or not (link.up and link.carrier):
                continue
            if self.config.role(link.name) != "uplink":
                continue
            lookup = queries.RouteLookup(link.index, route.gateway, None, route.onlink)
            address = self._uplink_address(link.index, lookup)
            if address is not None:
                found[link.name] = Uplink(link.name, address.cidr, route.gateway)
        return list(found.values())

    def _standby_changed(self, defaults: list[RouteEvent]) -> list[StandbyUplinksChanged]:
        active = self.tracker.current.interface if self.tracker.current is not None else None
        standby = tuple(u for u in self.complete_uplinks(defaults) if u.interface != active)
        if standby == self._standby:
            return []
        self._standby = standby
        return [StandbyUplinksChanged(standby)]

    def _ipv4_defaults(self) -> list[RouteEvent]:
        """The main table's IPv4 default routes, lowest metric first: one pass over the routes for
        the active uplink and the standby ones alike."""
        defaults = (
            r
            for r in self.view.routes.values()
            if r.family == socket.AF_INET and r.table == wire.RT_TABLE_MAIN and r.is_default
        )
        return sorted(defaults, key=lambda r: r.priority)

    def _forget_vanished_routes(self) -> list[RouteEvent]:
        """Drop IPv4 main-table routes the kernel no longer has (see ``queries.dump_routes``)."""
        present = {route.key for route in self._reread(socket.AF_INET, wire.RT_TABLE_MAIN)}
        vanished = [
            replace(route, deleted=True)
            for key, route in self.view.routes.items()
            if route.family == socket.AF_INET and route.table == wire.RT_TABLE_MAIN and key not in present
        ]
        for route in vanished:
            self.view.apply(route)
        return vanished

    def prime(self) -> None:
        """Take the first dump as the baseline: nothing in it is a change."""
        self.primed = True
        for link in self.view.links.values():
            if self.config.role(link.name) is not None:
                self._link_status[link.name] = _status(link)
                self._link_alias[link.name] = link.alias
            if self.config.is_tunnel(link.name):
                self._tunnel_address[link.name] = self.tunnel_address(link.name)
        defaults = self._ipv4_defaults()
        self.tracker.observe(self.observe_uplink(defaults), 0.0)
        self._standby_changed(defaults)

    def resync(self, fresh: KernelView, now: float) -> tuple[list[RawEvent], list[DerivedEvent]]:
        """Replace the view by a fresh dump; return the net raw changes and what they mean.

        A carrier-change counter that moved on an uplink means carrier went away and came back
        unseen: that may have been a move to another router, so the gateway is probed again.
        """
        for index, link in fresh.links.items():
            before = self.view.links.get(index)
            if (
                before is not None
                and before.carrier_changes != link.carrier_changes
                and self.config.role(link.name) == "uplink"
            ):
                self.tracker.possible_move()
        made_before = self._uplink_address_created(self.tracker.current)
        changes = self.view.diff(fresh)
        derived: list[DerivedEvent] = []
        for event in changes:
            derived.extend(self.apply(event))
        self._uplink_dirty = True
        settled = self.settle(now)
        changes.extend(e for e in settled if isinstance(e, RouteEvent))
        moves = [e for e in settled if isinstance(e, UplinkChanged)]
        recreated = self._uplink_address_created(self.tracker.current) not in (made_before, None)
        if not moves and recreated and self._active_tunnels_older():
            moves.append(self.tracker.missed(None))  # gone and back within the overrun: unseen
        derived.extend(moves)
        return changes, derived

    def resume(self, last: Uplink | None, now: float) -> list[UplinkChanged]:
        """The moves that happened while no daemon watched, judged once the first dump is in.

        ``last`` is the uplink the previous run recorded (None: no usable record, or it had none):
        the tracker carries on from it (``UplinkTracker.resume``).  Without one the kernel's
        creation times decide: an address of a tunnel that takes its addresses from a declared
        prefix (``Config.address_prefixes``: Teredo's, derived from the uplink), made before the
        uplink's IPv4 address, belongs to the network before.
        """
        if last is not None:
            return self.tracker.resume(last, self.observe_uplink(), now)
        if self.tracker.current is not None and self._active_tunnels_older():
            return [self.tracker.missed(None)]
        return []

    def tunnels_older_than_uplink(self) -> list[str]:
        """Tunnels with a declared address prefix (their addresses derive from the uplink, as
        Teredo's) holding a global address the kernel created before the IPv4 address of their own
        uplink (``tunnel_uplink``): made on the previous network, so dead after the move.  A tunnel
        bound to a standby uplink is judged against that uplink, never the active one."""
        older = []
        for name in sorted(self.config.address_prefixes):
            made = self._uplink_address_created(self.tunnel_uplink(name))
            link = self.view.link_named(name)
            stamps = [a.created for a in self.global_ipv6(link.index)] if link is not None else []
            if (
                self.config.role(name) == "tunnel"
                and made is not None
                and any(stamp is not None and _stamped_before(stamp, made) for stamp in stamps)
            ):
                older.append(name)
        return older

    def _active_tunnels_older(self) -> bool:
        """Whether a tunnel that follows the active uplink predates it: a move nobody saw."""
        return any(self.follows_active(name) for name in self.tunnels_older_than_uplink())

    def _uplink_address_created(self, uplink: Uplink | None) -> int | None:
        """When the kernel created ``uplink``'s IPv4 address (None: no uplink, or not known)."""
        link = self.view.link_named(uplink.interface) if uplink is not None else None
        if uplink is None or link is None:
            return None
        ip = str(uplink.ip)
        addresses = self.view.addresses_of(link.index, socket.AF_INET)
        return next((a.created for a in addresses if a.address == ip), None)

    # -- derived: uplink ----------------------------------------------------------------------

    def observe_uplink(self, defaults: list[RouteEvent] | None = None) -> Observation:
        """The uplink the kernel would use now, and whether its link has carrier (``defaults``:
        ``_ipv4_defaults()``, when the caller has them already).

        The kernel keeps routing through a link without carrier (``ignore_routes_with_linkdown`` is
        0 by default): when its choice is not complete and another uplink is, that one is the
        uplink, at once, since nothing is lost by leaving a link that cannot carry packets."""
        defaults = self._ipv4_defaults() if defaults is None else defaults
        seen = self._kernel_choice(defaults)
        if seen.complete:
            return seen
        others = self.complete_uplinks(defaults)
        return Observation(others[0], carrier=True) if others else seen

    def _kernel_choice(self, defaults: list[RouteEvent]) -> Observation:
        route = self._reference_route() or self._best_default_route(defaults)
        if route is None:
            return Observation(None, carrier=False)
        link = self.view.links.get(route.oif)
        if link is None:
            return Observation(None, carrier=False)
        address = self._uplink_address(link.index, route)
        candidate = Uplink(link.name, address.cidr, route.gateway) if address is not None else None
        return Observation(candidate, carrier=link.up and link.carrier)

    def uplink_of(self, interface: str) -> Uplink | None:
        """The complete uplink on ``interface`` (the active one or a standby), None when it is not
        complete.  While the active uplink's loss waits for its grace it is still the active one."""
        current = self.tracker.current
        if current is not None and current.interface == interface:
            return current
        return next((u for u in self._standby if u.interface == interface), None)

    def tunnel_uplink(self, tunnel: str) -> Uplink | None:
        """The uplink tunnel ``tunnel``'s packets leave by: the one it is bound to
        (``[[interfaces]] uplink``), else the active uplink."""
        bound = self.config.bound_uplink(tunnel)
        return self.tracker.current if bound is None else self.uplink_of(bound)

    def follows_active(self, tunnel: str) -> bool:
        """Whether ``tunnel`` depends on the active uplink now: unbound, or bound to it."""
        bound = self.config.bound_uplink(tunnel)
        current = self.tracker.current
        return bound is None or (current is not None and current.interface == bound)

    def _is_uplink(self, index: int | None) -> bool:
        name = self.view.name_of(index)
        return name is not None and self.config.role(name) == "uplink"

    def _reference_route(self) -> queries.RouteLookup | None:
        if self.reference is None:
            return None
        route = self._lookup(self.reference)
        return route if route is not None and self._is_uplink(route.oif) else None

    def _best_default_route(self, defaults: list[RouteEvent]) -> queries.RouteLookup | None:
        best = next((r for r in defaults if self._is_uplink(r.oif)), None)
        if best is None:
            return None
        assert best.oif is not None
        return queries.RouteLookup(best.oif, best.gateway, None, best.onlink)

    def _uplink_address(self, index: int, route: queries.RouteLookup) -> AddressEvent | None:
        """Our address on the uplink: the kernel's source for the route, else the one whose subnet
        holds the gateway, or whose point-to-point peer it is (``default via PEER dev ppp0``).  A
        gateway outside every subnet (and not declared on-link) is a dead leftover of the previous
        network: no uplink until the new default route comes."""
        addresses = list(self.view.addresses_of(index, socket.AF_INET))
        if route.gateway is not None and not route.onlink:
            gateway = _ipv4_int(route.gateway)
            addresses = [
                a
                for a in addresses
                if a.peer == route.gateway or (_ipv4_int(a.address) ^ gateway) >> (32 - a.prefixlen) == 0
            ]
        for address in addresses:
            if address.address == route.source:
                return address
        return addresses[0] if addresses else None

    def gateway_seen(self, uplink: Uplink, lladdr: str) -> list[UplinkChanged | GatewayLearned]:
        return self.tracker.gateway_seen(uplink, lladdr)

    # -- derived: interfaces ------------------------------------------------------------------

    def _names_touched(self, event: RawEvent) -> list[str]:
        if isinstance(event, LinkEvent):
            before = self.view.name_of(event.index)
            return [n for n in {before, event.name} if n is not None]
        if isinstance(event, AddressEvent):
            name = self.view.name_of(event.index)
            return [name] if name else []
        return []

    def _touches_uplink(self, event: RawEvent, names: list[str]) -> bool:
        if isinstance(event, RouteEvent):
            return event.family == socket.AF_INET and event.table == wire.RT_TABLE_MAIN
        if isinstance(event, AddressEvent) and event.family != socket.AF_INET:
            return False
        return any(self.config.role(name) == "uplink" for name in names)

    def _derive_interface(self, name: str) -> list[DerivedEvent]:
        role = self.config.role(name)
        if role is None:
            return []
        derived: list[DerivedEvent] = []
        link = self.view.link_named(name)
        status = _status(link)
        if self._link_status.get(name, ABSENT) != status:
            self._link_status[name] = status
            derived.append(LinkChanged(name, status.up, status.carrier, status.present))
        alias = link.alias if link is not None else None
        if self._link_alias.get(name) != alias:
            self._link_alias[name] = alias
            derived.append(LinkAliasChanged(name, alias))
        if self.config.is_tunnel(name):
            address = self._newest_global(link)
            old = self._tunnel_address.get(name)
            if address != old:
                self._tunnel_address[name] = address
                derived.append(TunnelAddressChanged(name, old, address))
        return derived

    def tunnel_address(self, name: str) -> str | None:
        """The newest usable global IPv6 address on the interface called ``name`` (None: none)."""
        return self._newest_global(self.view.link_named(name))

    def _newest_global(self, link: LinkEvent | None) -> str | None:
        usable = self.global_ipv6(link.index) if link is not None else []
        return usable[-1].address if usable else None

    def tunnels(self) -> dict[str, str | None]:
        """Every present tunnel (see ``Config.is_tunnel``) and its usable global address, by name."""
        names = sorted(link.name for link in self.view.links.values() if self.config.is_tunnel(link.name))
        return {name: self.tunnel_address(name) for name in names}

    def global_ipv6(self, index: int, usable: bool = True) -> list[AddressEvent]:
        """The global IPv6 addresses of interface ``index``, oldest first; with ``usable``, not
        tentative (not usable yet) and not deprecated."""
        return [
            a
            for a in self.view.addresses_of(index, socket.AF_INET6)
            if a.scope == wire.RT_SCOPE_UNIVERSE and not (usable and (a.tentative or a.deprecated))
        ]


def _stamped_before(stamp: int, other: int) -> bool:
    """``stamp`` is earlier than ``other``: IFA_CACHEINFO stamps are 32-bit hundredths of a second
    since boot, so they wrap after ~497 days; compared as a signed difference, as the kernel does."""
    return 0 < (other - stamp) & 0xFFFFFFFF < 0x80000000


def _ipv4_int(address: str) -> int:
    return int.from_bytes(socket.inet_aton(address), "big")
