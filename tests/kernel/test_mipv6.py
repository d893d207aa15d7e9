"""The mipv6 plugin on a real kernel, with UMIP's documented behaviour played by stand-ins.

The lab (``mip6_lab.MipLab``) is the Teredo lab plus a home agent's site behind a real Teredo relay
(miredo as ``RelayType cone``); the mobile node and the home agent are the stand-ins of
``mip6_standins`` (this kernel has no MIPv6, and UMIP is not packaged).  The daemon runs in the node
with plugins routing, teredo and mipv6.  Assertions are on the order of events and on states, never
on elapsed time.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from orchestrator_testkit.configs import INTERFACES as SEED_INTERFACES
from orchestrator_testkit.configs import write_teredo
from orchestrator_testkit.mip6_lab import (
    HOME_ADDRESS,
    HOME_AGENT,
    NATIVE_ADDRESS,
    NATIVE_IF,
    WITH_NATIVE,
    MipLab,
    mip6_requirements_problem,
)
from orchestrator_testkit.mip6_standins import HomeAgentStandIn, MobileNodeStandIn
from orchestrator_testkit.netns import wait_for
from orchestrator_testkit.orchestrator_processes import DaemonProcess, client_hook
from orchestrator_testkit.teredo_lab import NATS, SERVER_ADDRESS, TEREDO_IF, teredo_client_ipv4

pytestmark = pytest.mark.netns

# The seed's policy (configs.INTERFACES: Ethernet first, it carries no IPv6 here, then Teredo),
# behind a native IPv6 interface that is worse than Teredo (a metered one, say) but survives an
# IPv4 loss.  It comes first so that "eth*" does not claim it.
INTERFACES = f"""\
[[interfaces]]
match = "{NATIVE_IF}"
role = "uplink"
mip6_preference = 5

""" + SEED_INTERFACES



@dataclass
class Rig:
    lab: MipLab
    daemon: DaemonProcess | None
    config: Path
    ha: HomeAgentStandIn
    mn: MobileNodeStandIn

    def status(self) -> dict[str, Any]:
        assert self.daemon is not None
        return self.daemon.status()

    def plugin(self, name: str) -> dict[str, Any]:
        return dict(next(p for p in self.status()["plugins"] if p["name"] == name)["status"])

    def last_move(self, outcome: str | None = None) -> dict[str, Any]:
        """The last move, once it ended (with ``outcome``, else the test fails showing it)."""
        def finished() -> dict[str, Any] | None:
            moves = self.status()["moves"]
            return moves[-1] if moves and moves[-1]["outcome"] else None

        move: dict[str, Any] = wait_for(finished, 30, "the move to end")
        assert outcome is None or move["outcome"] == outcome, (move, self.plugin("mipv6"), self.mn.events())
        return move


def config_for(lab: MipLab, enable: tuple[str, ...], timeout: float = 5.0) -> Path:
    mipv6 = (
        f'[mipv6]\nhome_agent = "{HOME_AGENT}"\nhome_address = "{HOME_ADDRESS}"\n'
        f"handover_timeout_s = {timeout}\n"
    )
    return write_teredo(lab.tmp, lab.miredo_pidfile, SERVER_ADDRESS, grace=500, enable=enable,
                        extra=mipv6 if "mipv6" in enable else "", interfaces=INTERFACES)


def rig_for(request: pytest.FixtureRequest) -> Iterator[Rig]:
    problem = mip6_requirements_problem()
    if problem:
        pytest.skip(problem)
    options = getattr(request, "param", {})
    enable = options.get("enable", ("routing", "teredo", "mipv6"))
    with MipLab() as lab:
        if options.get("native"):
            lab.add_native()
        config = config_for(lab, enable, options.get("timeout", 5.0))
        lab.start_miredo(client_hook(lab.tmp, config))
        first = lab.wait_teredo_routed()
        ha = lab.start_home_agent(status=options.get("status", 0))
        mn = lab.start_mobile_node(WITH_NATIVE, lifetime=options.get("lifetime", 60))
        if options.get("status", 0) == 0:
            mn.wait_event("ba-received", 15, status=0)
        assert mn.coa() == first
        daemon = DaemonProcess(lab.node, config, config.parent / "control.sock")
        rig = Rig(lab, daemon, config, ha, mn)
        yield rig
        assert daemon.stop() == 0


@pytest.fixture
def rig(request: pytest.FixtureRequest) -> Iterator[Rig]:
    yield from rig_for(request)


def test_a_move_ends_in_a_confirmed_handover_from_the_new_teredo_address(rig: Rig) -> None:
    first = rig.mn.coa()
    assert rig.plugin("mipv6")["expected_coa"] == first
    mark = rig.mn.mark()
    rig.lab.move_to("nb")
    move = rig.last_move("ok")
    assert {"requalify-sent", "tunnel-up", "bu-sent", "handover-confirmed"} <= set(move["phases"]), move
    phases = move["phases"]
    order = ("requalify-sent", "tunnel-up", "bu-sent", "handover-confirmed")
    assert [phases[name] for name in order] == sorted(phases[name] for name in order), phases
    coa = rig.plugin("mipv6")["handover_coa"]
    assert coa != first and teredo_client_ipv4(coa) == NATS["nb"].wan
    bu = rig.mn.wait_event("bu-sent", 10, since=mark, coa=coa)
    assert rig.ha.wait_event("bu-received", 10, src=coa)["seq"] == bu["seq"]
    assert rig.plugin("mipv6")["handover"] == "confirmed"
    assert rig.status()["counters"]["mipv6_handovers_confirmed"] == 1


@pytest.mark.parametrize("rig", [{"native": True}], indirect=True)
def test_ipv4_lost_the_purge_makes_mip6d_fall_back_to_native_at_once(rig: Rig) -> None:
    teredo = rig.mn.coa()
    mark = rig.mn.mark()
    rig.lab.carrier(False)
    move = rig.last_move("ok")
    assert move["new"] is None and {"coa-purged", "bu-sent", "handover-confirmed"} <= set(move["phases"])
    selected = rig.mn.wait_event("coa-selected", 10, since=mark, address=NATIVE_ADDRESS)
    assert rig.mn.wait_event("ba-received", 10, since=mark, status=0)["time"] >= selected["time"]
    assert rig.lab.teredo_addresses() == [], f"{teredo} purged by value"
    assert rig.lab.node.ip_json("-6", "addr", "show", "dev", TEREDO_IF), "the link and its link-local stay"
    assert rig.plugin("mipv6")["expected_coa"] == NATIVE_ADDRESS


@pytest.mark.parametrize(
    "rig", [{"native": True, "enable": ("routing", "teredo"), "lifetime": 4}], indirect=True
)
def test_without_the_plugin_mip6d_stays_on_the_dead_teredo_address(rig: Rig) -> None:
    """The same loss without the mipv6 plugin: the stand-in (lifetime 4 s, so it refreshes
    often) keeps refreshing its binding from the dead Teredo address after the loss."""
    teredo = rig.mn.coa()
    before = rig.mn.mark()
    rig.lab.carrier(False)
    wait_for(lambda: rig.status()["uplink"] is None, 15, "the daemon to see the loss")
    after_loss = rig.mn.mark()
    rig.mn.wait_event("bu-sent", 15, since=after_loss, coa=teredo)
    assert rig.mn.events("coa-selected", since=before) == []
    assert rig.lab.teredo_addresses() == [teredo]


@pytest.mark.parametrize("rig", [{"status": 129}], indirect=True)
def test_a_refusing_home_agent_fails_the_move_and_says_why(rig: Rig) -> None:
    rig.lab.move_to("nb")
    move = rig.last_move("failed")
    assert any("refused the binding" in problem and "status 129" in problem for problem in move["problems"])
    status = rig.plugin("mipv6")
    assert status["handover"] == "failed" and "status 129" in status["handover_problem"]
    counters = rig.status()["counters"]
    assert counters["plugin_failures"] >= 1 and counters["mipv6_requalify_asked"] == 0


@pytest.mark.parametrize("rig", [{"status": None, "timeout": 1.0}], indirect=True)
def test_a_silent_home_agent_fails_and_asks_one_requalification(rig: Rig) -> None:
    rig.lab.move_to("nb")
    move = rig.last_move("failed")
    assert any("no Binding Acknowledgement" in problem for problem in move["problems"]), move
    wait_for(lambda: rig.status()["counters"]["mipv6_requalify_asked"] == 1, 10, "the re-qualification asked")
    wait_for(lambda: rig.status()["counters"]["teredo_kicks"] == 2, 10, "the teredo plugin to kick again")
    assert rig.status()["counters"]["mipv6_requalify_asked"] == 1


def test_a_lan_interface_with_a_global_address_is_never_the_expected_coa(rig: Rig) -> None:
    node = rig.lab.node
    node.ip("link", "add", "lan0", "type", "veth", "peer", "name", "lan0p")
    node.ip("link", "set", "lan0", "up")
    node.ip("link", "set", "lan0p", "up")
    node.ip("-6", "addr", "add", "2001:db8:9::1/64", "dev", "lan0", "nodad")
    node.ip("-6", "route", "add", "default", "via", "2001:db8:9::fe", "dev", "lan0", "metric", "10", "onlink")
    wait_for(lambda: "lan0 2001:db8:9::1/64" in rig.status()["state"]["addresses"], 10, "the lan address")
    rig.lab.move_to("nb")
    rig.last_move("ok")
    assert teredo_client_ipv4(rig.plugin("mipv6")["expected_coa"]) == NATS["nb"].wan
