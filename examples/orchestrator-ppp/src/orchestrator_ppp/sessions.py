"""The PPP sessions as the plugin follows them at run time: dials, hang-ups, redials, IPv6.

Everything here runs on the daemon's event loop (the plugin's hooks are ``async def``), so it may
read ``context.state`` and record phases.  It explains PPP; it decides nothing and changes nothing
in the kernel: the core decides what is a move, and the routing plugin applies the IPv6 side's
profile (``follow_address``) when the core reports the link's address.
"""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator import Move, PluginContext, TunnelAddressChanged, UplinkChanged

from .link import PppLink, observe

COUNTERS = ("ppp_dials", "ppp_hangups", "ppp_redials")
PHASE = "ppp-up"


@dataclass
class Session:
    """What the plugin remembers of one PPP interface."""

    index: int | None = None  # the unit's interface index: a new one is a new dial
    up: bool = False
    dials: int = 0
    local: str | None = None  # our IPv4 address the last time the link had one
    uplink_local: str | None = None  # our address the last time the link was the uplink


class Sessions:
    """Per-plugin run-time state, from ``orchestrator_startup`` to ``orchestrator_shutdown``."""

    def __init__(self, context: PluginContext) -> None:
        self.context = context
        self.sessions = {name: Session() for name in context.section["interfaces"]}
        for counter in COUNTERS:
            context.counters[counter] += 0
        uplink = context.state.tracker.current
        for name, session in self.sessions.items():
            link = observe(context.state, name)
            if link.up:
                self._dialled(name, session, link, "is up")
            self._remember(session, link)
            if uplink is not None and uplink.interface == name:
                session.uplink_local = str(uplink.ip)
            self._show(name, link)

    # -- the hooks' work ------------------------------------------------------------------------

    def link_changed(self, name: str) -> None:
        session = self.sessions.get(name)
        if session is None:
            return
        link = observe(self.context.state, name)
        # A new unit under the same name: the old one hung up even if its end was not seen.
        replaced = session.up and link.up and link.index != session.index
        if session.up and (not link.up or replaced):
            self.context.counters["ppp_hangups"] += 1
            self.context.log.info("%s hung up (was %s)", name, session.local or "no address")
        if link.up and (not session.up or replaced):
            self._dialled(name, session, link, "dialled")
        self._remember(session, link)
        self._show(name, link)

    def uplink_changed(self, event: UplinkChanged, move: Move) -> None:
        old, new = event.old, event.new
        if (
            old is not None
            and old.interface in self.sessions
            and (new is None or new.interface != old.interface)
        ):
            self.context.log.info("%s is no longer the uplink (was %s)", old.interface, old.address)
        if new is None or new.interface not in self.sessions:
            return
        move.phase(PHASE)
        session, link = self.sessions[new.interface], observe(self.context.state, new.interface)
        local = str(new.ip)
        if session.uplink_local is not None and session.uplink_local != local:
            self.context.counters["ppp_redials"] += 1
            self.context.log.info(
                "%s redialled: %s -> %s (peer %s)", new.interface, session.uplink_local, local, link.peer
            )
        session.uplink_local = local
        self._show(new.interface, link)

    def ipv6_changed(self, event: TunnelAddressChanged) -> None:
        if event.interface not in self.sessions:
            return
        self.context.log.info("%s IPv6 address: %s -> %s", event.interface, event.old, event.new)
        self._show(event.interface, observe(self.context.state, event.interface))

    # -- helpers --------------------------------------------------------------------------------

    def _dialled(self, name: str, session: Session, link: PppLink, verb: str) -> None:
        session.dials += 1
        self.context.counters["ppp_dials"] += 1
        local = link.local or "no IPv4 address yet"
        self.context.log.info("%s %s: %s (peer %s)", name, verb, local, link.peer)

    @staticmethod
    def _remember(session: Session, link: PppLink) -> None:
        session.index, session.up = link.index, link.up
        session.local = link.local or session.local

    def _show(self, name: str, link: PppLink) -> None:
        self.context.status[name] = link.to_status(self.sessions[name].dials)
