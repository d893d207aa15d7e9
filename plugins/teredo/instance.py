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

from orchestrator import Move, PluginContext, Uplink, UplinkChanged, writes

from . import miredo_conf
from .requalify import Requalifier
from .source_route import SourceRoute


@dataclass(frozen=True)
class Standby:
    """What a standby instance needs besides its kicks: its configuration file and source route."""

    config: Path
    route: SourceRoute

    def follow(self, uplink: Uplink, context: PluginContext) -> bool:
        """Put ``uplink`` into the file and the source route; returns whether either had to change
        (then the running miredo was not using it).  A refusal is reported, never raised: the kick
        still goes (miredo may qualify over what the kernel has)."""
        changed = False
        try:
            changed = miredo_conf.write_bind_address(self.config, str(uplink.ip))
        except (OSError, UnicodeError) as error:
            context.report(
                f"teredo: cannot write BindAddress into {self.config}: {error}", context.current_move
            )
        link = context.state.view.link_named(uplink.interface)
        written: list[writes.Operation] = []
        try:
            written = self.route.converge(uplink, link.index) if link is not None else []
        except (OSError, writes.ApplyError) as error:
            context.report(
                f"teredo: cannot keep the source route through {uplink.interface} "
                f"(table {self.route.table}): {error}",
                context.current_move,
            )
        if changed or written:
            done = [f"BindAddress {uplink.ip}"] if changed else []
            context.log.info(
                "%s follows %s: %s", self.config, uplink.describe(), "; ".join([*done, *map(repr, written)])
            )
        return changed or bool(written)


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
        self.kicked_at_start: Uplink | None = None  # a start-up kick's uplink, until the first move

    def start(self) -> None:
        """Take the uplink as it is.  A standby's file and source route are put in place at once
        (its miredo may start after the daemon and read the file); when either had to change, the
        running miredo is kicked.  A tunnel bound to a standby uplink whose address predates that
        uplink's is kicked too.  The staleness of one that follows the active uplink is the core's
        missed move (``NetworkState.resume``, from the previous run's record or creation times),
        which kicks it like any move: one SIGHUP either way."""
        state = self.context.state
        self.served = uplink = state.tunnel_uplink(self.interface)
        stale = None if uplink is None else self._stale_at_start(uplink)
        self.kicked_at_start = uplink if stale else None
        self.requalifier.start(state.tunnel_address(self.interface), stale)

    def _stale_at_start(self, uplink: Uplink) -> str | None:
        """Why the tunnel must be kicked at start-up, or None (see ``start``)."""
        state = self.context.state
        if self.standby is not None and self.standby.follow(uplink, self.context):
            return f"start-up: its BindAddress or source route was not {uplink.describe()}'s"
        if not state.follows_active(self.interface) and self.interface in state.tunnels_older_than_uplink():
            return f"start-up: its address predates {uplink.describe()}"
        return None

    def uplink_changed(self, event: UplinkChanged, move: Move) -> None:
        """The active uplink changed: a move for an unbound instance (as every move is).  A bound
        one is kicked for this move when its uplink is the new active one and it moved (another
        identity, or another router behind the same address), came back, or moved unseen (a missed
        move: ``old`` None) unless the kick start-up sent for it is still under way; otherwise it
        is judged by its own uplink's identity."""
        if self.uplink is None:
            self._follow(event.new, move, moved=True)
            return
        old, new = event.old, event.new
        if new is None or new.interface != self.uplink:
            self._follow(self.context.state.uplink_of(self.uplink), None, moved=False)
            return
        kicked, self.kicked_at_start = self.kicked_at_start, None
        if old is None:
            moved = kicked is None or not kicked.same_network(new)
        else:
            moved = old.interface == self.uplink and not old.same_network(new)
        self._follow(self.context.state.uplink_of(self.uplink), move, moved)

    def standby_changed(self) -> None:
        """The standby uplinks changed: only an instance bound to one of them cares."""
        self.kicked_at_start = None
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
