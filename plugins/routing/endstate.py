"""The end state a profile asks of a tunnel interface, for one step of miredo's hook.

A step is miredo's (STATE, ADDRESS, LLADDRESS, MTU).  The end state is what the user's hook leaves
behind (see the README's routing section), written as data so that it can be compared with the
kernel and reached by difference.
"""

from __future__ import annotations

from .profile import Profile

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

STATES = ("up", "down", "destroy")
DEFAULT = "::"
KERNEL_DEFAULT_METRIC = 1024  # what the kernel gives an IPv6 route added without one (as ip does)


class Step:
    """One call of the client hook: miredo's variables, already validated."""

    __slots__ = ("address", "interface", "lladdress", "mtu", "state")

    def __init__(
        self,
        state: str,
        interface: str,
        address: str | None = None,
        lladdress: str | None = None,
        mtu: int | None = None,
    ) -> None:
        self.state = state
        self.interface = interface
        self.address = address
        self.lladdress = lladdress
        self.mtu = mtu


class EndState:
    """Exactly these, on the interface; ``None`` for link state or MTU means "leave as it is".

    addresses:    {(address, prefixlen)} — every IPv6 address of the interface
    routes:       {(dst, dst_len, metric)} — the main table's IPv6 routes through the interface,
                  besides those the kernel makes for the addresses themselves
    table_routes: {(dst, dst_len, metric)} — every IPv6 route of the profile's table
    rules:        {(source, prefixlen)} — the rules at ``rule_priority`` into the profile's table
    """

    __slots__ = ("addresses", "link_up", "mtu", "routes", "rules", "table_routes")

    def __init__(
        self,
        link_up: bool | None,
        mtu: int | None,
        addresses: frozenset[tuple[str, int]] = frozenset(),
        routes: frozenset[tuple[str, int, int]] = frozenset(),
        table_routes: frozenset[tuple[str, int, int]] = frozenset(),
        rules: frozenset[tuple[str, int]] = frozenset(),
    ) -> None:
        self.link_up = link_up
        self.mtu = mtu
        self.addresses = addresses
        self.routes = routes
        self.table_routes = table_routes
        self.rules = rules

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, EndState) and all(
            getattr(self, name) == getattr(other, name) for name in self.__slots__
        )

    def __repr__(self) -> str:
        return "EndState(" + ", ".join(f"{n}={getattr(self, n)!r}" for n in self.__slots__) + ")"


def end_state(profile: Profile, step: Step) -> EndState:
    """``up``: the addresses, the default route, the MTU, and (with ``source_rule`` and a table) a
    default route in the table plus a ``from ADDRESS`` rule.  ``down``: flushed and down.
    ``destroy``: flushed, link state left alone (miredo deletes the interface next)."""
    if step.state != "up":
        return EndState(link_up=False if step.state == "down" else None, mtu=None)
    assert step.address is not None and step.lladdress is not None
    mtu = step.mtu if profile.mtu == "tunnel" else int(profile.mtu)
    use_table = profile.source_rule and profile.table is not None
    return EndState(
        link_up=True,
        mtu=mtu,
        addresses=frozenset({(step.lladdress, 64), (step.address, profile.address_prefixlen)}),
        routes=frozenset({(DEFAULT, 0, profile.metric)}),
        table_routes=frozenset({(DEFAULT, 0, KERNEL_DEFAULT_METRIC)}) if use_table else frozenset(),
        rules=frozenset({(step.address, 128)}) if use_table else frozenset(),
    )
