"""Which tunnels died with an uplink: the ones bound to it, or following the active uplink when that
one went.  Their addresses are dead at once (no grace: with another care-of address there is nothing
to lose by handing over early), so the plugin purges them as soon as another care-of address is
usable, and remembers the ones it could not purge yet until one is, or until their uplink is back.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from orchestrator import Config, NetworkState, Uplink


@dataclass(frozen=True)
class Lost:
    interfaces: frozenset[str]  # uplink interfaces whose complete uplink went or changed identity
    active: bool  # the active uplink is among them


@dataclass
class Dependents:
    uplinks: dict[str, Uplink] = field(default_factory=dict)  # the complete uplinks last seen
    active: Uplink | None = None
    waiting: set[str] = field(default_factory=set)  # bound tunnels dead, not purged yet

    def note(self, state: NetworkState) -> Lost:
        """What was lost since the last call; the uplinks as they are now are remembered."""
        now = {u.interface: u for u in (state.tracker.current, *state.standby) if u is not None}
        lost = frozenset(n for n, old in self.uplinks.items() if n not in now or not now[n].same_network(old))
        active_lost = self.active is not None and self.active.interface in lost
        self.uplinks, self.active = now, state.tracker.current
        return Lost(lost, active_lost)

    def dead(self, config: Config, tunnels: list[str], lost: Lost) -> list[str]:
        """Of ``tunnels``, those whose uplink is in ``lost``, and those still waiting."""
        dead = [
            name for name in tunnels
            if config.bound_uplink(name) in lost.interfaces
            or (config.bound_uplink(name) is None and lost.active)
            or name in self.waiting
        ]
        self.waiting &= set(tunnels)  # a tunnel gone (miredo stopped) waits for nothing
        return dead

    def wait(self, config: Config, names: list[str]) -> None:
        """``names`` could not be purged: the bound ones wait (an unbound one's next kick replaces
        its address)."""
        self.waiting |= {name for name in names if config.bound_uplink(name) is not None}

    def back(self, state: NetworkState) -> None:
        """A waiting tunnel whose uplink is complete again is re-qualified, not purged."""
        self.waiting = {name for name in self.waiting if state.tunnel_uplink(name) is None}
