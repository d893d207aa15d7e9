"""A daemon restarted after a crash knows what it missed: the real daemon, miredo, dnsmasq, dhclient.

The daemon is killed with SIGKILL (nothing of its shutdown runs), the node changes networks or does
not, and a new daemon starts.  The previous run's record of its uplink (beside the control socket)
tells a missed move from a healthy restart; without a record, the kernel's creation times of the
Teredo and IPv4 addresses do.  Kicks are counted where they land (miredo's "Reloading
configuration" lines); "nothing happened" is proven by the rig's marker and idle lanes.
"""

from __future__ import annotations

from typing import Any

import pytest
from orchestrator_testkit.netns import wait_for
from orchestrator_testkit.teredo_rig import Rig

from orchestrator.uplink_record import record_path

pytestmark = pytest.mark.netns


def gateway_learned(rig: Rig) -> None:
    wait_for(lambda: (rig.daemon.status()["uplink"] or {}).get("gateway_lladdr"), 15,
             "the daemon to learn the gateway's link-layer address")


def test_a_healthy_restart_sends_nothing(rig: Rig) -> None:
    first = rig.lab.teredo_addresses()[0]
    gateway_learned(rig)
    rig.daemon.kill()
    rig.restart()
    rig.wait_state("up", "the address of before the restart")
    rig.sync()
    assert rig.reloads() == 0 and rig.counter("teredo_kicks") == 0
    assert rig.lab.teredo_addresses() == [first]
    assert rig.daemon.status()["moves"] == []


def healed_after_an_unseen_move(rig: Rig, forget_record: bool = False) -> dict[str, Any]:
    """Kill the daemon, move the node to nb, start a new one: exactly one kick and a routed Teredo
    address behind nb's NAT.  Returns the move the new daemon reported."""
    first = rig.lab.teredo_addresses()[0]
    rig.daemon.kill()
    if forget_record:
        record_path(rig.daemon.socket).unlink()  # a final stop, a reboot: the runtime directory is gone
    rig.lab.move_to("nb")
    rig.restart()
    rig.routed({first}, "nb")
    rig.wait_state("up", "after the move the daemon did not see")
    rig.sync()
    assert rig.reloads() == 1 and rig.counter("teredo_kicks") == 1
    (move,) = rig.daemon.status()["moves"]
    assert move["outcome"] == "ok", move
    return dict(move)


def test_a_move_while_the_daemon_was_down_is_one_kick_at_start(rig: Rig) -> None:
    before = rig.daemon.status()["uplink"]
    move = healed_after_an_unseen_move(rig)
    assert (move["old"]["address"], move["new"]["gateway"]) == (before["address"], "10.2.0.1")


def test_the_same_address_behind_another_router_while_down_is_told_by_the_gateway(rig: Rig) -> None:
    first = rig.lab.teredo_addresses()[0]
    gateway_learned(rig)
    address = rig.lab.node.addresses("eth0")
    rig.daemon.kill()
    rig.lab.carrier(False)
    rig.lab.attach("nc")  # the same subnet and gateway, another router, another NAT
    rig.lab.carrier(True)
    rig.restart()
    rig.routed({first}, "nc")
    rig.wait_state("up", "after the router changed unseen")
    rig.sync()
    assert rig.lab.node.addresses("eth0") == address
    assert rig.reloads() == 1 and rig.counter("teredo_kicks") == 1


def test_without_a_record_a_teredo_address_older_than_the_uplink_is_stale(rig: Rig) -> None:
    move = healed_after_an_unseen_move(rig, forget_record=True)
    assert move["old"] is None and move["new"]["gateway"] == "10.2.0.1"


def test_without_a_record_a_healthy_tunnel_is_left_alone(rig: Rig) -> None:
    rig.daemon.kill()
    record_path(rig.daemon.socket).unlink()
    rig.restart()
    rig.wait_state("up", "a Teredo address younger than the uplink")
    rig.sync()
    assert rig.reloads() == 0 and rig.counter("teredo_kicks") == 0
