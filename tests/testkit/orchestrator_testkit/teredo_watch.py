"""When does a moved node have a *routed* Teredo address again?  Judged by ``ip monitor``.

Why: the Teredo bench and the demo compare the daemon with miredo alone and with a bare shell loop;
the clock that judges them must belong to none of them.  This module reads the kernel's own
account, ``ip -ts monitor link address route`` in the node of a :class:`TeredoLab` (the lab's
:class:`lab.Monitor`: a tracked process, its output in a private file in ``lab.tmp``), and derives
for each move between two routers with different gateways:

  (a) ``route_at``: when the new IPv4 default route (``default via NEW_GATEWAY``) appeared;
  (b) ``routed_at``: the first moment after the move began when ``teredo`` had BOTH a global
      2001:0::/32 address that was not on it when the move began (final, not ``tentative``) AND an
      IPv6 default route through ``teredo`` in the main table.  An address without that route is
      not usable; a route without a new address still sends from the dead one.

The figure is ``routed_at - route_at``.  Both stamps come from the same ``ip`` process (printed
under TZ=UTC0 with microseconds, see :func:`lab.monitor_time`): when ``ip`` printed the message,
not when the kernel sent it, so ``ip``'s own scheduling delay is in both and mostly cancels out.
A move behind a router with the same gateway (``nc``) adds no default route: it has no (a) and
cannot be timed this way.

What the kernel says on the way (measured, miredo 1.2.6 with the project's client hook, user
profile): dhclient's new address and subnet routes, ~2 ms later ``default via GW``.  After a
SIGHUP the hook's ``down`` deletes the tunnel's default route and address at once, miredo deletes
the link ~25 ms later and creates a new one, and ``up`` (~70 ms after the signal) adds the address
(tentative, then final) and the default route metric 1029 within 0.2 ms.  Without a SIGHUP miredo
notices at its next 30 s refresh, and ``up`` only swaps the address (the default route stays).

API
---
``TeredoWatch(lab)``               subscribes (returns once provably subscribed) and reads the
                                   tunnel's current state from the kernel
``.mark() -> Mark``                before a move: everything announced so far is read first
``.timing(mark, gateway, cutoff) -> MoveTiming``  what the log says now
``.wait(mark, gateway, cutoff) -> MoveTiming``    wait until routed, or ``cutoff`` s after (a)
``fold(before, events, gateway, cutoff) -> MoveTiming``  the same, on given messages
``MoveTiming``: ``.route_at``, ``.routed_at`` (Unix time or None), ``.address``, ``.cutoff``;
    ``.seconds`` (b - a, None when cut off), ``.cut_off``
``ensure_qualified(lab, timeout=10) -> str``  the tunnel's address maps the current NAT's outside
    address (SIGHUP once if not): a clean start for a series of moves

Example::

    with TeredoLab() as lab:
        config = write_teredo(lab.tmp, lab.miredo_pidfile, SERVER_ADDRESS)
        lab.start_miredo(client_hook(lab.tmp, config))
        lab.wait_teredo_address()
        watch = TeredoWatch(lab)
        mark = watch.mark()
        lab.move_to("nb")
        lab.sighup_miredo()
        print(watch.wait(mark, NATS["nb"].gateway, cutoff=10).seconds)
"""

from __future__ import annotations

import ipaddress
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from .ip_monitor import Event, Monitor, wait_for_quiet
from .teredo_lab import NATS, TEREDO_IF, TeredoLab, is_teredo, teredo_client_ipv4

MAIN_TABLES = ("main", "254")
# Link and address lines: "7: teredo: <...>", "7: teredo    inet6 2001:0:.../128 scope global ..."
_LINK_RE = re.compile(r"^(Deleted )?\d+: ([^\s:@]+)(?:@\S+)?: <")
_ADDR_RE = re.compile(r"^(Deleted )?\d+: ([^\s:@]+)(?:@\S+)?\s+inet6 ([0-9a-fA-F:]+)/\d+ (.*)$")
# Address flags that make an address not (yet) usable.
_UNUSABLE = {"tentative", "dadfailed"}


def _is_ipv4(text: str) -> bool:
    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        return False
    return True


@dataclass
class TunnelState:
    """What the log says about ``teredo``: its usable global Teredo addresses and the metrics of
    its IPv6 default routes in the main table."""

    addresses: set[str] = field(default_factory=set)
    routes: set[int] = field(default_factory=set)

    def copy(self) -> TunnelState:
        return TunnelState(set(self.addresses), set(self.routes))

    def apply(self, event: Event) -> None:
        """Fold one ``ip monitor`` message into the state."""
        line = event.first_line
        link = _LINK_RE.match(line)
        if link:
            if link.group(1) and link.group(2) == TEREDO_IF:  # the link went: all of it went
                self.addresses.clear()
                self.routes.clear()
            return
        addr = _ADDR_RE.match(line)
        if addr:
            deleted, ifname, address, rest = addr.groups()
            if ifname != TEREDO_IF or not is_teredo(address) or "scope global" not in rest:
                return
            if deleted or _UNUSABLE & set(rest.split()):
                self.addresses.discard(address)
            else:
                self.addresses.add(address)
            return
        route = _route(line)
        if route is not None and route.ipv6 and route.dev == TEREDO_IF:
            if route.deleted:
                self.routes.discard(route.metric)
            else:
                self.routes.add(route.metric)

    def routed(self, old: set[str]) -> str | None:
        """A usable address not in ``old`` while a default route goes through the tunnel."""
        new = sorted(self.addresses - old)
        return new[0] if new and self.routes else None


@dataclass(frozen=True)
class DefaultRoute:
    """A default route in the main table as one ``ip monitor`` line showed it."""

    deleted: bool
    gateway: str | None
    dev: str | None
    metric: int
    ipv6: bool


def _route(line: str) -> DefaultRoute | None:
    """Parse a unicast default route of the main table; None for anything else.

    ``ip monitor`` prints no family: an IPv6 route always carries ``pref`` (the kernel sends
    RTA_PREF for every IPv6 route), an IPv4 one never does; an IPv4 gateway is dotted."""
    words = line.split()
    deleted = bool(words) and words[0] == "Deleted"
    if deleted:
        words = words[1:]
    if not words or words[0] != "default":  # another destination, or a non-unicast type first
        return None
    options = {w: words[i + 1] for i, w in enumerate(words[:-1]) if w in ("via", "dev", "metric", "table")}
    if options.get("table", "main") not in MAIN_TABLES:
        return None
    gateway = options.get("via")
    ipv6 = "pref" in words or (gateway is not None and ":" in gateway)
    metric = int(options["metric"]) if options.get("metric", "").isdigit() else (1024 if ipv6 else 0)
    return DefaultRoute(deleted, gateway, options.get("dev"), metric, ipv6)


def fold(before: TunnelState, events: Iterable[Event], gateway: str, cutoff: float) -> MoveTiming:
    """(a) and (b) of a move towards ``gateway`` that began with the tunnel in state ``before``
    (left unchanged), from the messages ``ip monitor`` printed since."""
    state = before.copy()
    route_at = routed_at = None
    address = None
    for event in events:
        state.apply(event)
        route = _route(event.first_line)
        if route_at is None and route is not None and not route.deleted and not route.ipv6 \
                and route.gateway == gateway and _is_ipv4(gateway):
            route_at = event.time
        if routed_at is None and (found := state.routed(before.addresses)):
            routed_at, address = event.time, found
    return MoveTiming(route_at, routed_at, address, cutoff)


@dataclass(frozen=True)
class Mark:
    """A position in the watch's log and the Teredo addresses the tunnel had there."""

    index: int
    state: TunnelState


@dataclass(frozen=True)
class MoveTiming:
    """One move as the kernel told it: (a) new default route, (b) routed new Teredo address."""

    route_at: float | None
    routed_at: float | None
    address: str | None
    cutoff: float

    @property
    def seconds(self) -> float | None:
        """(b) - (a) in seconds; None when cut off (no (b), or later than ``cutoff`` after (a))."""
        if self.route_at is None or self.routed_at is None:
            return None
        elapsed = self.routed_at - self.route_at
        return elapsed if elapsed <= self.cutoff else None

    @property
    def cut_off(self) -> bool:
        return self.seconds is None


class TeredoWatch:
    """``ip -ts monitor link address route`` in the lab's node, folded into tunnel states.

    The state starts from the kernel's picture read after the monitor is subscribed, and every
    message since then is folded in again: replaying adds and deletions the picture already
    holds leaves it as it is, so nothing between subscribing and reading is lost or doubled."""

    def __init__(self, lab: TeredoLab) -> None:
        self.lab = lab
        self.monitor: Monitor = lab.monitor(lab.node, ("link", "address", "route"))
        self._state = TunnelState(set(lab.teredo_addresses()), self._default_route_metrics())
        self._events: list[Event] = []

    def _default_route_metrics(self) -> set[int]:
        routes = self.lab.node.ip_json("-6", "route", "show", "default", "dev", TEREDO_IF) \
            if self.lab.teredo_ifindex() is not None else []
        return {int(r.get("metric", 1024)) for r in routes}

    def _read(self) -> list[Event]:
        """Every message so far; the newly printed ones are folded into the current state."""
        events = self.monitor.events()
        for event in events[len(self._events):]:
            self._state.apply(event)
        self._events = events
        return events

    def mark(self) -> Mark:
        """Call before a move.  Waits until ``ip`` has printed all the kernel said so far (a sync
        marker route), so the move's messages are after the mark and nothing earlier is."""
        self.monitor.sync()
        index = len(self._read())
        return Mark(index, self._state.copy())

    def timing(self, mark: Mark, gateway: str, cutoff: float) -> MoveTiming:
        """(a) and (b) for the move that began at ``mark`` towards ``gateway``, from the log as
        it is now (``monitor.sync()`` first for everything the kernel has said)."""
        return fold(mark.state, self._read()[mark.index:], gateway, cutoff)

    def wait(self, mark: Mark, gateway: str, cutoff: float) -> MoveTiming:
        """Wait until the move that began at ``mark`` has a routed Teredo address, or ``cutoff``
        seconds (plus a small margin for ``ip``'s own delay) have passed since this call.  Call it
        right after the new default route is in place (``TeredoLab.move_to`` returns then).
        Raises ``AssertionError`` if miredo died or the new default route never showed up."""
        def done() -> MoveTiming | None:
            if self.lab.miredo is not None:
                self.lab.miredo.check_alive(f"miredo in {self.lab.node.name}")
            found = self.timing(mark, gateway, cutoff)
            return found if found.routed_at is not None and found.route_at is not None else None

        wait_for_quiet(done, cutoff + 0.5, interval=0.02)
        self.monitor.sync()  # whatever the kernel said until now is in the log
        found = self.timing(mark, gateway, cutoff)
        if found.route_at is None:
            raise AssertionError(f"ip monitor in {self.lab.node.name} never showed a default route via "
                                 f"{gateway} (log {self.monitor.path})")
        return found


def ensure_qualified(lab: TeredoLab, timeout: float = 10.0) -> str:
    """Make sure miredo's address maps the NAT the node is behind now (SIGHUP once if not) and
    return it.  Why: a series of moves must start from a tunnel that is up to date, whatever the
    previous series (e.g. miredo alone, cut off) left behind."""
    if lab.attached is None:
        raise RuntimeError("the node is attached to no router")
    outside = NATS[lab.attached].wan
    current = lab.teredo_addresses()
    if any(teredo_client_ipv4(a) == outside for a in current):
        return next(a for a in current if teredo_client_ipv4(a) == outside)
    lab.sighup_miredo()
    deadline = time.monotonic() + timeout
    address = lab.wait_teredo_address(timeout, exclude=current)
    while teredo_client_ipv4(address) != outside:  # a stale qualification finishing late
        address = lab.wait_teredo_address(max(0.1, deadline - time.monotonic()), exclude=[*current, address])
    return address




__all__ = [
    "Mark",
    "MoveTiming",
    "TeredoWatch",
    "TunnelState",
    "ensure_qualified",
    "fold",
]
