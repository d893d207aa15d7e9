"""The two-uplink lab works: wlan0's lease and default route (metric 200) sit beside eth0's, two
miredo clients qualify side by side, each through its own NAT (the second bound to wlan0's address
with a source rule), wlan0's carrier and lease change on demand, and the mobile node stand-in over
both tunnels hands over to ``teredo2`` when ``teredo``'s address goes.

Assertions are on kernel state and event order, never on elapsed time; timings are printed
(``pytest -s``) and attached as ``record_property``.  Measured here (kernel 6.18, miredo 1.2.6,
2 cores; min / median / max of 6 runs): ``standby_new_lease()`` 81 / 87 / 93 ms; after deleting
teredo's CoA (from before the ``ip`` command): the mobile node selects teredo2's CoA in
4.4 / 5.7 / 6.5 ms, the home agent has its BU in 5.8 / 6.5 / 7.7 ms and the BA is back in
6.2 / 7.1 / 8.1 ms; the whole file ~6 s.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from orchestrator_testkit.mip6_lab import HOME_ADDRESS, HOME_AGENT, mip6_requirements_problem
from orchestrator_testkit.standby_lab import (
    BOTH_TUNNELS,
    STANDBY_METRIC,
    STANDBY_NAT,
    STANDBY_TUNNEL_IF,
    STANDBY_UPLINK_IF,
    StandbyLab,
)
from orchestrator_testkit.teredo_lab import (
    NATS,
    TEREDO_IF,
    leaving_nothing_behind,
    miredo_client_config,
    stock_hook_path,
    teredo_client_ipv4,
)
from orchestrator_testkit.timings import report

TABLE = "200"      # the standby's table and rule, as the daemon would own them
RULE_PRIORITY = "1000"
# The stock hook adds every tunnel's default route with metric 1029: the second one fails ("File
# exists"), so this test gives teredo2 its own, as a routing profile per tunnel does.
TEREDO2_METRIC = "1030"


@pytest.fixture
def standby_lab() -> Iterator[StandbyLab]:
    """A StandbyLab; after it closes, none of its namespaces or processes (the three miredos'
    workers and the stand-ins included) may remain, and the host's hook must be untouched."""
    reason = mip6_requirements_problem()
    if reason:
        pytest.skip(reason)
    with leaving_nothing_behind(StandbyLab()) as lab:
        yield lab


def defaults(lab: StandbyLab) -> list[tuple[str, str, int]]:
    """The node's IPv4 default routes in the main table: (gateway, device, metric)."""
    return sorted((r["gateway"], r["dev"], r.get("metric", 0))
                  for r in lab.node.ip_json("-4", "route", "show", "default"))


def two_tunnels(lab: StandbyLab) -> tuple[str, str]:
    """The standby's source rule and table, a standby config bound to wlan0's address, both
    miredo clients with the stock hook; their Teredo addresses once qualified."""
    wlan = lab.standby_ip()
    lab.node.ip("rule", "add", "from", wlan, "lookup", TABLE, "pref", RULE_PRIORITY)
    lab.node.ip("route", "add", "default", "via", STANDBY_NAT.gateway, "dev", STANDBY_UPLINK_IF,
                "table", TABLE)
    lab.standby_conf.write_text(miredo_client_config(f"InterfaceName {STANDBY_TUNNEL_IF}\n"
                                                     f"BindAddress {wlan}"))
    lab.start_miredo(stock_hook_path())
    lab.launch_standby_miredo(stock_hook_path())
    first = lab.wait_teredo_routed()
    second = lab.wait_teredo_address(iface=STANDBY_TUNNEL_IF)
    return first, second


# --------------------------------------------------------------------------------------------------
# the lab
# --------------------------------------------------------------------------------------------------
@pytest.mark.netns
def test_both_uplinks_have_a_lease_and_a_default_route(standby_lab: StandbyLab) -> None:
    lab = standby_lab
    assert defaults(lab) == [(NATS["na"].gateway, "eth0", 0),
                             (STANDBY_NAT.gateway, STANDBY_UPLINK_IF, STANDBY_METRIC)]
    assert lab.node.default_route() == NATS["na"].gateway, "eth0's route (metric 0) is the kernel's choice"
    route = lab.node.ip_json("-4", "route", "get", "198.51.100.1")[0]
    assert (route["gateway"], route["dev"]) == (NATS["na"].gateway, "eth0")
    start, end = (ipaddress.IPv4Address(a) for a in (STANDBY_NAT.range_start, STANDBY_NAT.range_end))
    assert start <= ipaddress.IPv4Address(lab.standby_ip()) <= end
    assert lab.standby_gateway() == STANDBY_NAT.gateway


@pytest.mark.netns
def test_standby_miredo_without_bind_address_qualifies_through_eth0(standby_lab: StandbyLab) -> None:
    """The lab's own standby config (no BindAddress, no source rule): teredo2 comes up, mapped by
    eth0's NAT like the first client; the config file is the lab's, with teredo2."""
    lab = standby_lab
    assert not lab.standby_conf.exists()
    proc = lab.launch_standby_miredo(stock_hook_path())
    assert f"InterfaceName {STANDBY_TUNNEL_IF}" in lab.standby_conf.read_text().splitlines()
    assert lab.standby_miredo_pid() == proc.pid
    address = lab.wait_teredo_address(iface=STANDBY_TUNNEL_IF)
    assert teredo_client_ipv4(address) == NATS["na"].wan
    assert lab.teredo_addresses() == [], "the first tunnel is not started by the standby's miredo"
    lab.stop_standby_miredo()
    assert lab.standby_miredo is None and lab.teredo_ifindex(STANDBY_TUNNEL_IF) is None


@pytest.mark.netns
def test_two_miredo_clients_map_two_nats(standby_lab: StandbyLab) -> None:
    lab = standby_lab
    first, second = two_tunnels(lab)
    assert teredo_client_ipv4(first) == NATS["na"].wan
    assert teredo_client_ipv4(second) == STANDBY_NAT.wan
    assert lab.teredo_addresses() == [first] and lab.teredo_addresses(STANDBY_TUNNEL_IF) == [second]
    assert lab.miredo is not None and lab.standby_miredo is not None
    assert lab.miredo_pid() != lab.standby_miredo_pid() == lab.standby_miredo.pid
    assert f"BindAddress {lab.standby_ip()}" in lab.standby_conf.read_text().splitlines(), "config as written"
    assert lab.ping6(), "echo through teredo (eth0, na)"
    lab.node.ip("-6", "route", "add", "default", "dev", STANDBY_TUNNEL_IF, "metric", TEREDO2_METRIC)
    assert lab.ping6(iface=STANDBY_TUNNEL_IF), "echo through teredo2 (wlan0, nw)"


@pytest.mark.netns
def test_standby_carrier_and_new_lease(standby_lab: StandbyLab,
                                       record_property: Callable[[str, Any], None]) -> None:
    lab = standby_lab
    old = lab.standby_address()
    lab.standby_carrier(False)
    assert not lab.node.has_carrier(STANDBY_UPLINK_IF) and lab.node.has_carrier("eth0")
    assert lab.standby_address() == old, "the address stays without carrier"
    route = lab.node.ip_json("-4", "route", "show", "default", "dev", STANDBY_UPLINK_IF)
    assert [r["gateway"] for r in route] == [STANDBY_NAT.gateway] and "linkdown" in route[0]["flags"]
    lab.standby_carrier(True)
    assert lab.node.has_carrier(STANDBY_UPLINK_IF)

    t = time.monotonic()
    new = lab.standby_new_lease()
    report(record_property, "standby_new_lease_s", time.monotonic() - t)
    assert new != old
    assert lab.node.addresses(STANDBY_UPLINK_IF) == [new], "the old address went"
    assert defaults(lab) == [(NATS["na"].gateway, "eth0", 0),
                             (STANDBY_NAT.gateway, STANDBY_UPLINK_IF, STANDBY_METRIC)]
    assert lab.standby_new_lease() not in (old, new)


@pytest.mark.netns
def test_mobile_node_hands_over_to_the_standby_tunnel(standby_lab: StandbyLab,
                                                      record_property: Callable[[str, Any], None]) -> None:
    """Both tunnels qualified: the mobile node binds through teredo (preference 3); once teredo's
    address is deleted it selects teredo2's CoA (preference 4) and the home agent gets a BU from it,
    acknowledged back through the relay and nw's NAT."""
    lab = standby_lab
    first, second = two_tunnels(lab)
    ha = lab.start_home_agent(status=0)
    mn = lab.start_mobile_node(BOTH_TUNNELS)
    mn.wait_event("coa-selected", address=first, interface=TEREDO_IF)
    ba = mn.wait_event("ba-received", coa=first, matched=True, status=0)
    assert ha.wait_event("bu-received", seq=ba["seq"])["src"] == first

    m, h = mn.mark(), ha.mark()
    t = time.time()
    lab.delete_teredo_address(first)
    got = ha.wait_event("bu-received", since=h, src=second)
    assert (got["hoa"], got["dst"], got["checksum_ok"]) == (HOME_ADDRESS, HOME_AGENT, True)
    ba = mn.wait_event("ba-received", since=m, coa=second, matched=True, status=0)
    assert ba["interface"] == STANDBY_TUNNEL_IF and ba["seq"] == got["seq"]
    events = mn.events(since=m)
    selected = next(e for e in events if e["event"] == "coa-selected")
    assert (selected["address"], selected["interface"], selected["previous"]) == \
        (second, STANDBY_TUNNEL_IF, first)
    assert selected["trigger"] == {"kind": "del-address", "interface": TEREDO_IF, "address": first,
                                   "tentative": False}
    assert "coa-lost" not in [e["event"] for e in events]
    assert {e["coa"] for e in mn.events("bu-sent", since=m)} == {second}
    assert [e["src"] for e in ha.events("bu-received", since=h)] == [second]
    report(record_property, "delete_to_coa_selected_s", selected["time"] - t)
    report(record_property, "delete_to_ha_bu_received_s", got["time"] - t)
    report(record_property, "delete_to_ba_received_s", ba["time"] - t)
