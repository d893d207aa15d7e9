"""The exact uplink-changed sequence for real DHCP clients against real dnsmasq, in namespaces.

Every assertion is on the order of events the real `orchestrator monitor` reports; waits are for
events, never for time.  "Nothing happened" is proven with a sync marker: a change the monitor must
report after everything that came before it has been judged.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from orchestrator_testkit.access_lab import AccessLab
from orchestrator_testkit.configs import write
from orchestrator_testkit.netns import requirements_problem
from orchestrator_testkit.orchestrator_processes import MonitorProcess, sync

pytestmark = pytest.mark.netns

GRACE_MS = 3000  # far longer than a test's carrier blip (~0.1 s), far shorter than a test


def needs(*binaries: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root for network namespaces")
    problem = requirements_problem(*binaries)
    if problem:
        pytest.skip(problem)


@pytest.fixture
def lab() -> Iterator[AccessLab]:
    needs("dnsmasq", "dhclient", "udhcpc")
    with AccessLab(renew_after=3) as access_lab:
        yield access_lab


@pytest.fixture
def monitor(lab: AccessLab) -> MonitorProcess:
    return MonitorProcess(lab.node, write(lab.tmp, grace=GRACE_MS))


def uplink(address: str, gateway: str, lladdr: str | None = None) -> dict[str, Any]:
    found = {"interface": "eth0", "address": address, "gateway": gateway}
    if lladdr is not None:
        found["gateway_lladdr"] = lladdr
    return found


def same(actual: dict[str, Any] | None, expected: dict[str, Any] | None) -> bool:
    """Compare the fields the expectation names (the link-layer address only when it names one)."""
    if actual is None or expected is None:
        return actual is expected
    return all(actual.get(key) == value for key, value in expected.items())


def assert_changes(monitor: MonitorProcess, after: int, *expected: tuple[Any, Any]) -> None:
    actual = monitor.uplink_changes(after)
    assert len(actual) == len(expected), actual
    for (old, new), (want_old, want_new) in zip(actual, expected, strict=True):
        assert same(old, want_old) and same(new, want_new), (actual, expected)


def wait_change(monitor: MonitorProcess, after: int, what: str) -> dict[str, Any]:
    return monitor.wait_for(lambda e: e["event"] == "uplink-changed", 30, what, after=after)


def wait_gateway(monitor: MonitorProcess, after: int, lladdr: str) -> None:
    monitor.wait_for(lambda e: e["event"] == "gateway" and e["lladdr"] == lladdr, 15,
                     f"the gateway to be learned at {lladdr}", after=after)


def leased(lab: AccessLab, monitor: MonitorProcess) -> str:
    """A dhclient lease from ra, reported, with the gateway's MAC learned; its address/prefix."""
    mark = monitor.mark()
    address = lab.dhclient().start()
    wait_change(monitor, mark, "the first lease")
    wait_gateway(monitor, mark, lab.router_mac("ra"))
    return address


@pytest.mark.parametrize("client_kind", ["dhclient", "udhcpc"])
def test_lease_renewal_move_release(lab: AccessLab, monitor: MonitorProcess, client_kind: str) -> None:
    client = lab.dhclient() if client_kind == "dhclient" else lab.udhcpc()
    assert monitor.ready["uplink"] is None

    mark = monitor.mark()
    first = client.start()
    wait_change(monitor, mark, "the first lease")
    sync(lab.node, monitor)
    a = uplink(first, "10.1.0.1")
    assert_changes(monitor, mark, (None, a))

    mark = monitor.mark()
    assert client.renew() == first
    sync(lab.node, monitor)
    if client_kind == "dhclient":  # udhcpc's renewal re-applies the same values: the kernel is silent
        renewal = [e for e in monitor.events()[mark:] if e["event"] == "address" and e["interface"] == "eth0"]
        assert renewal, "dhclient's renewal (fresh lifetimes) reached the kernel"
    assert_changes(monitor, mark)  # a renewal is never a move

    mark = monitor.mark()
    lab.attach("rb")
    second = client.restart()
    assert second.startswith("10.2.0.")
    wait_change(monitor, mark, "the move to rb")
    sync(lab.node, monitor)
    b = uplink(second, "10.2.0.1")
    assert_changes(monitor, mark, (a, b))  # delete-then-add, or /8-/24: one move

    mark = monitor.mark()
    client.release()
    wait_change(monitor, mark, "the release")
    sync(lab.node, monitor)
    assert_changes(monitor, mark, (b, None))


def test_carrier_blip_same_router_is_not_a_move(lab: AccessLab, monitor: MonitorProcess) -> None:
    address = leased(lab, monitor)

    mark = monitor.mark()
    lab.carrier(False)
    monitor.wait_for(lambda e: e["event"] == "link-changed" and not e["carrier"], 15, "carrier loss",
                     after=mark)
    lab.carrier(True)
    back = monitor.wait_for(lambda e: e["event"] == "link-changed" and e["carrier"], 15, "carrier back",
                            after=mark)
    # The probe after the blip is answered by the same router: a confirmation, not a move.
    wait_gateway(monitor, monitor.events().index(back), lab.router_mac("ra"))
    sync(lab.node, monitor)
    assert_changes(monitor, mark)
    assert lab.node.addresses("eth0") == [address]


def test_same_address_and_gateway_behind_another_router_is_a_move(
    lab: AccessLab, monitor: MonitorProcess
) -> None:
    address = leased(lab, monitor)
    mac_a, mac_c = lab.router_mac("ra"), lab.router_mac("rc")

    mark = monitor.mark()
    lab.carrier(False)
    lab.attach("rc")  # another hotspot handing out the same subnet and gateway
    lab.carrier(True)
    change = wait_change(monitor, mark, "the move to the other router")
    assert same(change["old"], uplink(address, "10.1.0.1", mac_a))
    assert same(change["new"], uplink(address, "10.1.0.1", mac_c))
    sync(lab.node, monitor)
    assert len(monitor.uplink_changes(mark)) == 1


def test_carrier_gone_longer_than_grace_is_a_loss_then_a_return(
    lab: AccessLab, monitor: MonitorProcess
) -> None:
    a = uplink(leased(lab, monitor), "10.1.0.1")

    mark = monitor.mark()
    lab.carrier(False)
    wait_change(monitor, mark, "the loss after the grace")
    lab.carrier(True)
    monitor.wait_for(lambda e: e["event"] == "uplink-changed" and e["old"] is None, 15,
                     "the uplink to come back", after=mark)
    sync(lab.node, monitor)
    assert_changes(monitor, mark, (a, None), (None, a))
