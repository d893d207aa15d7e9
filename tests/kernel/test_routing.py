"""The routing profiles through the real client hook, on a tun named `teredo` in a namespace.

Expected kernel states are data below, derived from what the user's hook (and, for the upstream
variant, miredo's stock Linux hook) leaves behind after each step: addresses with prefix lengths,
IPv6 routes through the tunnel in the main table (the kernel's own prefix routes included), the
profile table's routes, the rules at the profile's priority, link state and MTU.

Every path a run can take must leave the same state: the generated shell hook miredo runs
("shell") and the full hook it hands unusual runs to ("full", run here directly).
"""

from __future__ import annotations

import json
import marshal
import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from orchestrator_testkit import plugin_site
from orchestrator_testkit.configs import write
from orchestrator_testkit.lab import Lab
from orchestrator_testkit.netns import Namespace, wait_for
from orchestrator_testkit.orchestrator_processes import DaemonProcess, client_hook, full_hook_command
from orchestrator_testkit.teredo_lab import TeredoLab, teredo_requirements_problem

pytestmark = pytest.mark.netns

A1 = "2001:0:c633:6401:8000:f227:9c3a:73f0"
A2 = "2001:0:c633:6401:8000:f227:9c3a:73f1"
A3 = "2001:0:c633:6401:8000:f227:9c3a:73f2"
LL = "fe80::ffff:ffff:ffff"
TABLE = 100

USER = "[routing.profiles.teredo]\n"  # the defaults are the user's hook
UPSTREAM = (  # miredo's stock Linux hook, with a table
    f"[routing.profiles.teredo]\ntable = {TABLE}\n"
    'mtu = "tunnel"\naddress_prefixlen = 32\nsource_rule = true\n'
)


def user_up(address: str) -> dict[str, Any]:
    return {
        "up": True,
        "mtu": 1400,
        "addresses": sorted([f"{address}/128", f"{LL}/64"]),
        "routes": sorted(
            [f"{address} metric 256 kernel", "default metric 1029", "fe80::/64 metric 256 kernel"]
        ),
        "table": [],
        "rules": [],
    }


def upstream_up(address: str) -> dict[str, Any]:
    return {
        "up": True,
        "mtu": 1280,  # the tunnel's own (MTU from miredo)
        "addresses": sorted([f"{address}/32", f"{LL}/64"]),
        "routes": sorted(
            ["2001::/32 metric 256 kernel", "default metric 1029", "fe80::/64 metric 256 kernel"]
        ),
        "table": ["default dev teredo metric 1024"],
        "rules": [f"from {address} table {TABLE}"],
    }


def flushed(up: bool, mtu: int) -> dict[str, Any]:
    return {"up": up, "mtu": mtu, "addresses": [], "routes": [], "table": [], "rules": []}


PATHS = ["shell", "full"]


class Tunnel:
    """A tun named teredo in its own namespace, and the generated client hook for a profile;
    ``path`` "full" runs the full hook directly, as the shell hook hands a run to it."""

    def __init__(self, lab: Lab, profile: str, path: str = "shell") -> None:
        self.ns: Namespace = lab.namespace("tun")
        self.ns.ip("tuntap", "add", "dev", "teredo", "mode", "tun")
        self.config = write(
            lab.tmp, enable=["routing", "teredo"], extra=f"{profile}[teredo]\n", tunnel_profile="teredo"
        )
        self.hook = client_hook(lab.tmp, self.config)
        self.command = [str(self.hook)]
        if path == "full":
            self.command = full_hook_command(lab.tmp, self.config, self.hook)
        self.lab = lab

    def run(self, **variables: str) -> subprocess.CompletedProcess[str]:
        """Run the hook as miredo does: an empty environment but for miredo's variables, in /."""
        env = [f"{name}={value}" for name, value in variables.items()]
        return self.ns.run("env", "-i", *env, *self.command, check=False)

    def up(self, address: str, old: str | None = None, mtu: str = "1280") -> None:
        variables = {"STATE": "up", "IFACE": "teredo", "ADDRESS": address, "LLADDRESS": LL, "MTU": mtu}
        if old:
            variables["OLD_ADDRESS"] = old
        result = self.run(**variables)
        assert result.returncode == 0, result.stderr

    def state(self) -> dict[str, Any]:
        return tunnel_state(self.ns)


def tunnel_state(ns: Namespace) -> dict[str, Any]:
    """The tunnel as `ip -j` shows it, in the shape of the expected states above."""
    link = ns.ip_json("link", "show", "dev", "teredo")[0]
    addresses = [
        f"{a['local']}/{a['prefixlen']}"
        for entry in ns.ip_json("-6", "addr", "show", "dev", "teredo")
        for a in entry.get("addr_info", [])
    ]
    routes = []
    for r in ns.ip_json("-6", "route", "show", "dev", "teredo"):
        kernel = " kernel" if r.get("protocol") == "kernel" else ""
        routes.append(f"{r['dst']} metric {r.get('metric', 0)}{kernel}")
    return {
        "up": "UP" in link["flags"],
        "mtu": link["mtu"],
        "addresses": sorted(addresses),
        "routes": sorted(routes),
        **table_and_rules(ns),
    }


def table_and_rules(ns: Namespace) -> dict[str, list[str]]:
    """The profile table's routes and the rules at the profile's priority: what names no tunnel."""
    listed = ns.ip("-j", "-6", "route", "show", "table", str(TABLE), check=False)
    exists = listed.returncode == 0 and listed.stdout.strip()  # a table with no route does not exist
    table_routes = json.loads(listed.stdout) if exists else []
    table = [f"{r['dst']} dev {r['dev']} metric {r.get('metric', 0)}" for r in table_routes]
    rules = [
        f"from {r.get('src', 'all')} table {r['table']}"
        for r in ns.ip_json("-6", "rule", "show")
        if r.get("priority") == 32765
    ]
    return {"table": sorted(table), "rules": sorted(rules)}


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(
    ("variant", "up_state"), [(USER, user_up), (UPSTREAM, upstream_up)], ids=["user", "upstream"]
)
def test_end_state_of_every_step(lab: Lab, variant: str, up_state: Any, path: str) -> None:
    tunnel = Tunnel(lab, variant, path)
    tunnel.up(A1)
    assert tunnel.state() == up_state(A1)
    tunnel.up(A2, old=A1)  # a new address, miredo says which was the old one
    assert tunnel.state() == up_state(A2)
    tunnel.up(A3)  # after miredo restarted: no OLD_ADDRESS, the rule for A2 must not leak
    assert tunnel.state() == up_state(A3)
    mtu = up_state(A3)["mtu"]
    assert tunnel.run(STATE="down", IFACE="teredo", OLD_ADDRESS=A3).returncode == 0
    assert tunnel.state() == flushed(up=False, mtu=mtu)
    tunnel.up(A1)
    assert tunnel.run(STATE="destroy", IFACE="teredo", OLD_ADDRESS=A1).returncode == 0
    assert tunnel.state()["rules"] == []  # a rule names no device: it would outlive the link
    tunnel.ns.ip("link", "del", "teredo")  # what miredo does next: the kernel takes the rest along
    assert table_and_rules(tunnel.ns) == {"table": [], "rules": []}


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("variant", [USER, UPSTREAM], ids=["user", "upstream"])
def test_applying_the_same_step_twice_writes_nothing(lab: Lab, variant: str, path: str) -> None:
    tunnel = Tunnel(lab, variant, path)
    tunnel.up(A1)
    monitor = lab.monitor(tunnel.ns, ("link", "address", "route", "rule"))
    mark = monitor.mark()
    tunnel.up(A1)
    monitor.sync()
    assert monitor.since(mark) == []


BAD_INPUTS = [
    {"STATE": "sideways"},
    {"STATE": "up;reboot"},
    {"IFACE": ""},
    {"IFACE": "lo"},  # exists, but not a tunnel in the configuration
    {"IFACE": "teredo$(reboot)"},
    {"IFACE": "../../etc"},
    {"ADDRESS": "2001:db8::1"},  # not a Teredo address
    {"ADDRESS": f"{A1}; ip link del teredo"},
    {"ADDRESS": "`reboot`"},
    {"LLADDRESS": "2001:0::1"},  # not link-local
    {"LLADDRESS": "fe80::1 && reboot"},
    {"MTU": "1279"},
    {"MTU": "65536"},
    {"MTU": "1400 mtu 9000"},
    {"MTU": "\u0661\u0664\u0660\u0660"},  # Arabic-Indic digits: not ASCII
]


@pytest.mark.parametrize("bad", BAD_INPUTS, ids=[repr(b) for b in BAD_INPUTS])
def test_bad_input_changes_nothing(lab: Lab, bad: dict[str, str]) -> None:
    tunnel = Tunnel(lab, UPSTREAM)
    tunnel.up(A1)
    before = tunnel.state()
    variables = {"STATE": "up", "IFACE": "teredo", "ADDRESS": A2, "LLADDRESS": LL, "MTU": "1280", **bad}
    result = tunnel.run(**variables)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    (name,) = bad
    assert result.stderr.startswith(f"orchestrator hook: {name}: "), result.stderr
    assert tunnel.state() == before


def test_other_variables_are_untrusted_text_never_read(lab: Lab) -> None:
    tunnel = Tunnel(lab, UPSTREAM)
    junk = {"OLD_ADDRESS": "$(reboot)", "OLD_STATE": "`id`", "IFINDEX": "; rm -rf /", "OLD_MTU": "x"}
    result = tunnel.run(STATE="up", IFACE="teredo", ADDRESS=A1, LLADDRESS=LL, MTU="1280", **junk)
    assert result.returncode == 0, result.stderr
    assert tunnel.state() == upstream_up(A1)


UNSAFE = [  # the shell hook can only check owners (a mode costs a program start on every run)
    ("shell", "hook not root's"),
    ("shell", "config not root's"),
    ("full", "hook world-writable"),
    ("full", "hook not root's"),
    ("full", "config world-writable"),
    ("full", "config directory world-writable"),
]


@pytest.mark.parametrize(("path", "unsafe"), UNSAFE)
def test_unsafe_files_are_refused(lab: Lab, path: str, unsafe: str) -> None:
    tunnel = Tunnel(lab, USER, path)
    tunnel.up(A1)
    before = tunnel.state()
    if unsafe == "hook world-writable":
        tunnel.hook.chmod(0o777)
    elif unsafe == "hook not root's":
        os.chown(tunnel.hook, 65534, 65534)
    elif unsafe == "config not root's":
        os.chown(tunnel.config, 65534, 65534)
    elif unsafe == "config directory world-writable":
        tunnel.config.parent.chmod(0o777)
    else:
        tunnel.config.chmod(0o666)
    result = tunnel.run(STATE="up", IFACE="teredo", ADDRESS=A2, LLADDRESS=LL, MTU="1280")
    assert result.returncode == 2
    assert "refusing to run" in result.stderr
    assert tunnel.state() == before


class Defended:
    """The upstream variant's tunnel with the daemon running beside it.

    The daemon may enable test plugins the client hook cannot see (they come from a private
    PYTHONPATH), so it reads its own copy of the configuration, with the same sockets.
    """

    def __init__(self, lab: Lab, enable: tuple[str, ...] = ()) -> None:
        self.tunnel = Tunnel(lab, UPSTREAM)
        site = plugin_site.build(lab.tmp / "site")
        config = write(
            lab.tmp,
            enable=["routing", "teredo", *enable],
            extra=f"{UPSTREAM}[teredo]\n",
            tunnel_profile="teredo",
            daemon="move_timeout_s = 60",
            name="daemon.toml",
        )
        self.daemon = DaemonProcess(
            self.tunnel.ns, config, lab.tmp / "control.sock", env=plugin_site.environment(site)
        )

    def sync(self) -> None:
        """Add and remove a marker route and wait until the daemon's state has seen both: netlink
        is read in order and removals are judged as they are read, so all before it is judged."""
        marker = "inet6 table 254 2001:db8:ffff::/64 dev lo metric 1024"

        def listed() -> bool:
            return marker in self.daemon.status()["state"]["routes"]

        self.tunnel.ns.ip("-6", "route", "add", "2001:db8:ffff::/64", "dev", "lo")
        wait_for(listed, 15, "the marker route in the daemon's state")
        self.tunnel.ns.ip("-6", "route", "del", "2001:db8:ffff::/64", "dev", "lo")
        wait_for(lambda: not listed(), 15, "the marker route gone from the daemon's state")

    def mark(self, alias: str) -> None:
        """Mark a run as the client hook does: in the tunnel's alias."""
        self.tunnel.ns.ip("link", "set", "dev", "teredo", "alias", alias)

    def counter(self, name: str) -> int:
        return int(self.daemon.status()["counters"].get(name, 0))

    def restored(self, address: str) -> dict[str, Any]:
        return wait_for(lambda: self.tunnel.state() == upstream_up(address), 15, "the end state back")


def test_removed_rule_and_routes_are_restored(lab: Lab) -> None:
    defended = Defended(lab)
    ns = defended.tunnel.ns
    defended.tunnel.up(A1)
    ns.ip("-6", "rule", "del", "from", A1, "prio", "32765", "table", str(TABLE))
    defended.restored(A1)
    ns.ip("-6", "route", "del", "default", "dev", "teredo", "metric", "1029")
    defended.restored(A1)
    ns.ip("-6", "route", "del", "default", "dev", "teredo", "table", str(TABLE))
    defended.restored(A1)
    assert defended.counter("routing_reasserts") == 3


def test_no_storm_while_the_hook_changes_the_tunnel(lab: Lab) -> None:
    defended = Defended(lab)
    previous = None
    for address in (A1, A2, A3, A1, A2):
        defended.tunnel.up(address, old=previous)
        previous = address
    # The hook's own removals are never "repaired"; one removal from outside is, once.
    defended.tunnel.ns.ip("-6", "rule", "del", "from", A2, "prio", "32765", "table", str(TABLE))
    defended.restored(A2)
    assert defended.counter("routing_reasserts") == 1


def test_nothing_is_restored_while_the_hook_runs(lab: Lab) -> None:
    """The hook's begin and end markers, set by hand around a removal: deterministic, not a race."""
    defended = Defended(lab)
    ns = defended.tunnel.ns
    defended.tunnel.up(A1)
    defended.mark("orchestrator hook: applying up")
    ns.ip("-6", "rule", "del", "from", A1, "prio", "32765", "table", str(TABLE))
    defended.sync()  # the removal has been judged
    assert defended.counter("routing_reasserts") == 0
    assert defended.tunnel.state()["rules"] == []
    defended.mark(f"orchestrator hook: up {A1} {LL} 1280")
    ns.ip("-6", "route", "del", "default", "dev", "teredo", "metric", "1029")
    defended.restored(A1)  # the route, and the rule the hook's run had left missing
    assert defended.counter("routing_reasserts") == 1


def test_nothing_is_restored_on_a_stale_tunnel(lab: Lab) -> None:
    defended = Defended(lab)
    ns = defended.tunnel.ns
    defended.tunnel.up(A1)
    assert defended.tunnel.run(STATE="down", IFACE="teredo", OLD_ADDRESS=A1).returncode == 0
    ns.ip("-6", "rule", "add", "from", A1, "prio", "32765", "table", str(TABLE))
    ns.ip("-6", "rule", "del", "from", A1, "prio", "32765", "table", str(TABLE))
    defended.sync()  # the rule's removal has been judged
    assert defended.tunnel.state() == flushed(up=False, mtu=1280)
    assert defended.counter("routing_reasserts") == 0


def test_a_move_records_when_the_routes_were_applied(lab: Lab) -> None:
    defended = Defended(lab, enable=("holder",))  # keeps each move open
    ns = defended.tunnel.ns
    peer = lab.namespace("peer")
    lab.veth(ns, "eth0", peer, "lan")
    ns.ip("addr", "add", "10.1.0.100/24", "dev", "eth0")
    ns.ip("route", "add", "default", "via", "10.1.0.1")
    wait_for(lambda: defended.daemon.status()["moves"], 15, "the move")
    defended.tunnel.up(A1)
    phases = wait_for(
        lambda: (m := defended.daemon.status()["moves"][-1])["phases"].get("routes-applied") and m["phases"],
        15,
        "the routes-applied phase",
    )
    assert phases["detected"] <= phases["routes-applied"]


def without_kernel_link_local(state: dict[str, Any]) -> dict[str, Any]:
    """miredo's tun has carrier, so the kernel adds a link-local address of its own when the hook
    brings the link up (after the hook's flush, as with the user's script); it is not the profile's."""
    addresses = [a for a in state["addresses"] if not a.startswith("fe80:") or a == f"{LL}/64"]
    return {**state, "addresses": addresses}


def test_real_miredo_through_the_client_hook_reaches_the_end_state() -> None:
    problem = teredo_requirements_problem()
    if problem:
        pytest.skip(problem)
    with TeredoLab() as lab:
        config = write(
            lab.tmp, enable=["routing", "teredo"], extra=f"{USER}[teredo]\n", tunnel_profile="teredo"
        )
        hook = client_hook(lab.tmp, config)
        lab.start_miredo(hook)
        first = lab.wait_teredo_address()
        wait_for(
            lambda: without_kernel_link_local(tunnel_state(lab.node)) == user_up(first), 10, "the end state"
        )
        # miredo's tun has carrier: the kernel added a link-local address of its own when the hook
        # brought the link up.  Running the same step again must write nothing, that one included.
        monitor = lab.monitor(lab.node, ("link", "address", "route", "rule"))
        before, mark = tunnel_state(lab.node), monitor.mark()
        same = [f"ADDRESS={first}", f"LLADDRESS={LL}", "MTU=1280"]
        assert lab.node.run("env", "-i", "STATE=up", "IFACE=teredo", *same, str(hook)).returncode == 0
        monitor.sync()
        assert monitor.since(mark) == []
        assert tunnel_state(lab.node) == before
        lab.move_to("nb")
        lab.sighup_miredo()  # re-qualification behind the other NAT: a new link, a new address
        second = lab.wait_teredo_address(exclude=[first])
        wait_for(
            lambda: without_kernel_link_local(tunnel_state(lab.node)) == user_up(second),
            10,
            "the new end state",
        )


@pytest.mark.parametrize("path", PATHS)
def test_other_objects_on_the_tunnel_end_the_same_on_every_path(lab: Lab, path: str) -> None:
    """What the profile owns goes, whoever put it there: every rule at its priority into its
    table, every unicast route of its table, the tunnel's main-table routes and global addresses.
    Another link-local address (the kernel makes one when a tun with carrier comes up) stays on
    ``up``, and so does a route of another type (an unreachable route)."""
    tunnel = Tunnel(lab, UPSTREAM, path)
    ns = tunnel.ns
    tunnel.up(A1)
    ns.ip("-6", "rule", "add", "fwmark", "1", "prio", "32765", "table", str(TABLE))
    ns.ip("-6", "rule", "add", "from", "2001:db8::/64", "prio", "32765", "table", str(TABLE))
    ns.ip("-6", "route", "add", "2001:db8:1::/48", "dev", "teredo", "metric", "7")
    ns.ip("-6", "route", "add", "2001:db8:2::/48", "dev", "teredo", "table", str(TABLE))
    ns.ip("-6", "route", "add", "unreachable", "2001:db8:3::/48", "table", str(TABLE))
    ns.ip("-6", "addr", "add", "2001:db8::9/64", "dev", "teredo")
    ns.ip("-6", "addr", "add", "fe80::5/64", "dev", "teredo")
    tunnel.up(A2, old=A1)
    unreachable = "2001:db8:3::/48 dev lo metric 1024"
    expected = upstream_up(A2)
    expected["addresses"] = sorted([*expected["addresses"], "fe80::5/64"])
    expected["table"] = sorted([*expected["table"], unreachable])
    assert tunnel.state() == expected
    assert tunnel.run(STATE="down", IFACE="teredo").returncode == 0
    assert tunnel.state() == {**flushed(up=False, mtu=1280), "table": [unreachable]}


TWO_TUNNELS = """\
[[interfaces]]
match = "teredo"
role = "tunnel"
routing_profile = "teredo"

[[interfaces]]
match = "teredo2"
role = "tunnel"
routing_profile = "second"
"""
SECOND = "[routing.profiles.second]\ntable = 101\nmetric = 1030\nsource_rule = true\nrule_priority = 32764\n"


def test_one_hook_serves_two_tunnels_running_at_the_same_time(lab: Lab) -> None:
    """Two miredo instances share /etc/miredo/client-hook: each run takes its tunnel's profile,
    and two runs at once (one per tunnel) leave both tunnels as each would alone."""
    ns = lab.namespace("tun")
    for name in ("teredo", "teredo2"):
        ns.ip("tuntap", "add", "dev", name, "mode", "tun")
    extra = f"{UPSTREAM}{SECOND}[teredo]\n"
    config = write(lab.tmp, enable=["routing", "teredo"], extra=extra, interfaces=TWO_TUNNELS)
    hook = str(client_hook(lab.tmp, config))

    def run(interface: str, address: str) -> subprocess.CompletedProcess[str]:
        variables = [f"IFACE={interface}", f"ADDRESS={address}", f"LLADDRESS={LL}", "MTU=1280"]
        return ns.run("env", "-i", "STATE=up", *variables, hook, check=False)

    def defaults(interface: str, *table: str) -> list[str]:
        routes = ns.ip_json("-6", "route", "show", "dev", interface, *table)
        return [f"{r['dst']} metric {r['metric']}" for r in routes if r["dst"] == "default"]

    with ThreadPoolExecutor(2) as pool:
        for first, second in ((A1, A2), (A2, A3), (A3, A1)):
            results = list(pool.map(run, ("teredo", "teredo2"), (first, second)))
            assert [r.returncode for r in results] == [0, 0], [r.stderr for r in results]
            assert tunnel_state(ns) == upstream_up(first)
            assert defaults("teredo2") == ["default metric 1030"]
            assert defaults("teredo2", "table", "101") == ["default metric 1024"]
            rules = [r.get("src") for r in ns.ip_json("-6", "rule", "show") if r.get("priority") == 32764]
            assert rules == [second]


def test_a_configuration_newer_than_the_hook_is_applied_as_it_is_now(lab: Lab) -> None:
    """The TOML was edited and the hook not printed again: the shell hands the run to the full
    hook, which applies the TOML as it is (never the profile compiled into the hook), and says so."""
    tunnel = Tunnel(lab, USER)
    tunnel.up(A1)
    section = "[routing.profiles.teredo]\n"
    tunnel.config.write_text(tunnel.config.read_text().replace(section, f"{section}metric = 1031\n"))
    hook_written = tunnel.hook.stat().st_mtime
    os.utime(tunnel.config, (hook_written + 1, hook_written + 1))  # newer, whatever the clock's grain
    result = tunnel.run(STATE="up", IFACE="teredo", ADDRESS=A2, OLD_ADDRESS=A1, LLADDRESS=LL, MTU="1280")
    assert result.returncode == 0, result.stderr
    assert "is newer than" in result.stderr
    expected = user_up(A2)
    expected["routes"] = sorted(r.replace("metric 1029", "metric 1031") for r in expected["routes"])
    assert tunnel.state() == expected


def test_a_cache_others_could_write_is_not_trusted(lab: Lab) -> None:
    """A forged cache in a directory others can write: the full hook compiles the TOML itself."""
    tunnel = Tunnel(lab, USER, "full")
    tunnel.up(A1)  # compiles and writes the cache
    cache = lab.tmp / "cache" / "client-hook.cache"
    forged = marshal.loads(cache.read_bytes())
    forged["profiles"]["teredo"] = ("teredo", None, 32765, 5, 1280, 64, False)  # metric 5, /64
    cache.write_bytes(marshal.dumps(forged))
    cache.parent.chmod(0o777)
    tunnel.up(A2, old=A1)
    assert tunnel.state() == user_up(A2)


@pytest.mark.parametrize("path", PATHS)
def test_a_failure_midway_says_what_was_applied_and_a_rerun_converges(lab: Lab, path: str) -> None:
    tunnel = Tunnel(lab, USER, path)
    # Another tunnel already holds the default route at the profile's metric: the kernel refuses ours.
    tunnel.ns.ip("tuntap", "add", "dev", "other", "mode", "tun")
    tunnel.ns.ip("link", "set", "other", "up")
    tunnel.ns.ip("-6", "route", "add", "default", "dev", "other", "metric", "1029")
    result = tunnel.run(STATE="up", IFACE="teredo", ADDRESS=A1, LLADDRESS=LL, MTU="1280")
    assert result.returncode == 1
    if path == "full":
        assert "route add default dev teredo table 254 metric 1029 failed" in result.stderr
        assert f"link set dev teredo mtu 1400; address add {A1}/128" in result.stderr
        assert "not applied: link set dev teredo alias" in result.stderr
    else:  # ip names the batch's line; the shell read and tried once more before giving up
        assert result.stderr.count("Command failed -:") == 2, result.stderr
        assert result.stderr.strip().splitlines()[-1].startswith("orchestrator hook: teredo: the kernel")
    tunnel.ns.ip("-6", "route", "del", "default", "dev", "other", "metric", "1029")
    tunnel.up(A1)
    assert tunnel.state() == user_up(A1)


RELAY = "::192.88.99.1"  # 6to4's anycast relay, as the kernel spells it
GATEWAY = UPSTREAM + 'gateway = "::c058:6301"\n'  # the same relay, spelt otherwise by the user


def default_routes(ns: Namespace, *table: str) -> list[str]:
    """The tunnel's default routes, with their next hop and whether it is flagged on-link."""
    found = []
    for r in ns.ip_json("-6", "route", "show", "default", "dev", "teredo", *table):
        via = f" via {r['gateway']}" if "gateway" in r else ""
        onlink = " onlink" if "onlink" in r["flags"] else ""
        found.append(f"default{via} metric {r.get('metric', 0)}{onlink}")
    return sorted(found)


def test_a_gateway_profile_routes_through_the_relay_on_link(lab: Lab) -> None:
    tunnel = Tunnel(lab, GATEWAY)
    tunnel.up(A1)
    assert default_routes(tunnel.ns) == [f"default via {RELAY} metric 1029 onlink"]
    assert default_routes(tunnel.ns, "table", str(TABLE)) == [f"default via {RELAY} metric 1024 onlink"]

    monitor = lab.monitor(tunnel.ns, ("route",))
    mark = monitor.mark()
    tunnel.up(A1)  # the same step again: the relay's route is recognised as already there
    monitor.sync()
    assert monitor.since(mark) == []

    # A default route at the profile's metric through another next hop is not the profile's route.
    tunnel.ns.ip("-6", "route", "del", "default", "dev", "teredo", "metric", "1029")
    tunnel.ns.ip("-6", "route", "add", "default", "via", "::192.0.2.9", "dev", "teredo", "metric", "1029",
                 "onlink")
    tunnel.up(A1)
    assert default_routes(tunnel.ns) == [f"default via {RELAY} metric 1029 onlink"]


FOLLOWED = UPSTREAM + f'follow_address = true\ngateway = "{RELAY}"\n'  # as a 6to4 plugin's tunnel


def test_a_followed_profile_is_applied_to_each_address_and_defended(lab: Lab) -> None:
    """No client hook: the daemon applies the profile when the tunnel's address changes, and
    leaves the addresses and the link alone (they are the tunnel plugin's, here the test's)."""
    ns = lab.namespace("tun")
    ns.ip("tuntap", "add", "dev", "teredo", "mode", "tun")
    ns.ip("link", "set", "teredo", "up")
    config = write(lab.tmp, enable=["routing"], extra=FOLLOWED, tunnel_profile="teredo")
    daemon = DaemonProcess(ns, config, lab.tmp / "control.sock")

    def policy() -> dict[str, Any]:
        state = tunnel_state(ns)
        return {
            "up": state["up"],
            "addresses": state["addresses"],
            "main": default_routes(ns),
            "table": default_routes(ns, "table", str(TABLE)),
            "rules": state["rules"],
        }

    def followed(address: str) -> dict[str, Any]:
        return {
            "up": True,
            "addresses": [f"{address}/64"],  # as added, not the profile's /32
            "main": [f"default via {RELAY} metric 1029 onlink"],
            "table": [f"default via {RELAY} metric 1024 onlink"],
            "rules": [f"from {address} table {TABLE}"],
        }

    ns.ip("-6", "addr", "add", f"{A1}/64", "dev", "teredo")
    wait_for(lambda: policy() == followed(A1), 15, "the profile applied for the first address")
    ns.ip("-6", "addr", "add", f"{A2}/64", "dev", "teredo")
    ns.ip("-6", "addr", "del", f"{A1}/64", "dev", "teredo")
    wait_for(lambda: policy() == followed(A2), 15, "the profile moved to the second address")
    ns.ip("-6", "route", "del", "default", "dev", "teredo", "metric", "1029")
    wait_for(lambda: policy() == followed(A2), 15, "the removed route restored")
    assert daemon.status()["counters"]["routing_reasserts"] == 1
    ns.ip("-6", "addr", "del", f"{A2}/64", "dev", "teredo")
    gone = {"up": True, "addresses": [], "main": [], "table": [], "rules": []}
    wait_for(lambda: policy() == gone, 15, "the routes and the rule withdrawn with the address")
