"""The ``mipv6`` plugin object: purge the stale care-of address, predict mip6d's choice, confirm.

The hooks only decide *when*; ``purge``, ``coa``, ``handover``, ``capture`` and ``mobility`` do the
work.  Everything runs on the event loop (the hooks are coroutines or quick plain functions).
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Mapping
from pathlib import Path

from orchestrator import (
    Command,
    Config,
    Key,
    Move,
    NetworkState,
    PluginContext,
    Section,
    StandbyUplinksChanged,
    TunnelAddressChanged,
    UplinkChanged,
    hookimpl,
)

from . import coa, environment, kernel_signals, mip6d_conf, purge, xfrm
from .capture import MAX_PACKET, open_capture
from .commands import MIP6D_CONF
from .dependents import Dependents
from .handover import Handovers, Pending
from .mobility import parse

REQUALIFY_MIN_INTERVAL_S = 30.0  # at most one re-qualification asked for per this long
COUNTERS = ("mipv6_purged", "mipv6_handovers_confirmed", "mipv6_handovers_failed", "mipv6_requalify_asked")

SECTION = Section(
    {
        "home_address": Key("ipv6", "the mobile node's home address"),
        "home_agent": Key("ipv6", "the home agent's address (handovers are confirmed against it)"),
        "handover_timeout_s": Key("float", "a handover not confirmed by then failed", 5.0, 0.1, 600),
        "mip6d_conf": Key(
            "str", "mip6d's configuration file, compared with [[interfaces]]", "/usr/local/etc/mip6d.conf"
        ),
    }
)


class MobilityPlugin:
    """The plugin object (entry point ``orchestrator_mipv6.plugin:PLUGIN``)."""

    def __init__(self) -> None:
        self.context: PluginContext | None = None
        self.handovers: Handovers | None = None
        self.listeners: list[socket.socket] = []  # open only while a handover is pending
        self.expected: coa.Candidate | None = None
        self.purged: frozenset[str] = frozenset()
        self.last_requalify = -REQUALIFY_MIN_INTERVAL_S
        self.dependents = Dependents()

    # -- configuration ------------------------------------------------------------------------------

    @hookimpl
    def orchestrator_config_schema(self) -> Mapping[str, Section]:
        return {"mipv6": SECTION}

    @hookimpl
    def orchestrator_commands(self) -> list[Command]:
        return [MIP6D_CONF]

    @hookimpl(trylast=True)
    def orchestrator_expected_coa(
        self, config: Config, state: NetworkState, exclude: frozenset[str]
    ) -> str | None:
        """UMIP's rule (see ``coa``): the answer when no other plugin predicts differently."""
        best = coa.expected(config, state, exclude)
        return best.address if best else None

    # -- life -----------------------------------------------------------------------------------------

    @hookimpl
    async def orchestrator_startup(self, context: PluginContext) -> None:
        self.context = context
        for name in COUNTERS:
            context.counters[name] += 0
        section = context.section
        self.handovers = Handovers(section.get("home_agent"), self._handover_ended)
        problems = environment.kernel_problems()
        if environment.mip6d_pid() is None:
            problems.append("mip6d is not running")
        problems += mip6d_conf.differences(context.config, Path(section["mip6d_conf"]))
        if section.get("home_agent") is None:
            problems.append("mipv6.home_agent is not set: handovers cannot be confirmed")
        for problem in problems:
            context.log.warning("%s", problem)
        context.status.update(mode="degraded" if problems else "ok", problems=problems, handover="none")
        self.dependents.note(context.state)
        self._update_expected()

    @hookimpl
    async def orchestrator_shutdown(self) -> None:
        if self.handovers is not None:
            self.handovers.abandon()
        self._stop_listening()
        self.context = self.handovers = self.expected = None  # a late call finds a stopped plugin
        self.purged, self.dependents = frozenset(), Dependents()

    # -- events ---------------------------------------------------------------------------------------

    @hookimpl(tryfirst=True)  # before a tunnel plugin's kick: the BU may follow it within milliseconds
    async def orchestrator_uplink_changed(self, event: UplinkChanged, move: Move) -> None:
        if self.context is None or self.handovers is None:
            return
        self.handovers.abandon()  # superseded with its move
        self._stop_listening()
        previous = self.expected
        dead = self._dead_tunnels()
        if event.new is None:  # every tunnel left without its uplink; a handover to what remains, if any
            state = self.context.state
            self._purge(move, [name for name in self._tunnels() if state.tunnel_uplink(name) is None])
        elif not self._purge_dead(move, dead) and previous is not None and previous.tunnel:
            self._begin(move, previous, None)  # the tunnel's next address will be the care-of address

    @hookimpl
    async def orchestrator_standby_uplinks_changed(self, event: StandbyUplinksChanged) -> None:
        """A standby uplink lost: the tunnels bound to it are dead, purged when another care-of
        address remains (the expected one is then unchanged, or a handover follows)."""
        if self.context is not None:
            self._purge_dead(self.context.current_move, self._dead_tunnels())

    @hookimpl
    async def orchestrator_tunnel_address_changed(self, event: TunnelAddressChanged) -> None:
        """A new address may be the care-of address that lets the tunnels still waiting be purged."""
        if self.context is None:
            return
        present = {address for name in self._tunnels() for address in self._addresses(name)}
        self.purged = (self.purged & present) - {event.new}  # a purged address that came back is usable
        self.dependents.back(self.context.state)
        if not (self.dependents.waiting and self._purge_dead(self.context.current_move, [])):
            self._update_expected()

    # -- the work -------------------------------------------------------------------------------------

    def _tunnels(self) -> list[str]:
        """The links with role tunnel: their addresses derive from an uplink (Teredo, 6to4) and die
        with it; an uplink's own IPv6 (ipv6_tunnel) belongs to its link and is the kernel's to remove."""
        assert self.context is not None
        config, links = self.context.config, self.context.state.view.links.values()
        return sorted(link.name for link in links if config.role(link.name) == "tunnel")

    def _addresses(self, tunnel: str) -> list[str]:
        assert self.context is not None
        link = self.context.state.view.link_named(tunnel)
        return [a.address for a in self.context.state.global_ipv6(link.index, usable=False)] if link else []

    def _dead_tunnels(self) -> list[str]:
        """The tunnels whose uplink was lost since last asked, and those still waiting."""
        assert self.context is not None
        self.dependents.back(self.context.state)
        lost = self.dependents.note(self.context.state)
        return self.dependents.dead(self.context.config, self._tunnels(), lost)

    def _purge_dead(self, move: Move | None, dead: list[str]) -> bool:
        """Purge ``dead`` tunnels and the ones waiting when another usable care-of address remains
        (make-before-break); else the bound ones wait for one.  Returns whether it purged."""
        assert self.context is not None
        dead = sorted({*dead, *self.dependents.waiting})
        remaining = coa.candidates(self.context.config, self.context.state, self.purged)
        if not dead or all(candidate.interface in dead for candidate in remaining):
            self.dependents.wait(self.context.config, dead)
            return False
        self.dependents.waiting -= set(dead)
        self._purge(move, dead)
        return True

    def _purge(self, move: Move | None, tunnels: list[str]) -> None:
        """Delete the global addresses of ``tunnels`` (listening first: mip6d answers the purge
        within a millisecond over a native path), then expect what remains."""
        assert self.context is not None and self.handovers is not None
        links = [link for name in tunnels if (link := self.context.state.view.link_named(name))]
        recorded = purge.record(self.context.state, links)
        if not recorded:
            self._update_expected()
            return
        self._listen()
        problems = purge.delete(recorded)
        addresses = frozenset(entry.address for entry in recorded)
        self.purged |= addresses
        self.context.counters["mipv6_purged"] += len(recorded)
        if move is not None:
            move.phase("coa-purged")
        self.context.log.info("purged stale care-of addresses: %s", ", ".join(sorted(addresses)))
        for problem in problems:
            self.context.report(problem, move)
        self._update_expected()
        if self.handovers.pending is None:
            self._stop_listening()

    def _update_expected(self) -> None:
        """Ask for the expected care-of address (another plugin may predict it) and show it; a
        change is a handover, awaited unless one is pending already."""
        assert self.context is not None and self.handovers is not None
        address = self.context.ask(
            "orchestrator_expected_coa", config=self.context.config, state=self.context.state,
            exclude=self.purged,
        )
        found = [c for c in coa.candidates(self.context.config, self.context.state, self.purged)
                 if c.address == address]
        previous, self.expected = self.expected, found[0] if found else None
        self.context.status.update(expected_coa=address, coa_interface=found[0].interface if found else None)
        if self.expected is None or (previous is not None and previous.address == self.expected.address):
            return
        if self.handovers.pending is not None:
            self._expect(self.expected)
        elif previous is not None:
            self._begin(self.context.current_move, previous, self.expected)

    def _expect(self, candidate: coa.Candidate) -> None:
        assert self.handovers is not None
        self.handovers.expect(candidate.address, candidate.interface if candidate.tunnel else None)

    def _begin(
        self, move: Move | None, previous: coa.Candidate | None, awaited: coa.Candidate | None
    ) -> None:
        assert self.context is not None and self.handovers is not None
        if self.handovers.home_agent is None:
            return
        timeout = float(self.context.section["handover_timeout_s"])
        timer = asyncio.get_running_loop().call_later(timeout, self.handovers.expired, timeout)
        self._listen()
        part = move.hold() if move is not None else None
        self.handovers.begin(Pending(previous.address if previous else None, None, None, move, part, timer))
        self.context.status.update(handover="pending", handover_problem=None)
        if awaited is not None:
            self._expect(awaited)

    def _handover_ended(self, pending: Pending, problem: str | None, requalify: bool) -> None:
        assert self.context is not None
        self._stop_listening()
        if problem is None:
            self.context.counters["mipv6_handovers_confirmed"] += 1
            if pending.move is not None:
                pending.move.phase("handover-confirmed")
            if pending.part is not None:
                pending.part.done()
            self.context.log.info("handover to %s confirmed by the home agent", pending.coa)
            self.context.status.update(handover="confirmed", handover_coa=pending.coa, handover_problem=None)
            return
        self.context.counters["mipv6_handovers_failed"] += 1
        self.context.report(problem, pending.move)  # on the move unless it has ended, and to on_error
        if pending.part is not None:
            pending.part.done()  # the report has said why: a failed part would report it again late
        self.context.status.update(handover="failed", handover_coa=pending.coa, handover_problem=problem)
        if requalify and pending.tunnel is not None:
            self._ask_requalify(pending.tunnel, problem)

    def _ask_requalify(self, tunnel: str, problem: str) -> None:
        assert self.context is not None
        now = time.monotonic()
        if now - self.last_requalify < REQUALIFY_MIN_INTERVAL_S:
            return
        if self.context.ask("orchestrator_requalify_tunnel", interface=tunnel, reason=problem):
            self.last_requalify = now
            self.context.counters["mipv6_requalify_asked"] += 1
            self.context.log.info("asked for a re-qualification of %s", tunnel)

    # -- listening while a handover is pending -----------------------------------------------------

    def _listen(self) -> None:
        """The BU/BA capture, and mip6d's kernel changes for IPsec-protected signalling.  A socket
        that cannot be opened is reported: the handover then goes unconfirmed, the purge still runs."""
        assert self.context is not None and self.handovers is not None
        if self.listeners or self.handovers.home_agent is None:
            return
        loop = asyncio.get_running_loop()
        self.handovers.recent.clear()  # only what is heard from now on can belong to this handover
        try:
            capture = open_capture()
            loop.add_reader(capture.fileno(), self._read_capture, capture)
            self.listeners.append(capture)
            for opener, link in ((xfrm.open_socket, False), (kernel_signals.open_link_socket, True)):
                sock = opener()
                loop.add_reader(sock.fileno(), self._read_kernel, sock, link)
                self.listeners.append(sock)
        except OSError as error:
            problem = f"cannot listen for the handover's signals: {error}"
            self.context.report(problem, self.context.current_move)

    def _stop_listening(self) -> None:
        loop = asyncio.get_running_loop()
        for sock in self.listeners:
            loop.remove_reader(sock.fileno())
            sock.close()
        self.listeners.clear()

    def _read_capture(self, capture: socket.socket) -> None:
        while self.listeners and self.handovers is not None:
            try:
                packet = capture.recv(MAX_PACKET)
            except BlockingIOError:
                return
            signal = parse(packet)
            if signal is not None:
                self.handovers.heard(signal)

    def _read_kernel(self, sock: socket.socket, link: bool) -> None:
        assert self.handovers is not None and self.handovers.home_agent is not None
        for signal in kernel_signals.read(sock, self.handovers.home_agent, link):
            if self.handovers is not None and self.listeners:
                self.handovers.heard(signal)


PLUGIN = MobilityPlugin()

