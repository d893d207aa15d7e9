"""The hot standby on a real kernel: two uplinks behind two NATs, a Teredo tunnel bound to each
(two real miredo clients), the mobile-node and home-agent stand-ins over both tunnels.

The daemon runs in the node with plugins routing, teredo and mipv6; ``teredo2`` is a
``[[teredo.standby]]`` instance whose ``BindAddress`` and source route the daemon keeps.  Losing
the preferred tunnel's uplink hands the binding over to the standby tunnel without any
re-qualification; its return hands it back once the preferred tunnel has qualified again.
Assertions are on the order of events and on the kernel's state, never on elapsed time.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from orchestrator_testkit.mip6_lab import mip6_requirements_problem
from orchestrator_testkit.mip6_standins import HomeAgentStandIn, MobileNodeStandIn
from orchestrator_testkit.netns import wait_for
from orchestrator_testkit.orchestrator_processes import DaemonProcess
from orchestrator_testkit.scenarios import last_move_id, next_move
from orchestrator_testkit.soak_checks import reloads
from orchestrator_testkit.standby_lab import (
    STANDBY_NAT,
    STANDBY_TUNNEL_IF,
    STANDBY_UPLINK_IF,
    StandbyLab,
)
from orchestrator_testkit.standby_rig import hot_standby
from orchestrator_testkit.teredo_lab import NATS, TEREDO_IF, teredo_client_ipv4

pytestmark = pytest.mark.netns

GRACE_MS = 1000
TABLE = PRIORITY = 1000  # the first standby's documented defaults


@dataclass
class Rig:
    lab: StandbyLab
    daemon: DaemonProcess
    hook: Path
    ha: HomeAgentStandIn
    mn: MobileNodeStandIn

    def status(self) -> dict[str, Any]:
        return self.daemon.status()

    def source_rules(self) -> list[dict[str, Any]]:
        rules = self.lab.node.ip_json("-4", "rule", "show")
        return [r for r in rules if r.get("priority") == PRIORITY]

    def source_routes(self) -> list[dict[str, Any]]:
        return self.lab.node.ip_json("-4", "route", "show", "table", str(TABLE))

    def bind_address(self) -> list[str]:
        lines = self.lab.standby_conf.read_text().splitlines()
        return [line for line in lines if line.startswith("BindAddress")]


def kicked(before: dict[str, int], tunnel: str) -> dict[str, int]:
    """``before`` (SIGHUPs per tunnel's miredo) with one more for ``tunnel``'s."""
    return {**before, tunnel: before[tunnel] + 1}


@pytest.fixture
def rig() -> Iterator[Rig]:
    """The daemon starts first (the standby's miredo has no pid file yet and reads the file the
    daemon wrote), then both miredo clients, the home agent and the mobile node, bound through
    the preferred tunnel."""
    problem = mip6_requirements_problem()
    if problem:
        pytest.skip(problem)
    with hot_standby(grace=GRACE_MS, handover_timeout_s=5) as standby:
        yield Rig(standby.lab, standby.daemon, standby.hook, standby.ha, standby.mn)


def test_each_tunnel_qualifies_through_its_own_nat_and_the_node_binds_through_the_preferred(rig: Rig) -> None:
    lab = rig.lab
    (primary,), (standby,) = lab.teredo_addresses(), lab.teredo_addresses(STANDBY_TUNNEL_IF)
    assert teredo_client_ipv4(primary) == NATS["na"].wan and teredo_client_ipv4(standby) == STANDBY_NAT.wan
    assert rig.mn.coa() == primary
    wlan = lab.standby_ip()
    assert rig.bind_address() == [f"BindAddress {wlan}"]
    assert [(r["src"], r["table"]) for r in rig.source_rules()] == [(wlan, str(TABLE))]
    assert [(r["dst"], r.get("gateway"), r["dev"]) for r in rig.source_routes()] == [
        ("default", lab.standby_gateway(), STANDBY_UPLINK_IF)
    ]
    status = next(p for p in rig.status()["plugins"] if p["name"] == "teredo")["status"]
    assert status["state"] == "up" and status["standby"][STANDBY_TUNNEL_IF]["state"] == "up", status
    assert [u["role"] for u in rig.status()["uplinks"]] == ["active", "standby"]


@pytest.mark.parametrize("outage_s", [0.2, 1.5], ids=["short-outage", "long-outage"])
def test_carrier_loss_hands_over_to_the_standby_and_back_without_kicking_it(
    rig: Rig, outage_s: float
) -> None:
    """The carrier comes back well within carrier_grace_ms (1 s here) or after it: with a complete
    standby the grace plays no part either way, the handover is at once."""
    lab = rig.lab
    (primary,), (standby,) = lab.teredo_addresses(), lab.teredo_addresses(STANDBY_TUNNEL_IF)
    before, mark, moves = reloads(rig), rig.mn.mark(), last_move_id(rig.daemon)
    lab.carrier(False)
    away = next_move(rig.daemon, moves)
    assert away["outcome"] == "ok" and away["new"]["interface"] == STANDBY_UPLINK_IF, away
    assert [p for p in away["phases"] if p in ("coa-purged", "bu-sent", "handover-confirmed")] == [
        "coa-purged", "bu-sent", "handover-confirmed"], away
    rig.ha.wait_event("bu-received", 10, src=standby)
    rig.mn.wait_event("ba-received", 10, since=mark, status=0)
    assert rig.mn.coa() == standby and lab.teredo_addresses() == []
    time.sleep(outage_s)  # the outage itself: shorter, then longer than carrier_grace_ms
    rig.daemon.wait_idle()  # what the loss set off has been handled
    assert reloads(rig) == before, "no SIGHUP while the preferred uplink is down, none to the standby"
    back_mark = rig.mn.mark()
    lab.carrier(True)
    back = next_move(rig.daemon, away["id"])
    assert back["outcome"] == "ok" and back["new"]["interface"] == "eth0", back
    again = lab.wait_teredo_address(exclude={primary})
    assert teredo_client_ipv4(again) == NATS["na"].wan
    rig.ha.wait_event("bu-received", 10, src=again)
    rig.mn.wait_event("ba-received", 10, since=back_mark, status=0)
    assert rig.mn.coa() == again and lab.teredo_addresses(STANDBY_TUNNEL_IF) == [standby]
    assert reloads(rig) == kicked(before, TEREDO_IF), "one kick, for the preferred tunnel only"
    assert rig.mn.events("coa-lost", since=mark) == [], "never without a care-of address"


def test_a_released_lease_hands_over_at_once_and_a_new_network_hands_back(rig: Rig) -> None:
    lab = rig.lab
    (standby,) = lab.teredo_addresses(STANDBY_TUNNEL_IF)
    before, mark, moves = reloads(rig), rig.mn.mark(), last_move_id(rig.daemon)
    lab.dhcp.release()
    away = next_move(rig.daemon, moves)
    assert away["new"]["interface"] == STANDBY_UPLINK_IF and "coa-purged" in away["phases"], away
    rig.ha.wait_event("bu-received", 10, src=standby)
    assert rig.mn.coa() == standby
    lab.move_to("nb")  # a new lease on another network
    back = next_move(rig.daemon, away["id"])
    assert back["new"]["interface"] == "eth0" and back["outcome"] == "ok", back
    (again,) = lab.teredo_addresses()
    assert teredo_client_ipv4(again) == NATS["nb"].wan
    rig.ha.wait_event("bu-received", 10, src=again)
    assert rig.mn.coa() == again and reloads(rig) == kicked(before, TEREDO_IF)
    assert rig.mn.events("coa-lost", since=mark) == [], "never without a care-of address"


def test_a_standby_move_kicks_only_its_miredo_and_its_binding_and_rule_follow(rig: Rig) -> None:
    lab = rig.lab
    (primary,), (standby,) = lab.teredo_addresses(), lab.teredo_addresses(STANDBY_TUNNEL_IF)
    before, mark = reloads(rig), rig.mn.mark()
    new = lab.standby_new_lease().split("/")[0]
    moved = lab.wait_teredo_address(iface=STANDBY_TUNNEL_IF, exclude={standby})
    assert teredo_client_ipv4(moved) == STANDBY_NAT.wan
    wait_for(lambda: reloads(rig) == kicked(before, STANDBY_TUNNEL_IF), 10,
             "one SIGHUP to the standby's miredo")
    rig.daemon.wait_idle()
    assert reloads(rig) == kicked(before, STANDBY_TUNNEL_IF), "and no other"
    assert rig.bind_address() == [f"BindAddress {new}"]
    assert [r["src"] for r in rig.source_rules()] == [new]
    assert [(r["dst"], r.get("gateway"), r["dev"]) for r in rig.source_routes()] == [
        ("default", lab.standby_gateway(), STANDBY_UPLINK_IF)
    ]
    assert lab.teredo_addresses() == [primary] and rig.mn.coa() == primary
    assert all(e["coa"] == primary for e in rig.mn.events("bu-sent", since=mark)), "the binding is untouched"


def test_a_tunnel_that_could_not_be_purged_is_once_the_standby_qualifies(rig: Rig) -> None:
    """The preferred uplink goes while the standby has no address (its miredo stopped): nothing to
    hand over to, so teredo keeps its address; the standby's miredo starting gives a care-of
    address, and teredo's dead one is purged at once."""
    lab = rig.lab
    (primary,) = lab.teredo_addresses()
    lab.stop_standby_miredo()
    moves = last_move_id(rig.daemon)
    lab.carrier(False)
    next_move(rig.daemon, moves)
    rig.daemon.wait_idle()
    assert lab.teredo_addresses() == [primary], "no other care-of address: nothing purged"
    mark = rig.mn.mark()
    lab.launch_standby_miredo(rig.hook)
    standby = lab.wait_teredo_address(iface=STANDBY_TUNNEL_IF)
    rig.ha.wait_event("bu-received", 10, src=standby)
    assert lab.teredo_addresses() == [] and rig.mn.coa() == standby
    assert rig.mn.wait_event("ba-received", 10, since=mark, status=0)["coa"] == standby


def test_a_standby_carrier_blip_requalifies_it_and_writes_nothing_else(rig: Rig) -> None:
    """Its uplink lost and back with the same lease: its tunnel was purged (the preferred one is
    valid), so it is kicked once; its file and source route were right and are left alone."""
    lab = rig.lab
    (standby,) = lab.teredo_addresses(STANDBY_TUNNEL_IF)
    before, file_before = reloads(rig), lab.standby_conf.stat()
    rules, routes = rig.source_rules(), rig.source_routes()
    written = rig.daemon.log.read_text().count(f"{lab.standby_conf} follows")  # logged when it writes
    assert written == 1, "the start-up's BindAddress and source route"
    lab.standby_carrier(False)
    wait_for(lambda: lab.teredo_addresses(STANDBY_TUNNEL_IF) == [], 10, "the standby's address purged")
    lab.standby_carrier(True)
    lab.wait_teredo_address(iface=STANDBY_TUNNEL_IF, exclude={standby})
    rig.daemon.wait_idle()
    assert reloads(rig) == kicked(before, STANDBY_TUNNEL_IF)
    file_after = lab.standby_conf.stat()
    assert (file_after.st_ino, file_after.st_mtime_ns) == (file_before.st_ino, file_before.st_mtime_ns)
    assert (rig.source_rules(), rig.source_routes()) == (rules, routes)
    assert rig.daemon.log.read_text().count(f"{lab.standby_conf} follows") == written
