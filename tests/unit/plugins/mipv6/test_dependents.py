"""Which tunnels die with which uplink, and the ones that wait for another care-of address before
they can be purged: fed with recorded netlink messages through the core's state."""

from __future__ import annotations

from pathlib import Path

from orchestrator_mipv6.dependents import Dependents, Lost
from orchestrator_testkit import recorded_netlink as r
from orchestrator_testkit.configs import BOUND_INTERFACES, load, write
from orchestrator_testkit.recorded_netlink import ETH0, ETH1, TWO_UPLINKS, feed

from orchestrator import NetworkState

TUNNELS = ["teredo", "teredo2", "teredo3"]  # bound to eth0, to eth1, unbound


def two_uplinks(tmp_path: Path) -> NetworkState:
    return r.primed_state(load(write(tmp_path, interfaces=BOUND_INTERFACES)), *TWO_UPLINKS)


def test_a_standby_uplink_lost_kills_only_the_tunnel_bound_to_it(tmp_path: Path) -> None:
    state, dependents = two_uplinks(tmp_path), Dependents()
    assert dependents.note(state) == Lost(frozenset(), False)
    feed(state, r.link(ETH1, "eth1", carrier=False))
    lost = dependents.note(state)
    assert lost == Lost(frozenset({"eth1"}), False)
    assert dependents.dead(state.config, TUNNELS, lost) == ["teredo2"]


def test_the_active_uplink_lost_kills_its_bound_tunnel_and_the_unbound_ones(tmp_path: Path) -> None:
    state, dependents = two_uplinks(tmp_path), Dependents()
    dependents.note(state)
    feed(state, r.link(ETH0, "eth0", carrier=False))  # eth1 is the active uplink now
    lost = dependents.note(state)
    assert lost == Lost(frozenset({"eth0"}), True)
    assert dependents.dead(state.config, TUNNELS, lost) == ["teredo", "teredo3"]
    assert dependents.note(state) == Lost(frozenset(), False), "each loss is told once"


def test_a_bound_tunnel_waits_for_another_coa_until_its_uplink_is_back(tmp_path: Path) -> None:
    state, dependents = two_uplinks(tmp_path), Dependents()
    dependents.note(state)
    feed(state, r.link(ETH0, "eth0", carrier=False))
    dead = dependents.dead(state.config, TUNNELS, dependents.note(state))
    dependents.wait(state.config, dead)
    assert dependents.waiting == {"teredo"}, "teredo3 is kicked: its next address replaces the dead one"
    assert dependents.dead(state.config, TUNNELS, dependents.note(state)) == ["teredo"]
    gone = dependents.dead(state.config, ["teredo2"], Lost(frozenset(), False))  # teredo's link went
    assert gone == [] and not dependents.waiting, "a tunnel gone waits for nothing"
    dependents.wait(state.config, ["teredo"])
    feed(state, r.link(ETH0, "eth0"))
    dependents.back(state)
    assert dependents.waiting == set(), "back: re-qualified, not purged"
