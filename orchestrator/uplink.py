"""UplinkTracker: turns a stream of uplink observations into moves.

Pure logic with the clock passed in, so recorded sequences can be replayed in unit tests.  The rules
(see the README's "What counts as a move"):

- the first observation is silent: it sets the baseline, it is not a move;
- a complete uplink with a different identity than the reported one is a move, reported at once:
  the plugins that react to it (a Teredo re-qualification) are on the critical path;
- an uplink that stops being complete is only *lost* after a grace: ``carrier_grace_ms`` when the
  carrier went away (a Wi-Fi roam inside one network is not a move), ``settle_ms`` when its address
  or route went away (udhcpc's add /8, delete, add /24 and dhclient's flush-then-add are one move);
- the same identity coming back within the grace is nothing, except that after a carrier change the
  gateway's link-layer address is probed again: the same address and gateway behind a different
  router is a move;
- with another complete uplink there is no grace: ``NetworkState.observe_uplink`` observes that
  one instead of the incomplete one, which is a move at once (and the first one's return another);
- what changed while no daemon watched is a move too, reported once the plugins have started
  (``missed``; ``NetworkState.resume`` decides from the previous run's record or the kernel's
  address creation times).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from enum import Enum

from .events import GatewayLearned, Uplink, UplinkChanged


class Missing(Enum):
    """Why the uplink is not complete."""

    CARRIER = "carrier"
    ADDRESS_OR_ROUTE = "address-or-route"


@dataclass(frozen=True, slots=True)
class Observation:
    """What the kernel shows now: the candidate uplink (route + address), and whether it has carrier."""

    candidate: Uplink | None
    carrier: bool

    @property
    def complete(self) -> bool:
        return self.candidate is not None and self.carrier

    @property
    def missing(self) -> Missing:
        return Missing.ADDRESS_OR_ROUTE if self.candidate is None else Missing.CARRIER


class UplinkTracker:
    """Holds the reported uplink and the pending-loss deadline; emits UplinkChanged."""

    def __init__(self, carrier_grace_s: float, settle_s: float) -> None:
        self.carrier_grace_s = carrier_grace_s
        self.settle_s = settle_s
        self.current: Uplink | None = None
        self.loss_deadline: float | None = None
        self.probe_wanted = False
        self._primed = False
        self._carrier_lost = False
        self._moves = itertools.count(1)

    def observe(self, seen: Observation, now: float) -> list[UplinkChanged]:
        if not self._primed:
            self._primed = True
            self.current = seen.candidate if seen.complete else None
            self.probe_wanted = self._has_gateway
            return []
        if not seen.complete:
            if seen.missing is Missing.CARRIER:
                self._carrier_lost = True
            if self.current is not None:
                grace = self.carrier_grace_s if seen.missing is Missing.CARRIER else self.settle_s
                deadline = now + grace
                if self.loss_deadline is None or deadline < self.loss_deadline:
                    self.loss_deadline = deadline
            return []
        assert seen.candidate is not None
        self.loss_deadline = None
        carrier_changed, self._carrier_lost = self._carrier_lost, False
        if self.current is not None and self.current.same_network(seen.candidate):
            # Same address and gateway: after a carrier change only the gateway's link-layer
            # address can tell another router from the same one.
            self.probe_wanted = self.probe_wanted or carrier_changed
            return []
        return [self._change(seen.candidate)]

    def expire(self, now: float) -> list[UplinkChanged]:
        """Report the loss once the grace has run out (the engine calls this at ``loss_deadline``)."""
        if self.loss_deadline is None or now < self.loss_deadline:
            return []
        self.loss_deadline = None
        return [self._change(None)] if self.current is not None else []

    def possible_move(self) -> None:
        """Something may have changed unseen (an overrun hid carrier changes): probe again."""
        self.probe_wanted = self._has_gateway

    def gateway_seen(self, uplink: Uplink, lladdr: str) -> list[UplinkChanged | GatewayLearned]:
        """A probe of ``uplink``'s gateway was answered from ``lladdr``.

        A different link-layer address than the one known is a move to another router handing out
        the same addresses; otherwise the answer is reported as learned (or confirmed).
        """
        current = self.current
        if current is None or not current.same_network(uplink) or uplink.gateway is None:
            return []  # the uplink moved on while the probe ran
        learned = replace(current, gateway_lladdr=lladdr)
        if current.gateway_lladdr not in (None, lladdr):
            return [self._change(learned)]
        self.current = learned
        return [GatewayLearned(uplink.interface, uplink.gateway, lladdr)]

    def missed(self, last: Uplink | None) -> UplinkChanged:
        """A move from ``last`` (None: unknown) to the current uplink that happened unseen: while
        the daemon was not running, or hidden by a netlink overrun."""
        return UplinkChanged(old=last, new=self.current, move=next(self._moves))

    def resume(self, last: Uplink, seen: Observation, now: float) -> list[UplinkChanged]:
        """Carry on from ``last``, the uplink a previous daemon recorded, as if it had never
        stopped: another complete uplink now is a move; none is a loss after the grace (``seen``
        says which is missing), unless it comes back; the same one is nothing, and keeps the
        gateway's link-layer address last seen, so that the next probe tells another router
        handing out the same addresses apart."""
        current = self.current
        if current is None:
            self.current = last
            return self.observe(seen, now)  # incomplete: a loss deadline, nothing yet
        if not current.same_network(last):
            return [self.missed(last)]
        if current.gateway_lladdr is None and last.gateway_lladdr is not None:
            self.current = replace(current, gateway_lladdr=last.gateway_lladdr)
        return []

    def _change(self, new: Uplink | None) -> UplinkChanged:
        event = UplinkChanged(old=self.current, new=new, move=next(self._moves))
        self.current = new
        self.probe_wanted = self._has_gateway
        return event

    @property
    def _has_gateway(self) -> bool:
        return self.current is not None and self.current.gateway is not None
