"""One miredo client and the uplink its packets leave by: when that uplink moves, kick; when it is
lost, the tunnel is stale; another uplink's events are never a reason to signal it.

The main instance (``[teredo]``) follows the active uplink unless its tunnel is bound to one; a
standby instance (``[[teredo.standby]]``) is bound to its own uplink, and before each kick the daemon
writes that uplink's address into its ``BindAddress`` and keeps its source route (``Standby``), so
the SIGHUP that re-qualifies it also makes it re-read its file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from orchestrator import Move, PluginContext, Uplink, UplinkChanged

from . import miredo_conf
from .requalify import Requalifier
from .source_route import SourceRoute


@dataclass(frozen=True)
class Standby:
    """What a standby instance needs besides its kicks: its configuration file and source route."""

    config: Path
    route: SourceRoute

    def follow(self, uplink: Uplink, context: PluginContext) -> bool:
        """Put ``uplink`` into the file and the source route; returns whether the file changed.  A
        refusal is reported, never raised: the kick still goes (miredo may qualify over what the
        kernel has)."""
        changed = False
        try:
            changed = miredo_conf.write_bind_address(self.config, str(uplink.ip))
        except OSError as error:
            context.report(
                f"teredo: cannot write BindAddress into {self.config}: {error}", context.current_move
            )
        link = context.state.view.link_named(uplink.interface)
        try:
            written = self.route.converge(uplink, link.index) if link is not None else []
        except OSError as error:
            written = []
            context.report(
                f"teredo: cannot keep the source route through {uplink.interface} "
                f"(table {self.route.table}): {error}",
                context.current_move,
            )
        if changed or written:
            context.log.info(
                "%s follows %s: %s",
                self.config,
                uplink.describe(),
                "; ".join([*(["BindAddress " + str(uplink.ip)] if changed else []), *written]),
            )
        return changed


class Instance:
    """One miredo (``interface``, its ``requalifier``), bound to ``uplink`` (None: the active one)."""

    def __init__(
        self,
        interface: str,
        uplink: str | None,
        requalifier: Requalifier,
        context: PluginContext,
        standby: Standby | None = None,
    ) -> None:
        self.interface = interface
        self.context = context
        self.uplink = uplink
        self.requalifier = requalifier
        self.standby = standby
        self.served: Uplink | None = None  # the uplink the last kick was for

    def start(self) -> None:
        """Take the uplink as it is.  A standby's file is written at once (its miredo may start
        after the daemon and read it).  A bound tunnel whose address predates its own uplink's, or
        whose file had another address, is kicked now; an unbound one's staleness is the core's
        missed move (``NetworkState.resume``), which kicks it like any move."""
        state = self.context.state
        self.served = uplink = state.tunnel_uplink(self.interface)
        stale = None
        if self.uplink is not None and uplink is not None:
            if self.standby is not None and self.standby.follow(uplink, self.context):
                stale = f"start-up: BindAddress rewritten for {uplink.describe()}"
            elif self.interface in state.tunnels_older_than_uplink():
                stale = f"start-up: its address predates {uplink.describe()}"
        self.requalifier.start(state.tunnel_address(self.interface), stale)

    def uplink_changed(self, event: UplinkChanged, move: Move) -> None:
        """The active uplink changed: a move for an unbound instance (as every move is).  A bound
        one is judged by its own uplink's identity, and kicked for this move when its uplink is
        the new active one and moved (another router behind the same address: a move too)."""
        if self.uplink is None:
            self._follow(event.new, move, moved=True)
            return
        old, new = event.old, event.new
        if new is None or new.interface != self.uplink:
            self._follow(self.context.state.uplink_of(self.uplink), None, moved=False)
            return
        moved = old is not None and old.interface == self.uplink and not old.same_network(new)
        self._follow(self.context.state.uplink_of(self.uplink), move, moved)

    def standby_changed(self) -> None:
        """The standby uplinks changed: only an instance bound to one of them cares."""
        if self.uplink is not None:
            self._follow(self.context.state.uplink_of(self.uplink), None, moved=False)

    def _follow(self, uplink: Uplink | None, move: Move | None, moved: bool) -> None:
        if uplink is None:
            if self.served is not None:
                self.served = None
                self.requalifier.uplink_lost()
            return
        if not moved and self.served is not None and self.served.same_network(uplink):
            return
        self.served = uplink
        if self.standby is not None:
            self.standby.follow(uplink, self.context)
        self.requalifier.request(f"new uplink {uplink.interface} {uplink.address}", move)
