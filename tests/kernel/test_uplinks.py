"""Several uplinks at once: each complete one is tracked, the kernel's choice is the active one and
the others are standby, each at its own metric (as NetworkManager or systemd-networkd install them)."""

from __future__ import annotations

import json
import queue
import subprocess
import threading
from typing import Any

import pytest
from orchestrator_testkit.configs import write
from orchestrator_testkit.lab import Lab
from orchestrator_testkit.netns import Namespace, wait_for
from orchestrator_testkit.orchestrator_processes import ORCHESTRATOR, DaemonProcess

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


def events_of(monitor: subprocess.Popen[str]) -> queue.Queue[dict[str, Any]]:
    """The monitor's lines as they come, read by a thread of their own (a test never blocks for good
    on a line that does not come)."""
    lines: queue.Queue[dict[str, Any]] = queue.Queue()

    def read() -> None:
        assert monitor.stdout is not None
        for line in monitor.stdout:
            lines.put(json.loads(line))

    threading.Thread(target=read, daemon=True).start()
    return lines


def next_event(events: queue.Queue[dict[str, Any]]) -> dict[str, Any] | None:
    try:
        return events.get(timeout=0.2)
    except queue.Empty:
        return None


def test_the_standby_uplink_is_shown_and_follows_its_carrier_at_once(lab: Lab) -> None:
    node, second = node_with_two_uplinks(lab)
    config = write(lab.tmp)
    daemon = DaemonProcess(node, config, lab.tmp / "control.sock")
    monitor = subprocess.Popen(
        ["ip", "netns", "exec", node.name, *ORCHESTRATOR, "monitor", "--json", "--config", str(config)],
        stdout=subprocess.PIPE, text=True,
    )
    events = events_of(monitor)

    def standby_event() -> list[str] | None:
        """The interfaces of the monitor's next standby-uplinks-changed event (None: not yet)."""
        event = next_event(events)
        if event is None or event["event"] != "standby-uplinks-changed":
            return None
        return [uplink["interface"] for uplink in event["standby"]]

    try:
        assert wait_for(lambda: next_event(events), 10, "the monitor")["event"] == "ready"
        assert uplinks(daemon) == [ACTIVE, STANDBY]
        shown = node.run(*ORCHESTRATOR, "status", "--config", str(config)).stdout
        assert "uplink:  eth0 10.1.0.100/24 via 10.1.0.1\nstandby: eth1 10.3.0.100/24 via 10.3.0.1\n" in shown
        second.ip("link", "set", "lan", "down")  # eth1 loses carrier: no grace for a standby
        assert wait_for(lambda: standby_event() == [] or None, 10, "the monitor's event: no standby")
        wait_for(lambda: uplinks(daemon) == [ACTIVE], 10, "eth1 gone from the daemon's uplinks")
        second.ip("link", "set", "lan", "up")
        assert wait_for(standby_event, 10, "the monitor's event: eth1 back") == ["eth1"]
        wait_for(lambda: uplinks(daemon) == [ACTIVE, STANDBY], 10, "eth1 back in the daemon's uplinks")
        assert daemon.status()["moves"] == []  # the active uplink was never touched
    finally:
        monitor.terminate()
        monitor.wait(10)
    assert daemon.stop() == 0
