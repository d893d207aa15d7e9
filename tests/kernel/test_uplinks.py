"""Several uplinks at once: each complete one is tracked, the kernel's choice is the active one and
the others are standby, each at its own metric (as NetworkManager or systemd-networkd install them)."""

from __future__ import annotations

from typing import Any

import pytest
from orchestrator_testkit.configs import write
from orchestrator_testkit.lab import Lab
from orchestrator_testkit.netns import Namespace, wait_for
from orchestrator_testkit.orchestrator_processes import ORCHESTRATOR, DaemonProcess, MonitorProcess

pytestmark = pytest.mark.netns

ACTIVE = {"role": "active", "interface": "eth0", "address": "10.1.0.100/24", "gateway": "10.1.0.1"}
STANDBY = {"role": "standby", "interface": "eth1", "address": "10.3.0.100/24", "gateway": "10.3.0.1"}


def node_with_two_uplinks(lab: Lab) -> tuple[Namespace, Namespace]:
    """eth0 (metric 100) and eth1 (metric 200), each a veth to a router of its own."""
    node, first, second = lab.namespace("node"), lab.namespace("rta"), lab.namespace("rtb")
    for name, router, net, metric in (("eth0", first, 1, 100), ("eth1", second, 3, 200)):
        lab.veth(node, name, router, "lan")
        router.ip("addr", "add", f"10.{net}.0.1/24", "dev", "lan")
        node.ip("addr", "add", f"10.{net}.0.100/24", "dev", name)
        node.ip("route", "add", "default", "via", f"10.{net}.0.1", "dev", name, "metric", str(metric))
    return node, second


def uplinks(daemon: DaemonProcess) -> list[dict[str, Any]]:
    keys = ("role", "interface", "address", "gateway")
    return [{key: uplink[key] for key in keys} for uplink in daemon.status()["uplinks"]]


def standby_changed_to(event: dict[str, Any], interfaces: list[str]) -> bool:
    """The monitor's standby-uplinks-changed event, naming ``interfaces``."""
    standby = [uplink["interface"] for uplink in event.get("standby", [])]
    return event["event"] == "standby-uplinks-changed" and standby == interfaces


def test_the_standby_uplink_is_shown_and_follows_its_carrier_at_once(lab: Lab) -> None:
    node, second = node_with_two_uplinks(lab)
    config = write(lab.tmp)
    daemon = DaemonProcess(node, config, lab.tmp / "control.sock")
    monitor = MonitorProcess(node, config)
    assert uplinks(daemon) == [ACTIVE, STANDBY]
    shown = node.run(*ORCHESTRATOR, "status", "--config", str(config)).stdout
    assert "uplink:   eth0 10.1.0.100/24 via 10.1.0.1\nstandby:  eth1 10.3.0.100/24 via 10.3.0.1\n" in shown
    mark = monitor.mark()
    second.ip("link", "set", "lan", "down")  # eth1 loses carrier: no grace for a standby
    monitor.wait_for(lambda e: standby_changed_to(e, []), 10, "the monitor's event: no standby", after=mark)
    wait_for(lambda: uplinks(daemon) == [ACTIVE], 10, "eth1 gone from the daemon's uplinks")
    mark = monitor.mark()
    second.ip("link", "set", "lan", "up")
    monitor.wait_for(lambda e: standby_changed_to(e, ["eth1"]), 10, "the monitor's event: eth1 back",
                     after=mark)
    wait_for(lambda: uplinks(daemon) == [ACTIVE, STANDBY], 10, "eth1 back in the daemon's uplinks")
    assert daemon.status()["moves"] == []  # the active uplink was never touched
    assert daemon.stop() == 0
