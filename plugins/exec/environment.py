"""What a script is told about an event: an action, the interface, and environment variables.

Names follow NetworkManager-dispatcher where one fits (``DEVICE_IFACE``, ``IP4_ADDRESS_0``,
``IP4_GATEWAY``, ``NM_DISPATCHER_ACTION``'s actions ``up``/``down``), so a dispatcher script needs few
changes; the rest are ``ORCH_*``.  A variable that has no value for an event is absent, never empty.
The daemon's own environment is not passed on: a script gets ``PATH``, ``LANG`` and these.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from orchestrator import LinkChanged, Move, TunnelAddressChanged, Uplink, UplinkChanged

BASE = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}


@dataclass(frozen=True)
class Invocation:
    """One event as the scripts see it.  ``interfaces``: every interface it concerns (both ends of a
    move), matched against an entry's ``interfaces``; ``interface`` is the one passed as $1."""

    event: str
    action: str
    interface: str
    interfaces: tuple[str, ...]
    variables: dict[str, str] = field(default_factory=dict)

    def environment(self) -> dict[str, str]:
        return {
            **BASE,
            "ORCH_EVENT": self.event,
            "ORCH_ACTION": self.action,
            "DEVICE_IFACE": self.interface,
            **self.variables,
        }


def _change(old: object, new: object) -> str:
    if old is None:
        return "up"
    return "down" if new is None else "change"


def _uplink(prefix: str, uplink: Uplink | None) -> dict[str, str]:
    """``IP4_*`` (NetworkManager's ``address/prefix gateway``) for the new uplink, ``ORCH_OLD_*`` for
    the one left."""
    if uplink is None:
        return {}
    gateway = uplink.gateway or ""
    if prefix == "new":
        found = {"IP4_NUM_ADDRESSES": "1", "IP4_ADDRESS_0": f"{uplink.address} {gateway or '0.0.0.0'}"}
        return {**found, "IP4_GATEWAY": gateway} if gateway else found
    found = {"ORCH_OLD_IFACE": uplink.interface, "ORCH_OLD_ADDRESS": uplink.address}
    return {**found, "ORCH_OLD_GATEWAY": gateway} if gateway else found


def uplink_changed(event: UplinkChanged, move: Move) -> Invocation:
    current = event.new or event.old
    assert current is not None  # an uplink change has at least one side
    ends = tuple(dict.fromkeys(u.interface for u in (event.new, event.old) if u is not None))
    variables = {"ORCH_MOVE": str(move.id), **_uplink("new", event.new), **_uplink("old", event.old)}
    return Invocation("uplink-changed", _change(event.old, event.new), current.interface, ends, variables)


def tunnel_address_changed(event: TunnelAddressChanged) -> Invocation:
    variables = {}
    if event.new is not None:
        variables["ORCH_ADDRESS"] = event.new
    if event.old is not None:
        variables["ORCH_OLD_ADDRESS"] = event.old
    action = _change(event.old, event.new)
    return Invocation("tunnel-address-changed", action, event.interface, (event.interface,), variables)


def link_changed(event: LinkChanged) -> Invocation:
    flags = {"ORCH_LINK_UP": event.up, "ORCH_CARRIER": event.carrier, "ORCH_PRESENT": event.present}
    variables = {name: "1" if value else "0" for name, value in flags.items()}
    action = "up" if event.present and event.up and event.carrier else "down"
    return Invocation("link-changed", action, event.interface, (event.interface,), variables)


def move_finished(move: Move) -> Invocation:
    uplink = move.event.new or move.event.old
    interface = uplink.interface if uplink is not None else ""
    variables = {"ORCH_MOVE": str(move.id), "ORCH_OUTCOME": move.outcome or ""}
    if move.problems:
        variables["ORCH_PROBLEMS"] = "; ".join(move.problems)
    if "finished" in move.phases:
        variables["ORCH_DURATION_MS"] = f"{move.phases['finished'] * 1000:.0f}"
    return Invocation("move-finished", move.outcome or "", interface, (interface,), variables)
