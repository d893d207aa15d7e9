"""The orchestrator-ppp example distribution, installed by pip, on a real kernel.

A pppd stand-in (``ppp_standin``) holds a point-to-point tun named ppp0 in a lab namespace: its
IPv4 address is ``LOCAL peer PEER/32`` and the default route is ``dev ppp0`` with no gateway.  The
daemon runs with the ``ppp`` plugin (and ``routing`` for the IPv6 side); moves are read from its
status, the plugin's story from its status, counters and log, the routing policy from the kernel.
"""

from __future__ import annotations

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
from orchestrator_testkit.ppp_standin import LL_LOCAL, LL_PEER, PppStandin

pytestmark = pytest.mark.netns

A, B, C = "198.51.100.7", "198.51.100.9", "198.51.100.11"  # our addresses, one per dial
PEER_A, PEER_B = "203.0.113.1", "203.0.113.2"
G1 = "2001:db8:1::7"
TABLE, METRIC, PREFERENCE = 100, 1030, 2
HOOKS = [
    "orchestrator_check_config", "orchestrator_config_schema", "orchestrator_config_warnings",
    "orchestrator_interfaces", "orchestrator_link_changed", "orchestrator_shutdown", "orchestrator_startup",
    "orchestrator_tunnel_address_changed", "orchestrator_uplink_changed",
]
IPV6 = f"""
[ppp]
ipv6 = true
mip6_preference = {PREFERENCE}
routing_profile = "ppp"

[routing.profiles.ppp]
table = {TABLE}
source_rule = true
metric = {METRIC}
mtu = "tunnel"
follow_address = true
"""


def ppp_config(directory: Path, ppp: str = "[ppp]\n", *, enable: tuple[str, ...] = ("ppp",),
               settle: int = 300, interfaces: str = "") -> Path:
    """A configuration whose only interfaces are those the ppp plugin declares (unless given)."""
    return write(directory, enable=list(enable), settle=settle, interfaces=interfaces, extra=ppp)


@pytest.fixture
def env(examples_site: Path) -> dict[str, str]:
    return plugin_site.environment(examples_site)


# -- discovery and configuration -----------------------------------------------------------------


def test_listed_with_its_distribution_and_hooks(tmp_path: Path, env: dict[str, str]) -> None:
    config = ppp_config(tmp_path)
    listed = subprocess.run([*ORCHESTRATOR, "plugins", "--json", "--config", str(config)],
                            capture_output=True, text=True, check=True, env=env)
    ppp = next(p for p in json.loads(listed.stdout) if p["name"] == "ppp")
    assert ppp == {
        "name": "ppp", "target": "orchestrator_ppp:PLUGIN", "distribution": "orchestrator-ppp",
        "version": "0.1.0", "hooks": HOOKS, "sections": ["ppp"], "enabled": True, "error": None,
    }


def test_check_config_accepts_the_ipv6_setup(tmp_path: Path, env: dict[str, str]) -> None:
    result = check_config(ppp_config(tmp_path, IPV6, enable=("routing", "ppp")), env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("OK (plugins: routing, ppp)")
    assert result.stderr == ""


REFUSED = {
    "profile without ipv6": (
        '[ppp]\nrouting_profile = "ppp"\n[routing.profiles.ppp]\n', ("routing", "ppp"),
        "ppp.routing_profile: only a link's IPv6 side has one: set ppp.ipv6 = true, or remove it",
    ),
    "preference without ipv6": (
        "[ppp]\nmip6_preference = 2\n", ("ppp",),
        "ppp.mip6_preference: only a link's IPv6 side has one: set ppp.ipv6 = true, or remove it",
    ),
    "profile without the routing plugin": (
        '[ppp]\nipv6 = true\nrouting_profile = "ppp"\n[routing.profiles.ppp]\n', ("ppp",),
        'ppp.routing_profile: the routing plugin applies it: enable "routing"',
    ),
    "profile that does not exist": (
        '[ppp]\nipv6 = true\nrouting_profile = "nowhere"\n', ("routing", "ppp"),
        "plugin 'ppp' interfaces[0].routing_profile: no [routing.profiles.nowhere] section",
    ),
    "profile the routing plugin does not follow the address with": (
        '[ppp]\nipv6 = true\nrouting_profile = "ppp"\n[routing.profiles.ppp]\n', ("routing", "ppp"),
        "ppp.routing_profile: [routing.profiles.ppp] needs follow_address = true "
        "(no client hook runs for a PPP link)",
    ),
    "a pattern": (
        '[ppp]\ninterfaces = ["ppp*"]\n', ("ppp",),
        "ppp.interfaces: expected names (1-15 characters, no wildcard, '/', ':' or space), got ['ppp*']",
    ),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_a_wrong_configuration_is_refused(tmp_path: Path, env: dict[str, str], case: str) -> None:
    ppp, enable, problem = REFUSED[case]
    config = ppp_config(tmp_path, ppp, enable=enable)
    result = check_config(config, env)
    assert result.returncode == 2
    assert f"{config}: {problem}" in result.stderr.splitlines(), result.stderr


def test_a_file_entry_coming_first_is_warned_about(tmp_path: Path, env: dict[str, str]) -> None:
    lan = '[[interfaces]]\nmatch = "ppp*"\nrole = "lan"\n'
    config = ppp_config(tmp_path, interfaces=lan)
    result = check_config(config, env)
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        f"{config}: warning: ppp.interfaces: 'ppp0' gets role 'lan' from interfaces[0] of {config.name} "
        "(match 'ppp*'), which comes first: the ppp plugin's declaration does not apply to it"
    ]


# -- at run time --------------------------------------------------------------------------------


class Node:
    """A namespace with a PPP stand-in and the daemon."""

    def __init__(self, lab: Lab, env: dict[str, str], config: Path) -> None:
        self.ns: Namespace = lab.namespace("ppp")
        self.ppp = PppStandin(self.ns)
        self.env, self.config, self.lab = env, config, lab
        self.daemon: DaemonProcess | None = None

    def start(self) -> DaemonProcess:
        self.daemon = DaemonProcess(self.ns, self.config, self.lab.tmp / "control.sock", env=self.env)
        return self.daemon

    def status(self) -> dict[str, Any]:
        assert self.daemon is not None
        return self.daemon.status()

    def ppp0(self) -> dict[str, Any]:
        plugin = next(p for p in self.status()["plugins"] if p["name"] == "ppp")
        return dict(plugin["status"]["ppp0"])

    def moves(self) -> list[tuple[str | None, str | None]]:
        """The finished moves as (old address, new address)."""
        return [(m["old"] and m["old"]["address"], m["new"] and m["new"]["address"])
                for m in self.status()["moves"] if m["outcome"]]

    def wait_moves(self, count: int, what: str) -> list[tuple[str | None, str | None]]:
        found: list[tuple[str | None, str | None]] = wait_for(
            lambda: m if len(m := self.moves()) >= count else None, 15, what)
        assert self.daemon is not None
        self.daemon.wait_idle()
        return found

    def counters(self) -> dict[str, int]:
        return {k: v for k, v in self.status()["counters"].items() if k.startswith("ppp_") or k == "moves"}

    def log(self) -> str:
        assert self.daemon is not None
        return self.daemon.log.read_text()


def uplink(address: str) -> dict[str, Any]:
    return {"interface": "ppp0", "address": f"{address}/32", "gateway": None, "gateway_lladdr": None}


def test_quick_redials_same_address_is_nothing_new_address_is_one_move(lab: Lab, env: dict[str, str]) -> None:
    node = Node(lab, env, ppp_config(lab.tmp, settle=30_000))  # every redial here is within settle_ms
    node.ppp.dial(A, PEER_A)
    daemon = node.start()
    status = node.status()
    assert status["uplink"] == uplink(A)  # our address, never the peer; no gateway
    assert node.ppp0() == {"state": "up", "local": A, "peer": PEER_A, "dials": 1, "ipv6": None}

    node.ppp.hang_up()
    node.ppp.dial(A, PEER_A)  # the same address again
    wait_for(lambda: node.ppp0()["dials"] == 2, 15, "the plugin to see the second dial")
    wait_for(lambda: "inet table 254 0.0.0.0/0 dev ppp0 metric 0" in node.status()["state"]["routes"], 15,
             "the daemon to read the new default route")
    daemon.wait_idle()
    assert node.status()["uplink"] == uplink(A)
    assert node.counters() == {"moves": 0, "ppp_dials": 2, "ppp_hangups": 1, "ppp_redials": 0}

    node.ppp.hang_up()
    node.ppp.dial(B, PEER_B)
    assert node.wait_moves(1, "the move to B") == [(f"{A}/32", f"{B}/32")]
    move = node.status()["moves"][0]
    assert move["outcome"] == "ok" and list(move["phases"]) == ["detected", "ppp-up", "finished"]
    assert node.status()["uplink"] == uplink(B)
    assert node.ppp0() == {"state": "up", "local": B, "peer": PEER_B, "dials": 3, "ipv6": None}
    assert node.counters() == {"moves": 1, "ppp_dials": 3, "ppp_hangups": 2, "ppp_redials": 1}
    assert f"ppp0 redialled: {A} -> {B} (peer {PEER_B})" in node.log()


def test_a_default_route_via_the_peer_still_makes_our_address_the_uplink(
    lab: Lab, env: dict[str, str]
) -> None:
    node = Node(lab, env, ppp_config(lab.tmp))
    node.start()
    node.ppp.dial(A, PEER_A, via_peer=True)  # the peer is in no subnet of ours: its host route leads there
    assert node.wait_moves(1, "the return") == [(None, f"{A}/32")]
    assert node.status()["uplink"] == {**uplink(A), "gateway": PEER_A}  # no link-layer address learned


def test_slow_redial_is_a_loss_then_a_return(lab: Lab, env: dict[str, str]) -> None:
    node = Node(lab, env, ppp_config(lab.tmp, settle=200))
    node.ppp.dial(A, PEER_A)
    node.start()
    node.ppp.hang_up()
    assert node.wait_moves(1, "the loss") == [(f"{A}/32", None)]
    assert node.ppp0() == {"state": "down", "local": None, "peer": None, "dials": 1, "ipv6": None}
    node.ppp.dial(C, PEER_B)
    assert node.wait_moves(2, "the return") == [(f"{A}/32", None), (None, f"{C}/32")]
    assert node.status()["uplink"] == uplink(C)
    assert node.counters() == {"moves": 2, "ppp_dials": 2, "ppp_hangups": 1, "ppp_redials": 1}
    log = node.log()
    assert f"ppp0 hung up (was {A})" in log
    assert f"ppp0 is no longer the uplink (was {A}/32)" in log
    assert f"ppp0 redialled: {A} -> {C} (peer {PEER_B})" in log


def test_ipv6_side_is_a_tunnel_with_its_routing_profile(lab: Lab, env: dict[str, str]) -> None:
    config = ppp_config(lab.tmp, IPV6, enable=("routing", "ppp"))
    node = Node(lab, env, config)
    node.start()  # before the dial: the link's global address arrives as a change
    node.ppp.dial(A, PEER_A, ipv6=f"{G1}/64")
    ns = node.ns

    def rules() -> list[tuple[str | None, str]]:
        listed = ns.ip_json("-6", "rule", "show")
        return [(r.get("src"), r["table"]) for r in listed if r["priority"] == 32765]

    wait_for(lambda: rules() == [(G1, str(TABLE))], 15, "the profile's from-rule")
    table = [(r["dst"], r["dev"]) for r in ns.ip_json("-6", "route", "show", "table", str(TABLE))]
    assert table == [("default", "ppp0")]
    main = [r.get("metric") for r in ns.ip_json("-6", "route", "show", "default", "dev", "ppp0")]
    assert main == [METRIC]
    # The addresses and the MTU stay pppd's: the profile follows the address, it does not own it.
    assert ns.ip_json("link", "show", "dev", "ppp0")[0]["mtu"] == 1500
    ipv6 = [(a["local"], a.get("address"), a["prefixlen"])
            for a in ns.ip_json("-6", "addr", "show", "dev", "ppp0")[0]["addr_info"]]
    assert sorted(ipv6) == [(G1, None, 64), (LL_LOCAL, LL_PEER, 128)]

    status = node.status()
    assert status["tunnels"] == {"ppp0": G1}
    assert status["uplink"] == uplink(A)  # the IPv4 side is still the uplink
    assert status["counters"]["plugin_failures"] == 0
    wait_for(lambda: node.ppp0()["ipv6"] == G1, 15, "the plugin to show the IPv6 address")
    assert node.ppp0() == {"state": "up", "local": A, "peer": PEER_A, "dials": 1, "ipv6": G1}
    assert f"ppp0 IPv6 address: None -> {G1}" in node.log()

    conf = subprocess.run([*ORCHESTRATOR, "mip6d-conf", "--config", str(config)],
                          capture_output=True, text=True, env=env, check=False)
    assert conf.returncode == 0, conf.stderr
    assert f'Interface "ppp0" {{\n\tMnIfPreference {PREFERENCE};\n\tTunnel enabled;\n}}' in conf.stdout

    # pppd hangs up: the unit vanishes with its routes; the rule, which names no device, is withdrawn
    # too, and that is no failure.
    node.ppp.hang_up()
    wait_for(lambda: rules() == [], 15, "the from-rule to be withdrawn")
    assert node.daemon is not None
    node.daemon.wait_idle()
    assert node.status()["tunnels"] == {} and node.status()["counters"]["plugin_failures"] == 0
