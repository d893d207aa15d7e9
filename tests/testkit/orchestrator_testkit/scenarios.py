"""Small scenarios several tests and benches share: a node with one uplink, and moving it by hand.

The moves do exactly what dhclient-script does on a DHCP move (the new address, the old one gone,
the new default route), without a DHCP server, for tests that need many quick moves.
"""

from __future__ import annotations

from typing import Any

from .netns import Namespace, wait_for
from .orchestrator_processes import DaemonProcess

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .lab import Lab


def node_with_uplink(lab: Lab) -> Namespace:
    """A node whose eth0 (a veth to a router namespace) has 10.1.0.100/24 via 10.1.0.1."""
    node, router = lab.namespace("node"), lab.namespace("rtr")
    lab.veth(node, "eth0", router, "lan")
    router.ip("addr", "add", "10.1.0.1/24", "dev", "lan")
    router.ip("addr", "add", "10.2.0.1/24", "dev", "lan")
    node.ip("addr", "add", "10.1.0.100/24", "dev", "eth0")
    node.ip("route", "add", "default", "via", "10.1.0.1")
    return node


def move_to_second_network(node: Namespace) -> None:
    """What dhclient-script does on a move: the new address, the old one gone, the new route."""
    node.ip("addr", "add", "10.2.0.100/24", "dev", "eth0")
    node.ip("addr", "del", "10.1.0.100/24", "dev", "eth0")
    node.ip("route", "replace", "default", "via", "10.2.0.1")


def move_to_first_network(node: Namespace) -> None:
    node.ip("addr", "add", "10.1.0.100/24", "dev", "eth0")
    node.ip("addr", "del", "10.2.0.100/24", "dev", "eth0")
    node.ip("route", "replace", "default", "via", "10.1.0.1")


def finished_moves(daemon: DaemonProcess) -> list[dict[str, Any]]:
    return [m for m in daemon.status()["moves"] if m["outcome"]]


def next_move(daemon: DaemonProcess, since: int) -> dict[str, Any]:
    """The first finished move numbered above ``since``, once there is one."""
    def ended() -> dict[str, Any] | None:
        return next((m for m in finished_moves(daemon) if m["id"] > since), None)

    move: dict[str, Any] = wait_for(ended, 30, f"a move after move {since} to end")
    return move


def last_move_id(daemon: DaemonProcess) -> int:
    """The number of the daemon's newest move, finished or not (0 before the first)."""
    moves = daemon.status()["moves"]
    return int(moves[-1]["id"]) if moves else 0
