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
    """Exactly these, on the interface; ``None`` for link state, MTU, addresses or routes means
    "leave as it is".

    addresses:    {(address, prefixlen)} — every IPv6 address of the interface
    routes:       {(dst, dst_len, metric)} — the main table's IPv6 routes through the interface,
                  besides those the kernel makes for the addresses themselves
    table_routes: {(dst, dst_len, metric)} — every IPv6 route of the profile's table
    rules:        {(source, prefixlen)} — the rules at ``rule_priority`` into the profile's table
    gateway:      the next hop of every route above, on-link through the interface (6to4's relay
                  ``::192.88.99.1``); None: the routes point straight into the interface
    """

    __slots__ = ("addresses", "gateway", "link_up", "mtu", "routes", "rules", "table_routes")

    def __init__(
        self,
        link_up: bool | None,
        mtu: int | None,
        addresses: frozenset[tuple[str, int]] | None = frozenset(),
        routes: frozenset[tuple[str, int, int]] | None = frozenset(),
        table_routes: frozenset[tuple[str, int, int]] | None = frozenset(),
        rules: frozenset[tuple[str, int]] = frozenset(),
        gateway: str | None = None,
    ) -> None:
        self.link_up = link_up
        self.mtu = mtu
        self.addresses = addresses
        self.routes = routes
        self.table_routes = table_routes
        self.rules = rules
        self.gateway = gateway

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, EndState) and all(
            getattr(self, name) == getattr(other, name) for name in self.__slots__
        )

    def __repr__(self) -> str:
        return "EndState(" + ", ".join(f"{n}={getattr(self, n)!r}" for n in self.__slots__) + ")"


def end_state(profile: Profile, step: Step) -> EndState:
    """``up``: the addresses, the default route (via the profile's gateway, if any), the MTU, and
    (with ``source_rule`` and a table) a default route in the table plus a ``from ADDRESS`` rule.
    ``down``: flushed and down.
    ``destroy``: the profile's rules withdrawn; the rest is left to the kernel, which removes the
    addresses and every route through the link with it (miredo deletes the interface next).
    A profile that follows the address (``follow_address``: no client hook drives the tunnel, its
    own plugin owns the addresses and the link) leaves both alone: only the routes, the rule and
    the MTU are its own, and ``step.lladdress`` is not needed."""
    follows = profile.follow_address
    if step.state == "destroy" and not follows:
        return EndState(link_up=None, mtu=None, addresses=None, routes=None, table_routes=None)
    if step.state != "up":
        link_up = False if step.state == "down" and not follows else None
        return EndState(link_up=link_up, mtu=None, addresses=None if follows else frozenset())
    assert step.address is not None
    addresses = None
    if not follows:
        assert step.lladdress is not None
        addresses = frozenset({(step.lladdress, 64), (step.address, profile.address_prefixlen)})
    mtu = step.mtu if profile.mtu == "tunnel" else int(profile.mtu)
    use_table = profile.source_rule and profile.table is not None
    return EndState(
        link_up=None if follows else True,
        mtu=mtu,
        addresses=addresses,
        routes=frozenset({(DEFAULT, 0, profile.metric)}),
        table_routes=frozenset({(DEFAULT, 0, KERNEL_DEFAULT_METRIC)}) if use_table else frozenset(),
        rules=frozenset({(step.address, 128)}) if use_table else frozenset(),
        gateway=profile.gateway,
    )
