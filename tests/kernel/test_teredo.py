"""The Teredo plugin on a real kernel: real miredo and miredo-server, real dnsmasq and dhclient.

Each test runs the daemon (plugins routing + teredo) in the node of a ``TeredoLab``, with miredo
using the project's client hook.  Kicks are counted where they land: the "Reloading configuration"
lines miredo's supervisor writes on every SIGHUP.  "Nothing happened" is proven by a marker the
daemon must have seen (after the events in question), never by a sleep; no assertion is on time.
"""

from __future__ import annotations

import ipaddress

import pytest
from orchestrator_teredo.plugin import SECTION
from orchestrator_testkit.netns import wait_for
from orchestrator_testkit.orchestrator_processes import ORCHESTRATOR
from orchestrator_testkit.teredo_lab import (
    NATS,
)
from orchestrator_testkit.teredo_rig import Rig

pytestmark = pytest.mark.netns

INTERVAL_S = SECTION.keys["min_requalify_interval_s"].default  # what the tests' config keeps


def test_start_up_with_an_address_sends_nothing(rig: Rig) -> None:
    rig.sync()
    assert rig.reloads() == 0 and rig.counter("teredo_kicks") == 0
    address = rig.lab.teredo_addresses()[0]
    shown = rig.lab.node.run(*ORCHESTRATOR, "status", "--config", str(rig.config)).stdout
    assert "state: up\n" in shown and f"address: {address}\n" in shown and "teredo_kicks=0" in shown, shown


def test_each_move_gets_a_routed_new_address_with_exactly_one_sighup(rig: Rig) -> None:
    first = rig.lab.teredo_addresses()[0]
    rig.lab.move_to("nb")
    second = rig.routed({first}, "nb")
    rig.wait_state("up", "after the move to nb")
    rig.sync()
    assert rig.reloads() == 1 and rig.counter("teredo_kicks") == 1
    move = rig.daemon.status()["moves"][-1]
    assert move["outcome"] == "ok", move
    assert {"detected", "requalify-sent", "tunnel-up", "routes-applied"} <= set(move["phases"]), move
    assert move["phases"]["detected"] <= move["phases"]["requalify-sent"] <= move["phases"]["tunnel-up"]

    rig.lab.move_to("na")
    third = rig.routed({first, second}, "na")
    rig.wait_state("up", "after the move back to na")
    rig.sync()
    assert rig.reloads() == 2 and rig.counter("teredo_kicks") == 2
    assert rig.lab.teredo_addresses() == [third]


@pytest.mark.parametrize("rig", [{"renew_after": 3}], indirect=True)
def test_a_renewal_sends_nothing_and_keeps_the_address(rig: Rig) -> None:
    before = rig.lab.teredo_addresses()
    rig.lab.dhcp.renew()
    rig.sync()
    assert rig.reloads() == 0 and rig.counter("teredo_kicks") == 0
    assert rig.lab.teredo_addresses() == before and rig.teredo()["state"] == "up"


def test_same_address_and_gateway_behind_another_router_is_one_kick(rig: Rig) -> None:
    first = rig.lab.teredo_addresses()[0]
    address = rig.lab.node.addresses("eth0")
    rig.lab.carrier(False)
    rig.lab.attach("nc")  # the same subnet and gateway, another router, another NAT
    rig.lab.carrier(True)
    rig.routed({first}, "nc")
    rig.wait_state("up", "after the move to nc")
    rig.sync()
    assert rig.lab.node.addresses("eth0") == address
    assert rig.reloads() == 1 and rig.counter("teredo_kicks") == 1


@pytest.mark.parametrize("rig", [{"grace": 500}], indirect=True)
def test_no_kick_while_the_uplink_is_lost_one_when_it_is_back(rig: Rig) -> None:
    first = rig.lab.teredo_addresses()[0]
    rig.lab.carrier(False)
    state = rig.wait_state("stale", "the uplink lost after the carrier grace")
    assert state["reason"] == "no IPv4 uplink"
    assert rig.daemon.status()["uplink"] is None
    rig.sync()
    assert rig.reloads() == 0 and rig.counter("teredo_kicks") == 0
    rig.lab.carrier(True)
    rig.routed({first}, "na")
    rig.wait_state("up", "after the uplink came back")
    rig.sync()
    assert rig.reloads() == 1 and rig.counter("teredo_kicks") == 1


def test_ten_moves_within_a_second_are_bounded_by_the_interval(rig: Rig) -> None:
    """Moves made the way a DHCP client makes them (address, then default route), ten in a row as
    fast as the daemon reports them; the kicks must fit the interval and the last one must win."""
    lab = rig.lab
    first = lab.teredo_addresses()[0]
    lab.dhcp.stop()  # the test is the DHCP client now
    moves_before = len(rig.daemon.status()["moves"])
    routers = ["nb", "na"] * 5
    for count, short in enumerate(routers, start=1):
        spec = NATS[short]
        host = ipaddress.IPv4Address(spec.range_start) + 50
        lab.attach(short)
        lab.node.ip("addr", "flush", "dev", "eth0")
        lab.node.ip("addr", "add", f"{host}/{spec.prefixlen}", "dev", "eth0")
        lab.node.ip("route", "add", "default", "via", spec.gateway)
        wait_for(lambda n=count: len(rig.daemon.status()["moves"]) >= moves_before + n, 15, f"move {count}")
    moves = rig.daemon.status()["moves"][moves_before:]
    assert [m["new"]["gateway"] for m in moves] == [NATS[s].gateway for s in routers]
    rig.sync()  # every move handed to the plugin: the last kick is sent or due
    rig.wait_state("up", "after the last move")
    final = rig.routed({first}, routers[-1])
    span = moves[-1]["started"] - moves[0]["started"]
    kicks = rig.counter("teredo_kicks")
    # one kick at the first move, then at most one per interval while moves keep coming, and one
    # for the last move
    assert 2 <= kicks <= 2 + int(span / INTERVAL_S), (kicks, span)
    assert rig.reloads() == kicks
    assert rig.counter("teredo_kicks_coalesced") >= len(routers) - kicks
    assert lab.teredo_addresses() == [final]


def test_a_killed_miredo_is_reported_and_the_next_move_works_once_it_runs_again(rig: Rig) -> None:
    first = rig.lab.teredo_addresses()[0]
    rig.lab.stop_miredo()
    state = rig.wait_state("failed", "miredo stopped")
    assert "exited" in state["reason"] or "not running" in state["reason"], state
    assert rig.counter("teredo_miredo_absent") >= 1
    rig.sync()
    assert rig.counter("teredo_kicks") == 0

    rig.start_miredo()  # its init system starts it again; it qualifies on its own
    again = rig.routed({first}, "na")
    rig.wait_state("up", "miredo running again")
    reloads = rig.reloads()
    rig.lab.move_to("nb")
    rig.routed({first, again}, "nb")
    rig.wait_state("up", "after the move")
    rig.sync()
    assert rig.reloads() == reloads + 1 and rig.counter("teredo_kicks") == 1
