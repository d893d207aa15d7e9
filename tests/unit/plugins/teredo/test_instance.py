"""Which miredo is kicked, which is stale, for which uplink event: each instance follows the uplink
its packets leave by, fed with recorded netlink messages and the core's own derived events."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from orchestrator_teredo.instance import Instance
from orchestrator_testkit import recorded_netlink as r
from orchestrator_testkit.configs import BOUND_INTERFACES, load, write
from orchestrator_testkit.recorded_netlink import ACTIVE_DEFAULT, ETH0, ETH1, STANDBY_DEFAULT, TWO_UPLINKS

from orchestrator import Move, NetworkState, PluginContext, UplinkChanged
from orchestrator.events import StandbyUplinksChanged
from orchestrator.moves import MoveLog


class Kicks:
    """Stands in for an instance's Requalifier: records what the instance asks of it."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def start(self, address: str | None, stale: str | None = None) -> None:
        self.calls.append(("start", stale))

    def request(self, why: str, move: Move | None) -> None:
        self.calls.append(("kick", move.id if move is not None else None))

    def uplink_lost(self) -> None:
        self.calls.append(("stale",))


class FileAndRoute:
    """Stands in for a standby's file and source route: whether they had to change."""

    def __init__(self, rewritten: bool) -> None:
        self.rewritten = rewritten

    def follow(self, uplink: object, context: object) -> bool:
        return self.rewritten


class Node:
    """The state, and the three instances: teredo bound to eth0, teredo2 to eth1, teredo3 unbound."""

    def __init__(self, tmp_path: Path, *dump: bytes, rewritten: bool = False) -> None:
        config = load(write(tmp_path, interfaces=BOUND_INTERFACES))
        prefixes = {name: "2001::/32" for name in ("teredo", "teredo2", "teredo3")}  # as the plugin declares
        config = replace(config, address_prefixes=prefixes)
        self.state: NetworkState = r.primed_state(config, *(dump or TWO_UPLINKS))
        moves = MoveLog(10.0, lambda _move, _phase: None, lambda _move: None)
        log = logging.getLogger("test.teredo")
        self.context = PluginContext("teredo", self.state.config, self.state, moves, log, Counter())
        self.kicks = {name: Kicks() for name in ("teredo", "teredo2", "teredo3")}
        standby = FileAndRoute(rewritten)
        self.instances = [
            Instance(name, self.state.config.bound_uplink(name), kicks, self.context,  # type: ignore[arg-type]
                     standby if name == "teredo2" else None)  # type: ignore[arg-type]
            for name, kicks in self.kicks.items()
        ]
        for instance in self.instances:
            instance.start()

    def feed(self, *datagrams: bytes, now: float = 1.0) -> None:
        """The derived events of ``datagrams`` as the daemon hands them to the plugin."""
        self.hand(*r.feed(self.state, *datagrams, now=now), now=now)

    def hand(self, *derived: object, now: float = 1.0) -> None:
        for event in derived:
            for instance in self.instances:
                if isinstance(event, UplinkChanged):
                    move = Move(event.move, event, 0.0, now)
                    instance.uplink_changed(event, move)
                elif isinstance(event, StandbyUplinksChanged):
                    instance.standby_changed()

    def calls(self) -> dict[str, list[tuple[Any, ...]]]:
        found = {name: kicks.calls[1:] for name, kicks in self.kicks.items()}  # after the start
        for kicks in self.kicks.values():
            del kicks.calls[1:]
        return found


@pytest.fixture
def node(tmp_path: Path) -> Node:
    return Node(tmp_path)


def test_start_up_takes_every_tunnel_as_it_is(node: Node) -> None:
    assert [kicks.calls for kicks in node.kicks.values()] == [[("start", None)]] * 3


def test_the_active_uplinks_carrier_loss_makes_its_tunnel_stale_never_the_standby(node: Node) -> None:
    node.feed(r.link(ETH0, "eth0", carrier=False))
    assert node.calls() == {"teredo": [("stale",)], "teredo2": [], "teredo3": [("kick", 1)]}
    node.feed(r.link(ETH0, "eth0"), now=1.1)  # back: the bound tunnel re-qualifies for this move
    assert node.calls() == {"teredo": [("kick", 2)], "teredo2": [], "teredo3": [("kick", 2)]}


def test_a_standby_move_kicks_only_the_tunnel_bound_to_it(node: Node) -> None:
    node.feed(r.address(ETH1, "10.3.0.100/24", deleted=True), r.route(*STANDBY_DEFAULT, deleted=True))
    assert node.calls() == {"teredo": [], "teredo2": [("stale",)], "teredo3": []}
    node.feed(r.address(ETH1, "10.3.0.142/24"), r.route(*STANDBY_DEFAULT), now=2.0)
    assert node.calls() == {"teredo": [], "teredo2": [("kick", None)], "teredo3": []}


def test_the_standby_becoming_active_is_no_move_of_its_own(node: Node) -> None:
    """eth0's lease is released: eth1 becomes the active uplink, its identity unchanged."""
    node.feed(r.address(ETH0, "10.1.0.100/24", deleted=True), r.route(*ACTIVE_DEFAULT, deleted=True))
    assert node.calls() == {"teredo": [("stale",)], "teredo2": [], "teredo3": [("kick", 1)]}


def test_at_start_a_bound_tunnel_older_than_its_uplink_is_kicked_an_unbound_one_left_to_the_core(
    tmp_path: Path,
) -> None:
    """teredo2 qualified (stamp 100) before eth1's lease (200): dead, kicked at once.  teredo3
    (unbound) predates eth0's lease too: the core's missed move kicks it, so not here (one SIGHUP)."""
    dump = (
        *TWO_UPLINKS[:1], r.address(ETH0, "10.1.0.100/24", created=500), *TWO_UPLINKS[2:4],
        r.address(ETH1, "10.3.0.100/24", created=200), *TWO_UPLINKS[5:],
        r.link(8, "teredo2"), r.address(8, "2001:0:c633:6401::2/128", created=100),
        r.link(9, "teredo3"), r.address(9, "2001:0:c633:6401::3/128", created=100),
    )
    node = Node(tmp_path, *dump)
    stale = "start-up: its address predates eth1 10.3.0.100/24 via 10.3.0.1"
    assert node.kicks["teredo2"].calls == [("start", stale)]
    assert node.kicks["teredo3"].calls == [("start", None)]
    assert node.state.tunnels_older_than_uplink() == ["teredo2", "teredo3"]


def test_a_standby_whose_file_or_route_had_to_change_is_kicked_once_at_start(tmp_path: Path) -> None:
    node = Node(tmp_path, rewritten=True)
    stale = "start-up: its BindAddress or source route was not eth1 10.3.0.100/24 via 10.3.0.1's"
    assert node.kicks["teredo2"].calls == [("start", stale)]
    assert node.kicks["teredo"].calls == [("start", None)]


def test_a_missed_move_kicks_a_tunnel_bound_to_the_active_uplink_once(tmp_path: Path) -> None:
    """teredo (bound to eth0, the active uplink) predates eth0's lease: start-up leaves it to the
    core, whose missed move (no record) kicks it, once."""
    dump = (*TWO_UPLINKS[:1], r.address(ETH0, "10.1.0.100/24", created=500), *TWO_UPLINKS[2:],
            r.link(7, "teredo"), r.address(7, "2001:0:c633:6401::1/128", created=100))
    node = Node(tmp_path, *dump)
    assert node.kicks["teredo"].calls == [("start", None)]
    node.hand(*node.state.resume(None, 1.0))
    assert node.calls() == {"teredo": [("kick", 1)], "teredo2": [], "teredo3": [("kick", 1)]}


def test_a_start_up_kick_is_not_repeated_for_the_missed_move_that_follows_it(tmp_path: Path) -> None:
    """eth1 alone, so active: teredo2's file had to change (kicked at start) and its address
    predates eth1's lease (the core's missed move): one SIGHUP, not two."""
    dump = (*TWO_UPLINKS[3:4], r.address(ETH1, "10.3.0.100/24", created=500), *TWO_UPLINKS[5:],
            r.link(8, "teredo2"), r.address(8, "2001:0:c633:6401::2/128", created=100))
    node = Node(tmp_path, *dump, rewritten=True)
    assert node.kicks["teredo2"].calls[0][1] is not None  # kicked at start
    node.hand(*node.state.resume(None, 1.0))
    assert node.calls() == {"teredo": [], "teredo2": [], "teredo3": [("kick", 1)]}
