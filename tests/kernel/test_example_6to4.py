"""The 6to4 example distribution (examples/orchestrator-6to4), installed by pip like a third party's.

A node's eth0 (a veth to a router namespace) moves between NATed networks (10.1.0.0/24,
192.168.7.0/24) and public ones (198.51.100.0/24, 203.0.113.0/24) the way dhclient-script moves
it: the new address, the old one removed, then the default route.  A persistent tun named tun6to4
stands in for the sit device (this kernel has no sit; ``create = false``).  After every move the
kernel shows what 6to4 allows: behind NAT no 2002:: address and the link down; on a public network
exactly 2002:WWXX:YYZZ::1/16 for W.X.Y.Z, the link up, and the routing profile's default route via
the 6to4 relay, on-link.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from orchestrator_testkit import plugin_site
from orchestrator_testkit.configs import check_config, write
from orchestrator_testkit.lab import Lab
from orchestrator_testkit.netns import Namespace, wait_for
from orchestrator_testkit.orchestrator_processes import ORCHESTRATOR, DaemonProcess
from orchestrator_testkit.scenarios import finished_moves

pytestmark = pytest.mark.netns

TUNNEL = "tun6to4"
RELAY = "::192.88.99.1"
# (router, node) addresses on the router's single LAN, one /24 per "network"
NAT_A = ("10.1.0.1", "10.1.0.100")
PUBLIC_A = ("198.51.100.1", "198.51.100.10")  # 2002:c633:640a::/48
PUBLIC_B = ("203.0.113.1", "203.0.113.20")  # 2002:cb00:7114::/48
NAT_B = ("192.168.7.1", "192.168.7.100")
NETWORKS = (NAT_A, PUBLIC_A, PUBLIC_B, NAT_B)

UPLINKS = '[[interfaces]]\nmatch = "eth*"\nrole = "uplink"\n'
SIX_TO_FOUR = f"""\
[6to4]
create = false
routing_profile = "6to4"

[routing.profiles.6to4]
follow_address = true
gateway = "{RELAY}"
mtu = 1480
"""
DOWN = {"up": False, "addresses": [], "default": []}


def up(address: str) -> dict[str, Any]:
    return {"up": True, "addresses": [address], "default": [f"via {RELAY} metric 1029 onlink"]}


class Node:
    """The node and its router; the uplink starts on ``first``."""

    def __init__(self, lab: Lab, first: tuple[str, str]) -> None:
        self.ns: Namespace = lab.namespace("node")
        router = lab.namespace("rtr")
        lab.veth(self.ns, "eth0", router, "lan")
        for gateway, _ in NETWORKS:
            router.ip("addr", "add", f"{gateway}/24", "dev", "lan")
        self.network = first
        self.ns.ip("addr", "add", f"{first[1]}/24", "dev", "eth0")
        self.ns.ip("route", "add", "default", "via", first[0])

    def move(self, network: tuple[str, str]) -> None:
        """What dhclient-script does on a new lease: the address, then the default route."""
        self.ns.ip("addr", "add", f"{network[1]}/24", "dev", "eth0")
        self.ns.ip("addr", "del", f"{self.network[1]}/24", "dev", "eth0")
        self.ns.ip("route", "replace", "default", "via", network[0])
        self.network = network

    def tunnel(self) -> dict[str, Any]:
        """The tunnel's link state, global IPv6 addresses and default routes, as `ip -j` shows them."""
        link = self.ns.ip_json("link", "show", "dev", TUNNEL)[0]
        addresses = [
            f"{a['local']}/{a['prefixlen']}"
            for entry in self.ns.ip_json("-6", "addr", "show", "dev", TUNNEL, "scope", "global")
            for a in entry.get("addr_info", [])
        ]
        default = [
            f"via {r.get('gateway')} metric {r.get('metric')}" + (" onlink" if "onlink" in r["flags"] else "")
            for r in self.ns.ip_json("-6", "route", "show", "default", "dev", TUNNEL)
        ]
        return {"up": "UP" in link["flags"], "addresses": sorted(addresses), "default": sorted(default)}


def plugin_status(daemon: DaemonProcess) -> dict[str, Any]:
    return dict(next(p for p in daemon.status()["plugins"] if p["name"] == "6to4")["status"])


def settled(daemon: DaemonProcess, moves: int) -> dict[str, Any]:
    """The last move, once ``moves`` have finished: the 6to4 plugin's part (addresses, link,
    status) is done by then, the routing plugin's follows from the address events."""
    done = wait_for(lambda: len(finished_moves(daemon)) == moves and finished_moves(daemon), 30,
                    f"move {moves} to finish")
    return dict(done[-1])


def reaches(node: Node, expected: dict[str, Any]) -> None:
    """The routes are the routing plugin's answer to the address: wait for them, not for a time."""
    wait_for(lambda: node.tunnel() == expected, 15, f"the tunnel to be {expected}")


def start(lab: Lab, node: Node, site: Path) -> DaemonProcess:
    """routing + 6to4, after their start-up (the control lane has run it empty)."""
    config = write(lab.tmp, enable=["routing", "6to4"], interfaces=UPLINKS, extra=SIX_TO_FOUR)
    daemon = DaemonProcess(node.ns, config, lab.tmp / "control.sock", env=plugin_site.environment(site))
    daemon.wait_idle()
    return daemon


def test_the_prefix_follows_the_uplink_and_is_withdrawn_behind_nat(lab: Lab, examples_site: Path) -> None:
    node = Node(lab, NAT_A)
    node.ns.ip("tuntap", "add", "dev", TUNNEL, "mode", "tun")
    node.ns.ip("link", "set", TUNNEL, "up")  # as someone else left it: start-up must take it down
    daemon = start(lab, node, examples_site)

    status = plugin_status(daemon)
    assert node.tunnel() == DOWN
    assert status["state"] == "behind-nat" and status["address"] is None
    assert status["reason"] == (
        "the uplink address 10.1.0.100 is private (behind NAT): 6to4 needs a global IPv4 address"
    )

    node.move(PUBLIC_A)
    move = settled(daemon, 1)
    reaches(node, up("2002:c633:640a::1/16"))
    assert move["outcome"] == "ok" and "6to4-configured" in move["phases"]
    status = plugin_status(daemon)
    assert (status["state"], status["uplink"], status["prefix"], status["address"]) == (
        "up", "198.51.100.10", "2002:c633:640a::/48", "2002:c633:640a::1/16"
    )

    node.move(PUBLIC_B)  # another public network: the old prefix is replaced, not added to
    settled(daemon, 2)
    reaches(node, up("2002:cb00:7114::1/16"))
    assert plugin_status(daemon)["changed"] == [
        "address del 2002:c633:640a::1/16", "address add 2002:cb00:7114::1/16"
    ]

    node.move(NAT_B)  # back behind NAT: withdrawn
    move = settled(daemon, 3)
    assert node.tunnel() == DOWN
    assert move["outcome"] == "ok" and "6to4-behind-nat" in move["phases"]
    assert plugin_status(daemon)["state"] == "behind-nat"

    node.ns.ip("route", "del", "default")  # the uplink lost
    settled(daemon, 4)
    assert node.tunnel() == DOWN and plugin_status(daemon)["state"] == "down"

    node.move(PUBLIC_A)  # a return
    settled(daemon, 5)
    reaches(node, up("2002:c633:640a::1/16"))
    counters = daemon.status()["counters"]
    assert (counters["6to4_configured"], counters["6to4_behind_nat"]) == (3, 2)
    assert counters["plugin_errors"] == counters["plugin_failures"] == 0


def test_a_stop_leaves_the_tunnel_and_a_restart_changes_nothing(lab: Lab, examples_site: Path) -> None:
    node = Node(lab, PUBLIC_A)
    node.ns.ip("tuntap", "add", "dev", TUNNEL, "mode", "tun")
    daemon = start(lab, node, examples_site)
    reaches(node, up("2002:c633:640a::1/16"))  # the routing plugin's part too (route, MTU)
    assert plugin_status(daemon)["changed"] == ["link up", "address add 2002:c633:640a::1/16"]

    assert daemon.stop() == 0
    assert node.tunnel() == up("2002:c633:640a::1/16")  # left as it is, as documented

    monitor = lab.monitor(node.ns, ("link", "address"))
    mark = monitor.mark()
    daemon = start(lab, node, examples_site)
    status = plugin_status(daemon)
    assert (status["state"], status["changed"]) == ("up", [])
    monitor.sync()
    assert [e.first_line for e in monitor.since(mark) if TUNNEL in e.text] == []

    # The routing plugin took the tunnel over again from the kernel's state: it defends the route.
    node.ns.ip("-6", "route", "del", "default", "dev", TUNNEL)
    reaches(node, up("2002:c633:640a::1/16"))
    assert daemon.status()["counters"]["routing_reasserts"] == 1


def test_without_sit_support_the_failure_is_reported_and_the_rest_keeps_working(
    lab: Lab, examples_site: Path
) -> None:
    probe = lab.namespace("probe").ip("link", "add", "t0", "type", "sit", check=False)
    assert probe.returncode != 0, "this kernel has sit: the test needs one without it"
    witness = lab.tmp / "witness.jsonl"
    site = plugin_site.build(lab.tmp / "site")  # the witness plugin records every move and error
    node = Node(lab, PUBLIC_A)
    config = write(lab.tmp, enable=["6to4", "witness"], interfaces=UPLINKS, extra="[6to4]\ncreate = true\n")
    env = plugin_site.environment(examples_site, PYTHONPATH=str(site), WITNESS_FILE=str(witness))
    daemon = DaemonProcess(node.ns, config, lab.tmp / "control.sock", env=env)
    daemon.wait_idle()

    problem = (
        "tun6to4: cannot create a sit device: this kernel has no sit (IPv6-in-IPv4) support "
        "(CONFIG_IPV6_SIT, module 'sit')"
    )
    status = plugin_status(daemon)
    assert (status["state"], status["reason"]) == ("failed", problem)
    assert daemon.status()["counters"]["plugin_failures"] == 1
    assert node.ns.ip("link", "show", TUNNEL, check=False).returncode != 0  # nothing half made

    node.move(PUBLIC_B)  # tried again on the move, reported again, and the move says why it failed
    move = settled(daemon, 1)
    assert (move["outcome"], move["problems"]) == ("failed", [problem])
    assert daemon.status()["counters"]["plugin_failures"] == 2

    node.move(NAT_A)  # the daemon and the other plugins go on as before
    move = settled(daemon, 2)
    assert move["outcome"] == "ok" and plugin_status(daemon)["state"] == "behind-nat"
    records = [json.loads(line) for line in witness.read_text().splitlines()]
    moves = [r["new"] for r in records if r["hook"] == "uplink_changed"]
    assert moves == ["203.0.113.20/24", "10.1.0.100/24"]
    assert [(r["plugin"], r["failed"], r["error"]) for r in records if r["hook"] == "on_error"] == [
        ("6to4", "report", problem), ("6to4", "report", problem)
    ]
    assert daemon.stop() == 0


def test_discovered_as_a_distribution_and_declares_its_tunnel(lab: Lab, examples_site: Path) -> None:
    env = plugin_site.environment(examples_site)
    config = write(lab.tmp, enable=["routing", "6to4"], interfaces=UPLINKS, extra=SIX_TO_FOUR)
    listed = subprocess.run([*ORCHESTRATOR, "plugins", "--json", "--config", str(config)],
                            capture_output=True, text=True, check=True, env=env)
    plugin = next(p for p in json.loads(listed.stdout) if p["name"] == "6to4")
    assert (plugin["distribution"], plugin["version"], plugin["enabled"], plugin["error"]) == (
        "orchestrator-6to4", "0.1.0", True, None
    )
    assert plugin["sections"] == ["6to4"]
    assert check_config(config, env=env).returncode == 0

    no_routing = write(lab.tmp, enable=["6to4"], interfaces=UPLINKS, extra=SIX_TO_FOUR, name="bad.toml")
    result = check_config(no_routing, env=env)
    assert result.returncode == 2
    assert '6to4.routing_profile: the "routing" plugin applies it: add it to plugins.enable' in result.stderr


@pytest.mark.parametrize(
    ("uplink", "settings", "expected"),
    [
        ("198.51.100.10", {}, "2002:c633:640a::1/16"),
        ("192.0.2.1", {"subnet": 0xBEEF, "interface_id": "::a:b", "address_prefixlen": 64},
         "2002:c000:201:beef::a:b/64"),
        ("100.63.255.255", {}, "2002:643f:ffff::1/16"),  # just below carrier-grade NAT
        ("10.0.0.1", {}, None),
        ("172.31.255.1", {}, None),
        ("100.64.0.1", {}, None),
        ("169.254.1.1", {}, None),
        ("198.51.100.10", {"nat_ranges": ["198.51.100.0/24"]}, None),  # a site's own notion of NAT
    ],
)
def test_the_address_is_derived_from_a_global_uplink_only(
    examples_site: Path, monkeypatch: pytest.MonkeyPatch, uplink: str, settings: dict[str, Any],
    expected: str | None,
) -> None:
    monkeypatch.syspath_prepend(str(examples_site))
    from orchestrator_6to4.prefix import target
    from orchestrator_6to4.settings import SECTION, Settings

    section = {name: key.default for name, key in SECTION.keys.items()} | settings
    wanted = target(ipaddress.IPv4Address(uplink), Settings.from_section(section))
    assert (str(wanted.address) if wanted.address else None) == expected
    assert wanted.state == ("up" if expected else "behind-nat")
